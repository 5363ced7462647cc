//! SQL for accounts. Every function takes a connection and runs synchronously; callers reach it
//! through `Db::call`. Multi-statement rules (the last-admin rule) run in one transaction.

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};

use super::{AccountsError, Role, TokenInfo, User, Username};

const USER_COLS: &str = "id, username, role, disabled, created_at, last_login_at, stream_proxy";
/// Columns [`user_row`] reads; a query's own columns come after them.
const USER_COL_COUNT: usize = 7;

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(2)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        role: role.parse().unwrap_or(Role::Listener), // least privilege if ever unreadable
        disabled: r.get::<_, i64>(3)? != 0,
        created_at: r.get(4)?,
        last_login_at: r.get(5)?,
        stream_proxy: r.get::<_, i64>(6)? != 0,
    })
}

/// Inserts a user; `UsernameTaken` when the name exists in any case.
pub fn create_user(
    c: &Connection,
    username: &Username,
    password_hash: &str,
    role: Role,
    now: i64,
) -> Result<User, AccountsError> {
    let id = uuid::Uuid::now_v7().to_string();
    let res = c.execute(
        "INSERT INTO users (id, username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, username.as_str(), password_hash, role.as_str(), now],
    );
    match res {
        Ok(_) => get_user(c, &id)?.ok_or(AccountsError::NotFound("user")),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            Err(AccountsError::UsernameTaken(username.as_str().to_owned()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A user by id.
pub fn get_user(c: &Connection, id: &str) -> Result<Option<User>, AccountsError> {
    Ok(c.query_row(
        &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
        [id],
        user_row,
    )
    .optional()?)
}

/// A user and their password hash, by name (case-insensitive).
pub fn find_login(c: &Connection, username: &str) -> Result<Option<(User, String)>, AccountsError> {
    Ok(c.query_row(
        &format!("SELECT {USER_COLS}, password_hash FROM users WHERE username = ?1"),
        [username],
        |r| Ok((user_row(r)?, r.get(USER_COL_COUNT)?)),
    )
    .optional()?)
}

/// Every user, oldest first.
pub fn list_users(c: &Connection) -> Result<Vec<User>, AccountsError> {
    let mut st = c.prepare(&format!(
        "SELECT {USER_COLS} FROM users ORDER BY created_at, id"
    ))?;
    let rows = st.query_map([], user_row)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// True when at least one enabled admin exists.
pub fn has_admin(c: &Connection) -> Result<bool, AccountsError> {
    Ok(enabled_admins(c)? > 0)
}

fn enabled_admins(c: &Connection) -> Result<i64, AccountsError> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0",
        [],
        |r| r.get(0),
    )?)
}

/// What a `PATCH` may change.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// New role.
    pub role: Option<Role>,
    /// Disable or re-enable.
    pub disabled: Option<bool>,
    /// New argon2 hash (already computed).
    pub password_hash: Option<String>,
    /// Proxy Subsonic streams instead of redirecting.
    pub stream_proxy: Option<bool>,
}

/// Applies a change, refusing one that leaves no enabled admin. Disabling a user or changing
/// their password ends their sessions (and revokes their API tokens).
pub fn update_user(c: &mut Connection, id: &str, ch: &UserChange) -> Result<User, AccountsError> {
    let tx = c.transaction()?;
    let before = get_user(&tx, id)?.ok_or(AccountsError::NotFound("user"))?;
    if let Some(role) = ch.role {
        tx.execute(
            "UPDATE users SET role = ?1 WHERE id = ?2",
            params![role.as_str(), id],
        )?;
    }
    if let Some(d) = ch.disabled {
        tx.execute(
            "UPDATE users SET disabled = ?1 WHERE id = ?2",
            params![i64::from(d), id],
        )?;
    }
    if let Some(p) = ch.stream_proxy {
        tx.execute(
            "UPDATE users SET stream_proxy = ?1 WHERE id = ?2",
            params![i64::from(p), id],
        )?;
    }
    if let Some(h) = &ch.password_hash {
        tx.execute(
            "UPDATE users SET password_hash = ?1 WHERE id = ?2",
            params![h, id],
        )?;
    }
    let was_admin = before.role == Role::Admin && !before.disabled;
    if was_admin && enabled_admins(&tx)? == 0 {
        return Err(AccountsError::LastAdmin); // dropping `tx` rolls back
    }
    if ch.disabled == Some(true) || ch.password_hash.is_some() {
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
    }
    if ch.password_hash.is_some() {
        // A new password answers a suspected leak: tokens minted with the old one go too.
        tx.execute(
            "UPDATE api_tokens SET revoked_at = CAST(strftime('%s','now') AS INTEGER) WHERE user_id = ?1 AND revoked_at IS NULL",
            [id],
        )?;
    }
    let after = get_user(&tx, id)?.ok_or(AccountsError::NotFound("user"))?;
    tx.commit()?;
    Ok(after)
}

/// Deletes a user (their sessions and tokens go with them), never the last enabled admin.
pub fn delete_user(c: &mut Connection, id: &str) -> Result<(), AccountsError> {
    let tx = c.transaction()?;
    let before = get_user(&tx, id)?.ok_or(AccountsError::NotFound("user"))?;
    tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
    if before.role == Role::Admin && !before.disabled && enabled_admins(&tx)? == 0 {
        return Err(AccountsError::LastAdmin); // dropping `tx` rolls back
    }
    tx.commit()?;
    Ok(())
}

/// Stamps a successful login.
pub fn record_login(c: &Connection, id: &str, now: i64) -> Result<(), AccountsError> {
    c.execute(
        "UPDATE users SET last_login_at = ?1 WHERE id = ?2",
        params![now, id],
    )?;
    Ok(())
}

// --- sessions ------------------------------------------------------------------------------

/// Stores a new session (by the hash of its cookie value).
pub fn create_session(
    c: &Connection,
    id_hash: &[u8],
    user_id: &str,
    csrf: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), AccountsError> {
    c.execute(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![id_hash, user_id, csrf, now, expires_at],
    )?;
    Ok(())
}

/// A last-used clock's write: on a full disk it is skipped rather than failing the request that
/// carried it (signing in, streaming and reading keep working while the disk is full).
fn bookkeeping(r: rusqlite::Result<usize>) -> Result<(), AccountsError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if crate::db::is_full(&e) => {
            tracing::warn!(error = %e, "disk full: a last-used time was not recorded");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The session's user and CSRF token when it is live (within both the absolute and the idle
/// limit, user enabled); refreshes its idle clock.
pub fn touch_session(
    c: &Connection,
    id_hash: &[u8],
    now: i64,
    idle_secs: i64,
) -> Result<Option<(User, String)>, AccountsError> {
    let found = c
        .query_row(
            &format!(
                "SELECT {cols}, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND s.last_seen_at > ?2 - ?3 AND u.disabled = 0",
                cols = USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
            ),
            params![id_hash, now, idle_secs],
            |r| Ok((user_row(r)?, r.get::<_, String>(USER_COL_COUNT)?)),
        )
        .optional()?;
    if found.is_some() {
        // Once a minute is enough for an idle clock; avoids a write per request.
        bookkeeping(c.execute(
            "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1 AND last_seen_at < ?2 - 60",
            params![id_hash, now],
        ))?;
    }
    Ok(found)
}

/// Ends a session.
pub fn delete_session(c: &Connection, id_hash: &[u8]) -> Result<(), AccountsError> {
    c.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}

/// Removes sessions past either limit.
pub fn purge_sessions(c: &Connection, now: i64, idle_secs: i64) -> Result<usize, AccountsError> {
    Ok(c.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at <= ?1 - ?2",
        params![now, idle_secs],
    )?)
}

// --- API tokens ----------------------------------------------------------------------------

const TOKEN_COLS: &str =
    "t.id, t.user_id, u.username, t.name, t.created_at, t.expires_at, t.last_used_at, t.revoked_at";

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        user_id: r.get(1)?,
        username: r.get(2)?,
        name: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        last_used_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

/// Stores a token's hash for a user.
pub fn create_token(
    c: &Connection,
    user_id: &str,
    name: &str,
    token_hash: &[u8],
    now: i64,
    expires_at: Option<i64>,
) -> Result<TokenInfo, AccountsError> {
    let id = uuid::Uuid::now_v7().to_string();
    c.execute(
        "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, user_id, name, token_hash, now, expires_at],
    )?;
    get_token(c, &id)?.ok_or(AccountsError::NotFound("token"))
}

/// A token's metadata by id.
pub fn get_token(c: &Connection, id: &str) -> Result<Option<TokenInfo>, AccountsError> {
    Ok(c.query_row(
        &format!(
            "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1"
        ),
        [id],
        token_row,
    )
    .optional()?)
}

/// The owner of a live token (not revoked, not expired, owner enabled) and the token's own
/// expiry; stamps its use.
pub fn authenticate_token(
    c: &Connection,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<(User, Option<i64>)>, AccountsError> {
    let found = c
        .query_row(
            &format!(
                "SELECT {cols}, t.id, t.expires_at FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = ?1 AND t.revoked_at IS NULL
                   AND (t.expires_at IS NULL OR t.expires_at > ?2) AND u.disabled = 0",
                cols = USER_COLS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params![token_hash, now],
            |r| {
                Ok((
                    user_row(r)?,
                    r.get::<_, String>(USER_COL_COUNT)?,
                    r.get::<_, Option<i64>>(USER_COL_COUNT + 1)?,
                ))
            },
        )
        .optional()?;
    if let Some((_, id, _)) = &found {
        bookkeeping(c.execute(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2 - 60)",
            params![id, now],
        ))?;
    }
    Ok(found.map(|(u, _, exp)| (u, exp)))
}

/// Tokens of one user, or of everyone when `owner` is `None`; newest first.
pub fn list_tokens(c: &Connection, owner: Option<&str>) -> Result<Vec<TokenInfo>, AccountsError> {
    let mut st = c.prepare(&format!(
        "SELECT {TOKEN_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR t.user_id = ?1 ORDER BY t.created_at DESC, t.id DESC"
    ))?;
    let rows = st
        .query_map([owner], token_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Revokes a token (of `owner` only, unless `None`). `NotFound` when there is no such token.
pub fn revoke_token(
    c: &Connection,
    id: &str,
    owner: Option<&str>,
    now: i64,
) -> Result<(), AccountsError> {
    let n = c.execute(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)",
        params![id, owner, now],
    )?;
    if n == 0 {
        return Err(AccountsError::NotFound("token"));
    }
    Ok(())
}

// --- first-run setup -----------------------------------------------------------------------

/// Replaces any unused setup token with a new one (by hash).
pub fn create_setup_token(
    c: &Connection,
    token_hash: &[u8],
    now: i64,
    expires_at: i64,
) -> Result<(), AccountsError> {
    c.execute("DELETE FROM setup_tokens WHERE used_at IS NULL", [])?;
    c.execute(
        "INSERT INTO setup_tokens (token_hash, created_at, expires_at) VALUES (?1, ?2, ?3)",
        params![token_hash, now, expires_at],
    )?;
    Ok(())
}

/// Whether setup can still happen with this token: no admin yet (else `AlreadySetUp`) and
/// the token unused and unexpired. `complete_setup` checks again in its transaction.
pub fn setup_token_open(
    c: &Connection,
    token_hash: &[u8],
    now: i64,
) -> Result<bool, AccountsError> {
    if has_admin(c)? {
        return Err(AccountsError::AlreadySetUp);
    }
    Ok(c.query_row(
        "SELECT COUNT(*) FROM setup_tokens WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![token_hash, now],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

/// Creates the first admin with a valid, unused setup token, in one transaction: the token is
/// spent and the admin exists, or neither.
pub fn complete_setup(
    c: &mut Connection,
    token_hash: &[u8],
    username: &Username,
    password_hash: &str,
    now: i64,
) -> Result<Option<User>, AccountsError> {
    let tx = c.transaction()?;
    if has_admin(&tx)? {
        return Err(AccountsError::AlreadySetUp);
    }
    let spent = tx.execute(
        "UPDATE setup_tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![token_hash, now],
    )?;
    if spent == 0 {
        return Ok(None);
    }
    let user = create_user(&tx, username, password_hash, Role::Admin, now)?;
    tx.commit()?;
    Ok(Some(user))
}
