//! `/api/v1/users` (admin only).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::accounts::{self, Role, User, Username, store};
use crate::clock::now;
use crate::http::auth::{Principal, require};
use crate::http::error::ApiError;
use crate::http::error::ErrorEnvelope;
use crate::http::filters::{json_body, with_state};
use crate::http::route;
use crate::http::state::AppState;

const JSON: &[&str] = &["application/json"];

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name: 1-64 of A-Z a-z 0-9 . _ -
    pub username: String,
    /// At least 10 characters.
    pub password: String,
    /// `admin`, `editor` or `listener` (default `editor`).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "editor")]
    pub role: Option<Role>,
}

/// Fields to change; absent ones stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// New role.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "admin")]
    pub role: Option<Role>,
    /// Disable (ends sessions, stops tokens) or re-enable.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// New password (ends sessions).
    #[serde(default)]
    pub password: Option<String>,
    /// Subsonic streams through Veza instead of a redirect to the CDN.
    #[serde(default)]
    pub stream_proxy: Option<bool>,
}

/// A freshly generated app password, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppPassword {
    /// Whose it is.
    pub username: String,
    /// The password Subsonic apps log in with (never the account password).
    pub app_password: String,
}

/// All users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// Oldest first.
    pub users: Vec<User>,
}

/// Every users route.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let limit = s.config.server.max_json_bytes;
    let list = route(
        "GET",
        "/api/v1/users",
        warp::path!("api" / "v1" / "users")
            .and(warp::get())
            .and(require(s, Role::Admin))
            .and(with_state(s))
            .and_then(list),
    );
    let create = route(
        "POST",
        "/api/v1/users",
        warp::path!("api" / "v1" / "users")
            .and(warp::post())
            .and(require(s, Role::Admin))
            .and(with_state(s))
            .and(json_body::<CreateUser>(limit, JSON))
            .and_then(create),
    );
    let patch = route(
        "PATCH",
        "/api/v1/users/{id}",
        warp::path!("api" / "v1" / "users" / String)
            .and(warp::patch())
            .and(require(s, Role::Admin))
            .and(with_state(s))
            .and(json_body::<PatchUser>(limit, JSON))
            .and_then(patch),
    );
    let delete = route(
        "DELETE",
        "/api/v1/users/{id}",
        warp::path!("api" / "v1" / "users" / String)
            .and(warp::delete())
            .and(require(s, Role::Admin))
            .and(with_state(s))
            .and_then(delete),
    );
    let app_password = route(
        "POST",
        "/api/v1/users/{id}/app-password",
        warp::path!("api" / "v1" / "users" / String / "app-password")
            .and(warp::post())
            .and(require(s, Role::Listener))
            .and(with_state(s))
            .and_then(app_password),
    );
    list.or(create)
        .unify()
        .or(app_password)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .boxed()
}

/// Lists users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = UserList), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
async fn list(_who: Principal, s: AppState) -> Result<Response, Rejection> {
    let users =
        s.db.call(|c| store::list_users(c))
            .await
            .map_err(ApiError::from)?;
    Ok(warp::reply::json(&UserList { users }).into_response())
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    security(("session" = []), ("bearer" = [])),
    responses((status = 201, body = User), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 409, description = "Username taken", body = ErrorEnvelope)))]
async fn create(who: Principal, s: AppState, req: CreateUser) -> Result<Response, Rejection> {
    let username = Username::parse(&req.username).map_err(ApiError::from)?;
    let hash = hash_new(&s, req.password).await?;
    let role = req.role.unwrap_or(Role::Editor);
    let user =
        s.db.call(move |c| store::create_user(c, &username, &hash, role, now()))
            .await
            .map_err(ApiError::from)?;
    tracing::info!(by = %who.user.id, user_id = %user.id, role = %user.role, "user created");
    Ok(warp::reply::with_status(warp::reply::json(&user), StatusCode::CREATED).into_response())
}

/// Changes a user's role, disabled flag or password. The last enabled admin stays one.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = PatchUser,
    params(("id" = String, Path, description = "User id")), security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = User), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "Would leave no enabled admin", body = ErrorEnvelope)))]
async fn patch(
    id: String,
    who: Principal,
    s: AppState,
    req: PatchUser,
) -> Result<Response, Rejection> {
    let password_hash = match req.password {
        Some(pw) => Some(hash_new(&s, pw).await?),
        None => None,
    };
    let change = store::UserChange {
        role: req.role,
        disabled: req.disabled,
        password_hash,
        stream_proxy: req.stream_proxy,
    };
    let user =
        s.db.call(move |c| store::update_user(c, &id, &change))
            .await;
    // Whatever happened (a role, a disable, a password), no cached token outlives it.
    s.caches.accounts_changed();
    let user = user.map_err(ApiError::from)?;
    tracing::info!(by = %who.user.id, user_id = %user.id, "user changed");
    Ok(warp::reply::json(&user).into_response())
}

/// Generates a new app password for Subsonic apps (replacing the old one). Admins for anyone;
/// every user for themselves.
#[utoipa::path(post, path = "/api/v1/users/{id}/app-password", tag = "users",
    params(("id" = String, Path, description = "User id")), security(("session" = []), ("bearer" = [])),
    responses((status = 201, body = AppPassword), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn app_password(id: String, who: Principal, s: AppState) -> Result<Response, Rejection> {
    if who.user.role != Role::Admin && who.user.id != id {
        return Err(
            ApiError::Forbidden("only admins make app passwords for other users".into()).into(),
        );
    }
    let sealer = s.sealer.clone();
    let (user, app_password) =
        s.db.call(move |c| accounts::app_password::issue(c, &sealer, &id, now()))
            .await
            .map_err(ApiError::from)?;
    tracing::info!(by = %who.user.id, user_id = %user.id, "app password issued");
    let body = AppPassword {
        username: user.username,
        app_password,
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::CREATED).into_response())
}

/// Deletes a user with their sessions and tokens. Never the last enabled admin.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")), security(("session" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, description = "Last enabled admin", body = ErrorEnvelope)))]
async fn delete(id: String, who: Principal, s: AppState) -> Result<Response, Rejection> {
    let target = id.clone();
    let deleted = s.db.call(move |c| store::delete_user(c, &target)).await;
    s.caches.accounts_changed();
    deleted.map_err(ApiError::from)?;
    tracing::info!(by = %who.user.id, user_id = %id, "user deleted");
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// Checks and hashes a new password off the executor.
async fn hash_new(s: &AppState, pw: String) -> Result<String, Rejection> {
    accounts::check_new_password(&pw).map_err(ApiError::from)?;
    Ok(s.hashes
        .run(move || accounts::hash_password(&pw))
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?)
}
