//! `/api/v1/tokens`: API tokens. Editors manage their own; admins everyone's.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::accounts::{self, Role, TokenInfo, store};
use crate::clock::now;
use crate::http::auth::{Principal, Via, require};
use crate::http::error::ApiError;
use crate::http::error::ErrorEnvelope;
use crate::http::filters::{json_body, with_state};
use crate::http::route;
use crate::http::state::AppState;

const JSON: &[&str] = &["application/json"];
/// Longest token lifetime accepted.
pub const MAX_EXPIRES_DAYS: u32 = 3650;

/// A new token for the caller.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Label, e.g. the script that uses it (1-100 chars).
    pub name: String,
    /// Lifetime in days (1-3650); absent = no expiry.
    #[serde(default)]
    pub expires_days: Option<u32>,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// `vz_…`: store it now, it cannot be shown again.
    pub token: String,
    /// Its metadata.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Token metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenInfo>,
}

/// Every tokens route.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let limit = s.config.server.max_json_bytes;
    let list = route(
        "GET",
        "/api/v1/tokens",
        warp::path!("api" / "v1" / "tokens")
            .and(warp::get())
            .and(require(s, Role::Listener))
            .and(with_state(s))
            .and_then(list),
    );
    let create = route(
        "POST",
        "/api/v1/tokens",
        warp::path!("api" / "v1" / "tokens")
            .and(warp::post())
            .and(require(s, Role::Listener))
            .and(with_state(s))
            .and(json_body::<CreateToken>(limit, JSON))
            .and_then(create),
    );
    let revoke = route(
        "DELETE",
        "/api/v1/tokens/{id}",
        warp::path!("api" / "v1" / "tokens" / String)
            .and(warp::delete())
            .and(require(s, Role::Listener))
            .and(with_state(s))
            .and_then(revoke),
    );
    list.or(create).unify().or(revoke).unify().boxed()
}

/// Whose tokens the caller may see and revoke: all for admins, their own otherwise (a
/// listener's token is how a Subsonic app logs in with `apiKey`).
fn scope(who: &Principal) -> Option<String> {
    (who.user.role != Role::Admin).then(|| who.user.id.clone())
}

/// Lists tokens (admins: everyone's).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorEnvelope)))]
async fn list(who: Principal, s: AppState) -> Result<Response, Rejection> {
    let owner = scope(&who);
    let tokens =
        s.db.call(move |c| store::list_tokens(c, owner.as_deref()))
            .await
            .map_err(ApiError::from)?;
    Ok(warp::reply::json(&TokenList { tokens }).into_response())
}

/// Creates a token for the caller; the secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    security(("session" = []), ("bearer" = [])),
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope)))]
async fn create(who: Principal, s: AppState, req: CreateToken) -> Result<Response, Rejection> {
    // A token may mint tokens, but none that outlives it: a leaked short-lived token must
    // not turn into a permanent one.
    if let Via::Token {
        expires_at: Some(limit),
    } = who.via
    {
        let asked = req.expires_days.map(|d| now() + i64::from(d) * 86_400);
        if asked.is_none_or(|a| a > limit) {
            return Err(warp::reject::custom(ApiError::Denied {
                code: "token_outlives_caller",
                message: format!(
                    "this API token expires at {limit} (Unix seconds); a token it creates must set expires_days and expire no later"
                ),
            }));
        }
    }
    let (token, info) = issue(&s, &who.user.id, &req.name, req.expires_days).await?;
    tracing::info!(user_id = %who.user.id, token_id = %info.id, "API token created");
    Ok(warp::reply::with_status(
        warp::reply::json(&CreatedToken { token, info }),
        StatusCode::CREATED,
    )
    .into_response())
}

/// Validates and stores a new token for `user_id`; returns the secret once.
pub(crate) async fn issue(
    s: &AppState,
    user_id: &str,
    name: &str,
    expires_days: Option<u32>,
) -> Result<(String, TokenInfo), ApiError> {
    let name = name.trim().to_owned();
    if !(1..=100).contains(&name.chars().count()) {
        return Err(ApiError::BadRequest {
            code: "invalid_name",
            message: "name must be 1-100 characters".into(),
        });
    }
    if expires_days.is_some_and(|d| !(1..=MAX_EXPIRES_DAYS).contains(&d)) {
        return Err(ApiError::BadRequest {
            code: "invalid_expiry",
            message: format!("expires_days must be 1-{MAX_EXPIRES_DAYS}"),
        });
    }
    let token = accounts::new_api_token();
    let hash = accounts::secret_hash(&token);
    let t = now();
    let expires_at = expires_days.map(|d| t + i64::from(d) * 86_400);
    let uid = user_id.to_owned();
    let info =
        s.db.call(move |c| store::create_token(c, &uid, &name, &hash, t, expires_at))
            .await?;
    Ok((token, info))
}

/// Revokes a token (editors: their own only).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")), security(("session" = []), ("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn revoke(id: String, who: Principal, s: AppState) -> Result<Response, Rejection> {
    let owner = scope(&who);
    let target = id.clone();
    let revoked =
        s.db.call(move |c| store::revoke_token(c, &target, owner.as_deref(), now()))
            .await;
    s.caches.accounts_changed();
    revoked.map_err(ApiError::from)?;
    tracing::info!(by = %who.user.id, token_id = %id, "API token revoked");
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}
