//! Who is calling: the `apiKeyAuthentication` extension with a Veza API token (`apiKey=vz_…`),
//! or the classic `u` with `t`+`s` (`md5(app password + salt)`) or `p` (plain or `enc:` hex).
//! Only app passwords work for the classic forms: the login password is an argon2 hash and
//! never recoverable. Failures count against the same throttle as dashboard logins.

use std::net::IpAddr;

use md5::{Digest, Md5};

use super::error::SubsonicError;
use super::params::Params;
use crate::accounts::{self, User, app_password, store};
use crate::clock::now;
use crate::http::state::AppState;

/// Authenticates a call; the user is enabled when this returns.
pub async fn authenticate(s: &AppState, p: &Params, ip: IpAddr) -> Result<User, SubsonicError> {
    if let Some(key) = p.get("apiKey") {
        if p.get("u").is_some() || p.get("p").is_some() || p.get("t").is_some() {
            return Err(SubsonicError::Conflicting);
        }
        s.login.check_ip(ip).map_err(SubsonicError::Throttled)?;
        let hash = accounts::secret_hash(key);
        let found =
            s.db.call(move |c| store::authenticate_token(c, &hash, now()))
                .await?;
        return match found {
            Some((user, _)) => Ok(user),
            None => {
                s.login.failed(ip, None);
                Err(SubsonicError::BadApiKey)
            }
        };
    }
    let username = p.require("u")?.to_owned();
    let proof = match (p.get("t"), p.get("s"), p.get("p")) {
        (Some(t), Some(salt), _) => Proof::Token {
            token: t.to_ascii_lowercase(),
            salt: salt.to_owned(),
        },
        (_, _, Some(pw)) => {
            Proof::Password(decode_password(pw).ok_or(SubsonicError::WrongCredentials)?)
        }
        (Some(_), None, None) => return Err(SubsonicError::Missing("s")),
        _ => return Err(SubsonicError::Missing("p")),
    };
    s.login
        .check(ip, &username)
        .map_err(SubsonicError::Throttled)?;
    let name = username.clone();
    let found =
        s.db.call(move |c| -> Result<_, accounts::AccountsError> {
            let Some((user, _)) = store::find_login(c, &name)? else {
                return Ok(None);
            };
            let sealed = app_password::find(c, &user.id)?;
            Ok(Some((user, sealed)))
        })
        .await?;
    let verified = found.and_then(|(user, sealed)| {
        let password = s.sealer.open(&user.id, &sealed?)?;
        (!user.disabled && proof.matches(&password)).then_some(user)
    });
    match verified {
        Some(user) => {
            s.login.succeeded(ip, &username);
            Ok(user)
        }
        None => {
            s.login.failed(ip, Some(&username));
            Err(SubsonicError::WrongCredentials)
        }
    }
}

/// What the classic login sent.
enum Proof {
    /// `t` = md5(password + `s`), lower-case hex.
    Token { token: String, salt: String },
    /// The password itself.
    Password(String),
}

impl Proof {
    fn matches(&self, password: &str) -> bool {
        let expected = match self {
            Proof::Token { salt, .. } => {
                crate::encoding::hex(&Md5::digest(format!("{password}{salt}").as_bytes()))
            }
            Proof::Password(_) => password.to_owned(),
        };
        let got = match self {
            Proof::Token { token, .. } => token.as_bytes(),
            Proof::Password(p) => p.as_bytes(),
        };
        crate::encoding::ct_eq(got, expected.as_bytes())
    }
}

/// `p=` as sent: plain, or `enc:` and hex of the UTF-8 bytes.
fn decode_password(p: &str) -> Option<String> {
    let Some(hex) = p.strip_prefix("enc:") else {
        return Some(p.to_owned());
    };
    String::from_utf8(crate::encoding::hex_decode(hex)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_token_matches() {
        // The Subsonic API page's own example: password "sesame", salt "c19b2d".
        let proof = Proof::Token {
            token: "26719a1196d2a940705a59634eb18eab".into(),
            salt: "c19b2d".into(),
        };
        assert!(proof.matches("sesame"));
        assert!(!proof.matches("sesame!"));
    }

    #[test]
    fn enc_passwords_decode() {
        assert_eq!(
            decode_password("enc:736573616d65").as_deref(),
            Some("sesame")
        );
        assert_eq!(decode_password("sesame").as_deref(), Some("sesame"));
        assert_eq!(decode_password("enc:7"), None);
        assert_eq!(decode_password("enc:zz"), None);
    }
}
