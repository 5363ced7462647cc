//! App passwords for Subsonic clients. The Subsonic protocol's classic login sends the password
//! itself, or `md5(password + salt)`, so the server must be able to recover it: each user gets
//! a generated app password (never their login password), sealed with ChaCha20-Poly1305 under
//! a key kept in the data dir. A stolen database alone reveals no app password.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rusqlite::{Connection, OptionalExtension, params};

use super::AccountsError;

/// The sealing key's file in the data dir (32 random bytes as hex, mode 0600).
pub const KEY_FILE: &str = "app-passwords.key";
/// Letters of a generated app password: no 0/o, 1/l/i, so it can be read aloud and typed.
const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz23456789-";
/// Characters of a generated app password, before the dashes between groups.
const CHARS: usize = 20;

/// Seals and opens app passwords with the data dir's key.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// A sealed app password as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// 96-bit random nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub sealed: Vec<u8>,
}

impl Sealer {
    /// The data dir's key, created on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Sealer, AccountsError> {
        let path = data_dir.join(KEY_FILE);
        let text = crate::datadir::load_or_create_key(&path)
            .map_err(|e| AccountsError::Key(format!("{}: {e}", path.display())))?;
        let raw = crate::encoding::hex_decode(&text)
            .filter(|k| k.len() == 32)
            .ok_or_else(|| {
                AccountsError::Key(format!("{}: not 64 hex characters", path.display()))
            })?;
        Ok(Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&raw)),
        })
    }

    /// Seals `password` for `user_id` (bound to it: a row copied to another user opens to
    /// nothing).
    pub fn seal(&self, user_id: &str, password: &str) -> Result<Sealed, AccountsError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| AccountsError::Key(e.to_string()))?;
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: password.as_bytes(),
                    aad: user_id.as_bytes(),
                },
            )
            .map_err(|_| AccountsError::Key("sealing failed".into()))?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            sealed,
        })
    }

    /// The password, or `None` when the row was sealed with another key or altered.
    pub fn open(&self, user_id: &str, s: &Sealed) -> Option<String> {
        if s.nonce.len() != 12 {
            return None;
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&s.nonce),
                Payload {
                    msg: &s.sealed,
                    aad: user_id.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

/// A fresh app password: 20 random characters (100 bits) in groups of five.
pub fn generate() -> String {
    let mut raw = [0u8; CHARS];
    getrandom::fill(&mut raw).expect("the OS random number generator is available");
    let letters = &ALPHABET[..31];
    let mut out = String::with_capacity(CHARS + CHARS / 5);
    for (i, b) in raw.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        // 31 letters: a modulo bias of under 1 % on a few letters costs < 0.1 bit.
        out.push(char::from(letters[usize::from(*b) % letters.len()]));
    }
    out
}

/// Generates a new app password for a user (replacing any earlier one) and returns it with
/// the user: the only time it is shown.
pub fn issue(
    c: &Connection,
    sealer: &Sealer,
    user_id: &str,
    now: i64,
) -> Result<(super::User, String), AccountsError> {
    let user = super::store::get_user(c, user_id)?.ok_or(AccountsError::NotFound("user"))?;
    let password = generate();
    store(c, &user.id, &sealer.seal(&user.id, &password)?, now)?;
    Ok((user, password))
}

/// Stores (or replaces) a user's sealed app password.
pub fn store(c: &Connection, user_id: &str, s: &Sealed, now: i64) -> Result<(), AccountsError> {
    c.execute(
        "INSERT INTO app_passwords (user_id, nonce, sealed, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (user_id) DO UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed, \
         created_at = excluded.created_at",
        params![user_id, s.nonce, s.sealed, now],
    )?;
    Ok(())
}

/// A user's sealed app password, if they have one.
pub fn find(c: &Connection, user_id: &str) -> Result<Option<Sealed>, AccountsError> {
    Ok(c.query_row(
        "SELECT nonce, sealed FROM app_passwords WHERE user_id = ?1",
        [user_id],
        |r| {
            Ok(Sealed {
                nonce: r.get(0)?,
                sealed: r.get(1)?,
            })
        },
    )
    .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_passwords_open_for_their_user_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealer::load_or_create(dir.path()).unwrap();
        let pw = generate();
        let sealed = s.seal("u1", &pw).unwrap();
        assert!(!sealed.sealed.windows(pw.len()).any(|w| w == pw.as_bytes()));
        assert_eq!(s.open("u1", &sealed).as_deref(), Some(pw.as_str()));
        assert_eq!(s.open("u2", &sealed), None);
        // The same key file opens it after a restart; another data dir's key does not.
        let again = Sealer::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open("u1", &sealed).as_deref(), Some(pw.as_str()));
        let other = tempfile::tempdir().unwrap();
        assert_eq!(
            Sealer::load_or_create(other.path())
                .unwrap()
                .open("u1", &sealed),
            None
        );
    }

    #[test]
    fn generated_passwords_are_grouped_and_distinct() {
        let a = generate();
        assert_eq!(a.len(), 23);
        assert_eq!(a.matches('-').count(), 3);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, generate());
    }
}
