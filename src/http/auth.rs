//! Who is calling, and may they: session cookies (with CSRF on writes) and bearer API tokens.
//! Each protected route names its role with `require(s, Role::…)`, so the rule is visible at
//! the route.

use subtle::ConstantTimeEq;
use warp::http::Method;
use warp::{Filter, Rejection};

use crate::accounts::{self, Role, TOKEN_PREFIX, User, store};
use crate::clock::now;
use crate::http::error::ApiError;
use crate::http::filters::with_state;
use crate::http::state::AppState;

/// Name of the dashboard session cookie.
pub const SESSION_COOKIE: &str = "veza_session";

/// How a caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// Dashboard session; writes need this CSRF token in `x-csrf-token`.
    Session {
        /// The session's CSRF token.
        csrf: String,
        /// SHA-256 of the cookie value (to end the session on logout).
        id_hash: Vec<u8>,
    },
    /// `Authorization: Bearer vz_…`.
    Token {
        /// When the token used expires (`None`: never); tokens it mints may not outlive it.
        expires_at: Option<i64>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// How they proved it.
    pub via: Via,
}

/// The caller, or `None` for anonymous. A bearer token that is present but invalid, revoked or
/// expired is a 401, never a silent downgrade to anonymous.
/// The track-access viewer a caller is: a member when an editor or admin, a listener, or
/// anonymous.
pub(crate) fn viewer_of(who: &Option<Principal>) -> crate::tracks::Viewer {
    match who {
        Some(p) => crate::tracks::Viewer::of_role(p.user.role),
        None => crate::tracks::Viewer::Anonymous,
    }
}

pub(crate) fn viewer(
    s: &AppState,
) -> impl Filter<Extract = (Option<Principal>,), Error = Rejection> + Clone + use<> {
    warp::header::optional::<String>("authorization")
        .and(warp::cookie::optional::<String>(SESSION_COOKIE))
        .and(with_state(s))
        .and_then(
            |authz: Option<String>, cookie: Option<String>, s: AppState| async move {
                resolve(authz, cookie, s)
                    .await
                    .map_err(warp::reject::custom)
            },
        )
}

async fn resolve(
    authz: Option<String>,
    cookie: Option<String>,
    s: AppState,
) -> Result<Option<Principal>, ApiError> {
    if let Some(h) = authz {
        let token = h
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization must be \"Bearer vz_…\"".into())
            })?;
        let (user, expires_at) = token_user(&s, token).await?.ok_or_else(|| {
            ApiError::Unauthorized("API token is invalid, revoked or expired".into())
        })?;
        return Ok(Some(Principal {
            user,
            via: Via::Token { expires_at },
        }));
    }
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    let id_hash = accounts::secret_hash(&cookie);
    let idle = s.config.auth.session_idle_secs;
    let lookup = id_hash.clone();
    let found =
        s.db.call(move |c| store::touch_session(c, &lookup, now(), idle))
            .await?;
    // A stale cookie is simply no session: the caller is anonymous.
    Ok(found.map(|(user, csrf)| Principal {
        user,
        via: Via::Session { csrf, id_hash },
    }))
}

/// The user of a live API token and the token's expiry, through the token cache (whose
/// generation every accounts write bumps, so a revoked or disabled token fails at once).
pub(crate) async fn token_user(
    s: &AppState,
    token: &str,
) -> Result<Option<(User, Option<i64>)>, accounts::AccountsError> {
    let hash = accounts::secret_hash(token);
    let at = now();
    let cache = &s.caches.tokens;
    if let Some(found) = cache.get_if(&hash, |(_, exp)| exp.is_none_or(|e| e > at)) {
        return Ok(Some(found));
    }
    let generation = cache.generation();
    let key = hash.clone();
    let found =
        s.db.call(move |c| store::authenticate_token(c, &key, at))
            .await?;
    if let Some(f) = &found {
        cache.insert(hash, f.clone(), generation);
    }
    Ok(found)
}

/// A caller with at least `role`; cookie-authenticated writes must carry the CSRF token.
pub(crate) fn require(
    s: &AppState,
    role: Role,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone + use<> {
    warp::method()
        .and(warp::header::optional::<String>("x-csrf-token"))
        .and(viewer(s))
        .and_then(
            move |m: Method, csrf: Option<String>, who: Option<Principal>| async move {
                check(&m, csrf.as_deref(), who, role).map_err(warp::reject::custom)
            },
        )
}

fn check(
    m: &Method,
    csrf: Option<&str>,
    who: Option<Principal>,
    role: Role,
) -> Result<Principal, ApiError> {
    let who = who.ok_or_else(|| {
        ApiError::Unauthorized("log in, or send Authorization: Bearer vz_…".into())
    })?;
    if let Via::Session { csrf: expected, .. } = &who.via {
        let safe = matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS);
        let ok = csrf.is_some_and(|got| bool::from(got.as_bytes().ct_eq(expected.as_bytes())));
        if !safe && !ok {
            return Err(ApiError::Denied {
                code: "csrf_failed",
                message: "missing or wrong x-csrf-token header (it comes with the login response and GET /api/v1/me)".into(),
            });
        }
    }
    if !who.user.role.allows(role) {
        return Err(ApiError::Forbidden(format!("this needs the {role} role")));
    }
    Ok(who)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role, via: Via) -> Option<Principal> {
        Some(Principal {
            user: User {
                id: "u".into(),
                username: "u".into(),
                role,
                disabled: false,
                created_at: 0,
                last_login_at: None,
                stream_proxy: false,
            },
            via,
        })
    }

    fn session() -> Via {
        Via::Session {
            csrf: "c".into(),
            id_hash: vec![],
        }
    }

    #[test]
    fn roles_and_csrf_are_enforced() {
        assert!(check(&Method::GET, None, None, Role::Editor).is_err());
        assert!(
            check(
                &Method::GET,
                None,
                who(Role::Editor, Via::Token { expires_at: None }),
                Role::Admin
            )
            .is_err()
        );
        assert!(
            check(
                &Method::POST,
                None,
                who(Role::Admin, Via::Token { expires_at: None }),
                Role::Admin
            )
            .is_ok()
        );
        assert!(
            check(
                &Method::GET,
                None,
                who(Role::Editor, session()),
                Role::Editor
            )
            .is_ok()
        );
        assert!(
            check(
                &Method::POST,
                None,
                who(Role::Editor, session()),
                Role::Editor
            )
            .is_err()
        );
        assert!(
            check(
                &Method::POST,
                Some("x"),
                who(Role::Editor, session()),
                Role::Editor
            )
            .is_err()
        );
        assert!(
            check(
                &Method::DELETE,
                Some("c"),
                who(Role::Editor, session()),
                Role::Editor
            )
            .is_ok()
        );
    }
}
