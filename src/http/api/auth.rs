//! `/api/v1/auth/login`, `/api/v1/auth/logout`, `/api/v1/me`, `/api/v1/setup`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::accounts::{self, Role, User, Username, store};
use crate::clock::now;
use crate::http::auth::{Principal, SESSION_COOKIE, Via, require};
use crate::http::error::ApiError;
use crate::http::filters::{client_ip, json_body, with_state};
use crate::http::route;
use crate::http::state::AppState;

const JSON: &[&str] = &["application/json"];

/// Login form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name (case-insensitive).
    pub username: String,
    /// Password.
    pub password: String,
}

/// A session was opened.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The logged-in user.
    pub user: User,
    /// Send as `x-csrf-token` on every cookie-authenticated write.
    pub csrf_token: String,
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The authenticated user.
    pub user: User,
    /// The session's CSRF token (absent for API tokens).
    pub csrf_token: Option<String>,
}

/// First-admin creation through the one-time setup link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The `token` of the setup link logged at first start.
    pub token: String,
    /// The admin's login name.
    pub username: String,
    /// The admin's password (at least 10 characters).
    pub password: String,
}

/// `POST login`, `POST logout`, `GET me`, `POST setup`.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let limit = s.config.server.max_json_bytes;
    let login = route(
        "POST",
        "/api/v1/auth/login",
        warp::path!("api" / "v1" / "auth" / "login")
            .and(warp::post())
            .and(with_state(s))
            .and(client_ip())
            .and(json_body::<LoginRequest>(limit, JSON))
            .and_then(login),
    );
    let logout = route(
        "POST",
        "/api/v1/auth/logout",
        warp::path!("api" / "v1" / "auth" / "logout")
            .and(warp::post())
            .and(require(s, Role::Listener))
            .and(with_state(s))
            .and_then(logout),
    );
    let me = route(
        "GET",
        "/api/v1/me",
        warp::path!("api" / "v1" / "me")
            .and(warp::get())
            .and(require(s, Role::Listener))
            .map(me),
    );
    let setup = route(
        "POST",
        "/api/v1/setup",
        warp::path!("api" / "v1" / "setup")
            .and(warp::post())
            .and(with_state(s))
            .and(client_ip())
            .and(json_body::<SetupRequest>(limit, JSON))
            .and_then(setup),
    );
    login
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .or(setup)
        .unify()
        .boxed()
}

/// Log in: opens a session cookie and returns the CSRF token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; sets the HttpOnly session cookie", body = LoginResponse),
        (status = 400, body = crate::http::error::ErrorEnvelope),
        (status = 401, description = "Wrong username or password", body = crate::http::error::ErrorEnvelope),
        (status = 429, description = "Too many failed attempts; see retry-after", body = crate::http::error::ErrorEnvelope),
        (status = 503, description = "Too many password checks at once; see retry-after", body = crate::http::error::ErrorEnvelope),
    ))]
async fn login(s: AppState, ip: IpAddr, req: LoginRequest) -> Result<Response, Rejection> {
    let wrong =
        || warp::reject::custom(ApiError::Unauthorized("wrong username or password".into()));
    let limited =
        |retry_after_secs| warp::reject::custom(ApiError::RateLimited { retry_after_secs });
    // A name that cannot exist is a failure without hashing, and never becomes a limiter key
    // or a log field as sent (64 KiB names with newlines were both).
    let Ok(username) = Username::parse(&req.username) else {
        s.login.check_ip(ip).map_err(limited)?;
        s.login.failed(ip, None);
        tracing::info!(client = %ip, "login failed: malformed username");
        return Err(wrong());
    };
    let key = username.as_str().to_ascii_lowercase();
    s.login.check(ip, &key).map_err(limited)?;
    let name = username.as_str().to_owned();
    let found =
        s.db.call(move |c| store::find_login(c, &name))
            .await
            .map_err(ApiError::from)?;
    // Verify against a dummy hash for unknown users: the same work, the same time.
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, accounts::dummy_hash().to_owned()),
    };
    let password = req.password;
    let ok = s
        .hashes
        .run(move || accounts::verify_password(&password, &hash))
        .await
        .map_err(ApiError::from)?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            s.login.failed(ip, Some(&key));
            tracing::info!(username = %username.as_str(), client = %ip, "login failed");
            return Err(wrong());
        }
    };
    s.login.succeeded(ip, &key);
    let cookie = accounts::random_secret();
    let csrf = accounts::random_secret();
    let id_hash = accounts::secret_hash(&cookie);
    let (t, max) = (now(), s.config.auth.session_max_secs);
    let (uid, csrf2) = (user.id.clone(), csrf.clone());
    s.db.call(move |c| {
        store::create_session(c, &id_hash, &uid, &csrf2, t, t + max)?;
        store::record_login(c, &uid, t)
    })
    .await
    .map_err(ApiError::from)?;
    let user = User {
        last_login_at: Some(t),
        ..user
    };
    tracing::info!(user_id = %user.id, "login");
    let secure = if s.config.server.public_url.scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let set = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max}{secure}"
    );
    let mut resp = warp::reply::json(&LoginResponse {
        user,
        csrf_token: csrf,
    })
    .into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&set).map_err(|_| warp::reject::custom(ApiError::Internal))?,
    );
    Ok(resp)
}

