//! The route table: every URL of the server, the handler that answers it, and the OpenAPI
//! document generated from those handlers (`GET /api/openapi.json`), so a route cannot exist
//! without being described. Handlers live in their doors ([`api`], [`files`], [`whip`],
//! [`ws`], [`http`]); this module only lists them.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::error::ErrorBody;
use crate::{api, files, http, web, whip, ws};

/// The OpenAPI document's frame; the paths come from the handlers in [`api_routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "GAX API",
        description = "Accounts, friends, chats, messages and watch parties of GAX. Every route but register, \
                       login and refresh takes `Authorization: Bearer <access token>`. Errors \
                       are JSON `{\"error\": code, \"message\": text}` with a stable code."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The HTTP API routes (REST, `/ws`, WHIP/WHEP, files, operations) and their OpenAPI
/// description.
pub fn api_routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::accounts::register))
        .routes(routes!(api::accounts::login))
        .routes(routes!(api::accounts::refresh))
        .routes(routes!(api::accounts::logout))
        .routes(routes!(api::profiles::me, api::profiles::update_me))
        .routes(routes!(api::profiles::user))
        .routes(routes!(api::profiles::user_by_name))
        .routes(routes!(api::friends::friends))
        .routes(routes!(api::friends::request_friend))
        .routes(routes!(api::friends::accept_friend))
        .routes(routes!(api::friends::decline_friend))
        .routes(routes!(api::friends::remove_friend))
        .routes(routes!(api::chats::list_chats, api::chats::create_chat))
        .routes(routes!(api::chats::get_chat, api::chats::rename_chat))
        .routes(routes!(api::chats::add_member))
        .routes(routes!(api::chats::remove_member))
        .routes(routes!(api::messages::history, api::messages::send_message))
        .routes(routes!(
            api::messages::edit_message,
            api::messages::delete_message
        ))
        .routes(routes!(api::messages::mark_read))
        .routes(routes!(api::chats::chat_call))
        .routes(routes!(api::search::search))
        .routes(routes!(http::healthz))
        .routes(routes!(http::metrics))
        .routes(routes!(http::dev_token))
        .routes(routes!(ws::upgrade))
        .routes(routes!(whip::publish))
        .routes(routes!(whip::stop, whip::trickle))
        .routes(routes!(whip::play))
        .routes(routes!(whip::stop_playing, whip::trickle_playing))
        .routes(routes!(api::watch::create_room))
        .routes(routes!(api::watch::get_room))
        .routes(routes!(api::watch::set_member))
        .routes(routes!(api::watch::share_link))
        .routes(routes!(api::watch::control))
        .merge(files::routes())
}

/// All routes.
pub fn router(app: Arc<App>) -> Router {
    let (rest, openapi) = api_routes().split_for_parts();
    let openapi = Arc::new(openapi);
    Router::new()
        .merge(rest)
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/app.css", get(web::app_css))
        .route("/chat.js", get(web::chat_js))
        .route("/chat.css", get(web::chat_css))
        .route("/watch/{room}", get(web::watch_page))
        .route("/watch.js", get(web::watch_js))
        .route("/watch.css", get(web::watch_css))
        .route("/js/{*file}", get(web::module))
        .fallback(http::not_found)
        .layer(axum::middleware::from_fn(refuse_nul_in_url))
        .with_state(app)
}

/// A URL with `%00` is a 400 before any route reads it: no id, name or query text needs a NUL,
/// and none may reach the database (Postgres refuses it; SQLite would store it).
async fn refuse_nul_in_url(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().contains("%00"))
    {
        return crate::extract::nul_refused().into_response();
    }
    next.run(req).await
}
