//! Subsonic errors: each carries the protocol's numeric code; `response::failed` renders them
//! with HTTP 200, as clients expect.

use crate::library::LibraryError;
use crate::tracks::TrackError;

/// Why a call failed, by the protocol's codes.
#[derive(Debug, thiserror::Error)]
pub enum SubsonicError {
    /// 10: a required parameter is missing.
    #[error("Required parameter is missing: {0}")]
    Missing(&'static str),
    /// 0: a parameter has a value that cannot work.
    #[error("Invalid parameter {name}: {why}")]
    BadParam {
        /// Which.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
    /// 40: wrong username or password (or app password).
    #[error("Wrong username or password")]
    WrongCredentials,
    /// 43: `apiKey` together with `u`/`p`/`t`.
    #[error("Multiple conflicting authentication mechanisms provided")]
    Conflicting,
    /// 44: the API key is invalid, revoked or expired.
    #[error("Invalid API key")]
    BadApiKey,
    /// 0: too many failed logins from this address or for this user.
    #[error("Too many failed logins; retry in {0} s")]
    Throttled(u64),
    /// 50: the user may not do this.
    #[error("User is not authorized for the given operation: {0}")]
    NotAuthorized(&'static str),
    /// 70: nothing by that id that this user may see.
    #[error("The requested data was not found: {0}")]
    NotFound(&'static str),
    /// 0: the method is not one Veza serves.
    #[error("Unknown or unsupported method: {0}")]
    UnknownMethod(String),
    /// 0: an internal failure (logged; no detail given out).
    #[error("Internal server error")]
    Internal,
}

impl SubsonicError {
    /// The protocol's error code.
    pub fn code(&self) -> u32 {
        match self {
            SubsonicError::Missing(_) => 10,
            SubsonicError::WrongCredentials => 40,
            SubsonicError::Conflicting => 43,
            SubsonicError::BadApiKey => 44,
            SubsonicError::NotAuthorized(_) => 50,
            SubsonicError::NotFound(_) => 70,
            SubsonicError::BadParam { .. }
            | SubsonicError::Throttled(_)
            | SubsonicError::UnknownMethod(_)
            | SubsonicError::Internal => 0,
        }
    }
}

impl From<LibraryError> for SubsonicError {
    fn from(e: LibraryError) -> Self {
        match e {
            LibraryError::NotFound => SubsonicError::NotFound("no such item"),
            LibraryError::Forbidden => SubsonicError::NotAuthorized("only its owner may change it"),
            LibraryError::Invalid { field, message } => SubsonicError::BadParam {
                name: field,
                why: message,
            },
            e => {
                tracing::error!(error = %e, "subsonic: library error");
                SubsonicError::Internal
            }
        }
    }
}

impl From<TrackError> for SubsonicError {
    fn from(e: TrackError) -> Self {
        match e {
            TrackError::Library(e) => e.into(),
            // Nothing is said about tracks the user may not see.
            TrackError::Hidden(_) => SubsonicError::NotFound("no such song"),
            TrackError::TakenDown => SubsonicError::NotFound("this song was taken down"),
            TrackError::HlsNotReady => {
                SubsonicError::NotFound("this song has no HLS renditions yet")
            }
            e => {
                tracing::error!(error = %e, "subsonic: track error");
                SubsonicError::Internal
            }
        }
    }
}

impl From<crate::db::DbError> for SubsonicError {
    fn from(e: crate::db::DbError) -> Self {
        tracing::error!(error = %e, "subsonic: database error");
        SubsonicError::Internal
    }
}

impl From<crate::accounts::AccountsError> for SubsonicError {
    fn from(e: crate::accounts::AccountsError) -> Self {
        tracing::error!(error = %e, "subsonic: accounts error");
        SubsonicError::Internal
    }
}