/// Log out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("session" = []), ("bearer" = [])),
    responses((status = 204, description = "Logged out"),
              (status = 401, body = crate::http::error::ErrorEnvelope),
              (status = 403, description = "CSRF token missing or wrong", body = crate::http::error::ErrorEnvelope)))]
async fn logout(who: Principal, s: AppState) -> Result<Response, Rejection> {
    if let Via::Session { id_hash, .. } = who.via {
        s.db.call(move |c| store::delete_session(c, &id_hash))
            .await
            .map_err(ApiError::from)?;
    }
    let mut resp = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("veza_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

/// The caller and, for sessions, the CSRF token.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = crate::http::error::ErrorEnvelope)))]
fn me(who: Principal) -> Response {
    let csrf_token = match who.via {
        Via::Session { csrf, .. } => Some(csrf),
        Via::Token { .. } => None,
    };
    warp::reply::json(&MeResponse {
        user: who.user,
        csrf_token,
    })
    .into_response()
}

/// Creates the first admin with the one-time setup link's token.
#[utoipa::path(post, path = "/api/v1/setup", tag = "auth", request_body = SetupRequest,
    responses((status = 201, description = "First admin created", body = User),
              (status = 400, body = crate::http::error::ErrorEnvelope),
              (status = 403, description = "Setup token invalid, used or expired", body = crate::http::error::ErrorEnvelope),
              (status = 409, description = "An admin already exists", body = crate::http::error::ErrorEnvelope),
              (status = 429, description = "Too many failed attempts from this address; see retry-after", body = crate::http::error::ErrorEnvelope),
              (status = 503, description = "Too many password hashes at once; see retry-after", body = crate::http::error::ErrorEnvelope)))]
async fn setup(s: AppState, ip: IpAddr, req: SetupRequest) -> Result<Response, Rejection> {
    s.login.check_ip(ip).map_err(|retry_after_secs| {
        warp::reject::custom(ApiError::RateLimited { retry_after_secs })
    })?;
    let username = Username::parse(&req.username).map_err(ApiError::from)?;
    accounts::check_new_password(&req.password).map_err(ApiError::from)?;
    let invalid = || {
        warp::reject::custom(ApiError::Denied {
            code: "invalid_setup_token",
            message: "the setup link is invalid, used or expired; restart veza for a new one or use `veza admin create`".into(),
        })
    };
    // Token and "no admin yet" first: anonymous callers must not reach argon2 for free.
    let token_hash = accounts::secret_hash(&req.token);
    let th = token_hash.clone();
    let open =
        s.db.call(move |c| store::setup_token_open(c, &th, now()))
            .await
            .map_err(ApiError::from)?;
    if !open {
        s.login.failed(ip, None);
        return Err(invalid());
    }
    let pw = req.password;
    let hash = s
        .hashes
        .run(move || accounts::hash_password(&pw))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    let created =
        s.db.call(move |c| store::complete_setup(c, &token_hash, &username, &hash, now()))
            .await
            .map_err(ApiError::from)?;
    let user = created.ok_or_else(invalid)?;
    tracing::info!(user_id = %user.id, "first admin created through the setup link");
    Ok(warp::reply::with_status(warp::reply::json(&user), StatusCode::CREATED).into_response())
}
