//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every `/api/v1` route, generated
//! from the handlers' annotations and types. A test fails when a served route is missing here.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::http::error::{ErrorBody, ErrorEnvelope};
use crate::http::route;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("vz_…")
                    .description(Some(
                        "API token from `veza token create` or POST /api/v1/tokens",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "veza_session",
                "Dashboard session from POST /api/v1/auth/login; writes also need the x-csrf-token header",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Veza API", description = "Self-hosted audio streaming origin. Errors use the ErrorEnvelope schema."),
    paths(
        super::auth::login, super::auth::logout, super::auth::me, super::auth::setup,
        super::users::list, super::users::create, super::users::patch, super::users::delete,
        super::users::app_password,
        super::tokens::list, super::tokens::create, super::tokens::revoke,
        super::tracks::upload, super::tracks::list, super::tracks::get, super::tracks::patch,
        super::tracks::delete, super::tracks::cover,
        super::jobs::list, super::jobs::retry,
        super::stream::stream,
        super::takedown::takedown, super::takedown::restore, super::takedown::audit,
        super::web_vitals::record,
        super::dashboard::stats, super::dashboard::settings, super::dashboard::oembed,
        openapi_json,
    ),
    components(schemas(ErrorEnvelope, ErrorBody, crate::accounts::User, crate::accounts::TokenInfo)),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Sessions, the caller, first-run setup"),
        (name = "users", description = "Accounts (admin)"),
        (name = "tokens", description = "API tokens"),
        (name = "tracks", description = "The library"),
        (name = "jobs", description = "Background jobs: HLS packaging, CDN purges"),
        (name = "observability", description = "Real-user monitoring"),
        (name = "meta", description = "This document, the dashboard's overview and settings"),
    )
)]
struct ApiDoc;

/// The document as JSON.
pub fn document() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::version::VERSION.to_owned();
    serde_json::to_value(&doc).expect("an OpenAPI document serialises")
}

/// `GET /api/v1/openapi.json`
pub(crate) fn routes() -> BoxedFilter<(Response,)> {
    let doc = document();
    route(
        "GET",
        "/api/v1/openapi.json",
        warp::path!("api" / "v1" / "openapi.json")
            .and(warp::get())
            .map(move || warp::reply::json(&doc).into_response()),
    )
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
#[allow(dead_code)] // documents the route; the filter above serves it
fn openapi_json() {}
