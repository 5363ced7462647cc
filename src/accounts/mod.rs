//! Accounts: users and roles, password hashing, API tokens, sessions and the first-run setup
//! link. Pure types and helpers here; SQL in `store.rs`; HTTP in `http::auth` and
//! `http::api::{auth,users,tokens}`.

use std::fmt;
use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub mod app_password;
pub mod store;
pub mod throttle;

pub use throttle::{HashBusy, HashPool, LoginGuard};

/// Prefix of every API token, so scanners and humans can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "vz_";
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (argon2 cost is linear in it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Lifetime of the first-run setup link.
pub const SETUP_TOKEN_SECS: i64 = 3600;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The username does not fit the rules.
    #[error("{0}")]
    InvalidUsername(String),
    /// The password does not fit the rules.
    #[error("{0}")]
    WeakPassword(String),
    /// Another user already has this name (case-insensitively).
    #[error("username {0:?} is taken")]
    UsernameTaken(String),
    /// No such user or token.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change would leave no enabled admin.
    #[error("the last enabled admin cannot be demoted, disabled or deleted")]
    LastAdmin,
    /// An admin already exists, so the setup link is closed.
    #[error("setup is already done: an admin exists")]
    AlreadySetUp,
    /// Password hashing failed (not a wrong password: an internal error).
    #[error("password hashing: {0}")]
    Hash(String),
    /// The database task failed.
    #[error(transparent)]
    Task(#[from] crate::db::DbError),
    /// The app-password key cannot be read, created or used.
    #[error("app-password key: {0}")]
    Key(String),
}

/// A user's role. Admins can do everything; editors manage the library and jobs; listeners
/// browse and play what anonymous visitors may, with playlists, stars and plays of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Browse and play (through Subsonic apps); no uploads, edits or jobs.
    Listener,
    /// Library and jobs.
    Editor,
    /// Everything, including users, others' tokens and settings.
    Admin,
}

impl Role {
    /// Stored and displayed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Listener => "listener",
        }
    }

    /// True when this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "editor" => Ok(Role::Editor),
            "listener" => Ok(Role::Listener),
            other => Err(format!(
                "role {other:?} is not \"admin\", \"editor\" or \"listener\""
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A login name: 1–64 ASCII letters, digits, `.`, `_`, `-`, starting with a letter or digit.
/// ASCII-only keeps case-insensitive uniqueness exact (SQLite's NOCASE folds ASCII only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses a login name.
    pub fn parse(s: &str) -> Result<Username, AccountsError> {
        let ok_len = (1..=64).contains(&s.len());
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok_len && ok_first && ok_chars {
            Ok(Username(s.to_owned()))
        } else {
            Err(AccountsError::InvalidUsername(format!(
                "username {s:?} must be 1-64 of A-Z a-z 0-9 . _ - and start with a letter or digit"
            )))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a new password's length.
pub fn check_new_password(pw: &str) -> Result<(), AccountsError> {
    if pw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountsError::WeakPassword(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if pw.len() > MAX_PASSWORD_BYTES {
        return Err(AccountsError::WeakPassword(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id and the crate's recommended parameters. Slow by design:
/// call it off the async executor.
pub fn hash_password(pw: &str) -> Result<String, AccountsError> {
    let err = |e: &dyn fmt::Display| AccountsError::Hash(e.to_string());
    let mut raw_salt = [0u8; 16];
    getrandom::fill(&mut raw_salt).map_err(|e| err(&e))?;
    let salt = SaltString::encode_b64(&raw_salt).map_err(|e| err(&e))?;
    let argon = Argon2::default();
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    with_blocks(argon.params().block_count(), |blocks| {
        argon.hash_password_into_with_memory(pw.as_bytes(), &raw_salt, &mut out, blocks)
    })
    .map_err(|e| err(&e))?;
    let phc = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(argon.params())
            .map_err(|e| err(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(argon2::password_hash::Output::new(&out).map_err(|e| err(&e))?),
    };
    Ok(phc.to_string())
}

/// Checks a password against a stored hash (constant time in the comparison).
pub fn verify_password(pw: &str, hash: &str) -> bool {
    if pw.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        argon2::Algorithm::try_from(parsed.algorithm),
        argon2::Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let hashed = with_blocks(argon.params().block_count(), |blocks| {
        argon.hash_password_into_with_memory(pw.as_bytes(), salt, &mut out, blocks)
    });
    // `Output`'s equality is constant-time.
    hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// Runs `f` with this thread's argon2 work memory, grown to `count` blocks once and reused:
/// a fresh 19 MiB allocation per hash left glibc holding one freed block per hash in flight
/// (+120 MB after a login flood); the server hashes on two threads, so two buffers in all.
fn with_blocks<T>(count: usize, f: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BLOCKS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < count {
            b.resize(count, argon2::Block::default());
        }
        f(&mut b[..count])
    })
}

/// A hash to verify against when the user does not exist, so a login takes the same time
/// whether or not the name is known.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("veza-dummy-password").expect("argon2 with default params"))
}

/// A fresh 256-bit random secret as URL-safe base64 (43 chars).
pub fn random_secret() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the OS random number generator is available");
    URL_SAFE_NO_PAD.encode(raw)
}

/// A new API token: `vz_` + 43 chars. Shown once; only its hash is stored.
pub fn new_api_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_secret())
}

/// SHA-256 of a secret, the form stored in the database.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A user as the API shows it (no hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    /// UUIDv7.
    pub id: String,
    /// Login name.
    pub username: String,
    /// `admin`, `editor` or `listener`.
    #[schema(value_type = String, example = "editor")]
    pub role: Role,
    /// Disabled users cannot log in; their sessions and tokens stop working.
    pub disabled: bool,
    /// Subsonic streams go through Veza instead of redirecting to the CDN (for players that
    /// do not follow redirects).
    pub stream_proxy: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last successful login.
    pub last_login_at: Option<i64>,
}

/// An API token's metadata (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// UUIDv7.
    pub id: String,
    /// Owner's id.
    pub user_id: String,
    /// Owner's name.
    pub username: String,
    /// Label given at creation.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; none = never.
    pub expires_at: Option<i64>,
    /// Unix seconds of the last authenticated call.
    pub last_used_at: Option<i64>,
    /// Unix seconds; set once revoked.
    pub revoked_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_parse() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b-c_d9").is_ok());
        for bad in ["", ".alice", "al ice", "ålice", &"a".repeat(65), "a/b"] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn hashes_match_the_argon2_crates_own_phc_strings() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("correct horse battery", &theirs));
        assert!(!verify_password("correct horse batterx", &theirs));
        let ours = hash_password("correct horse battery").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
    }

    #[test]
    fn roles_order() {
        assert!(Role::Admin.allows(Role::Editor));
        assert!(!Role::Editor.allows(Role::Admin));
        assert!(Role::Editor.allows(Role::Listener));
        assert!(!Role::Listener.allows(Role::Editor));
        assert_eq!("listener".parse::<Role>().unwrap(), Role::Listener);
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_are_prefixed_and_random() {
        let a = new_api_token();
        let b = new_api_token();
        assert!(a.starts_with("vz_") && a.len() == 46);
        assert_ne!(a, b);
        assert_eq!(secret_hash(&a).len(), 32);
    }
}
