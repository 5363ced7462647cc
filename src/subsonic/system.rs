//! `getLicense`, `getOpenSubsonicExtensions`, `getMusicFolders`, `getUser`.

use serde_json::json;

use super::error::SubsonicError;
use super::{Answer, Ctx, one};
use crate::accounts::{Role, store};

/// The one music folder: the whole library.
pub const FOLDER_ID: u32 = 1;

pub(super) fn license() -> Result<Answer, SubsonicError> {
    one("license", json!({"valid": true}))
}

pub(super) fn extensions() -> Result<Answer, SubsonicError> {
    one(
        "openSubsonicExtensions",
        json!([
            {"name": "apiKeyAuthentication", "versions": [1]},
            {"name": "formPost", "versions": [1]},
        ]),
    )
}

pub(super) fn music_folders() -> Result<Answer, SubsonicError> {
    one(
        "musicFolders",
        json!({"musicFolder": [{"id": FOLDER_ID, "name": "Library"}]}),
    )
}

pub(super) async fn user(c: &Ctx) -> Result<Answer, SubsonicError> {
    let user = match c.p.get("username") {
        Some(name) if !name.eq_ignore_ascii_case(&c.user.username) => {
            if c.user.role != Role::Admin {
                return Err(SubsonicError::NotAuthorized("only admins see other users"));
            }
            let name = name.to_owned();
            c.s.db
                .call(move |db| store::find_login(db, &name))
                .await?
                .map(|(u, _)| u)
                .ok_or(SubsonicError::NotFound("no such user"))?
        }
        _ => c.user.clone(),
    };
    let admin = user.role == Role::Admin;
    let editor = user.role.allows(Role::Editor);
    one(
        "user",
        json!({
            "username": user.username,
            "scrobblingEnabled": true,
            "adminRole": admin,
            "settingsRole": true,
            "downloadRole": true,
            "uploadRole": editor,
            "playlistRole": true,
            "coverArtRole": editor,
            "commentRole": false,
            "podcastRole": false,
            "streamRole": true,
            "jukeboxRole": false,
            "shareRole": false,
            "videoConversionRole": false,
            "folder": [FOLDER_ID],
        }),
    )
}
