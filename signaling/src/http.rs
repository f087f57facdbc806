//! Plain HTTP routes: health, Prometheus metrics, the development token endpoint, and the JSON
//! 404 for everything else. (The web client is `web`.)

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use messaging::auth::Claims;
use serde::Deserialize;

use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::bearer_token;
use crate::metrics::head;

/// Liveness: `{"status": "ok"}` while the server runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The server is up")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// `GET /metrics` in Prometheus text format: aggregates only (per worker, per close code), no
/// room names or participant ids. With `Authorization: Bearer <admin token>` (`gax token
/// --admin`) also the per-session and per-consumer families, labelled by room and participant.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Counters in Prometheus text format (docs/operations.md); per-session detail with an admin token",
        content_type = "text/plain")))]
pub async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> impl IntoResponse {
    let admin = bearer_token(&headers)
        .and_then(|t| app.tokens.verify(&t).ok())
        .is_some_and(|c| c.admin);
    let mut out = String::new();
    let stats = app.sfu.worker_stats();
    if let Some(first) = stats.first() {
        for (i, (name, help, _, counter)) in first.fields().iter().enumerate() {
            let kind = if *counter { "counter" } else { "gauge" };
            head(&mut out, &format!("gax_media_{name}"), kind, help);
            for (w, s) in stats.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gax_media_{name}{{worker=\"{w}\"}} {}",
                    s.fields()[i].2
                );
            }
        }
    }
    head(
        &mut out,
        "gax_media_layer_switches_total",
        "counter",
        "Simulcast layer switches, by reason",
    );
    for (w, s) in stats.iter().enumerate() {
        for reason in sfu_core::layers::SwitchReason::ALL {
            let _ = writeln!(
                out,
                "gax_media_layer_switches_total{{worker=\"{w}\",reason=\"{}\"}} {}",
                reason.as_str(),
                s.layer_switches[reason.index()].get()
            );
        }
    }
    head(
        &mut out,
        "gax_ws_connections_total",
        "counter",
        "Call WebSocket connections opened",
    );
    let _ = writeln!(
        out,
        "gax_ws_connections_total {}",
        app.stats.connections.get()
    );
    head(
        &mut out,
        "gax_ws_rate_limited_total",
        "counter",
        "WebSocket messages dropped: over the session's budget (all), or typing over its own (typing)",
    );
    let _ = writeln!(
        out,
        "gax_ws_rate_limited_total{{kind=\"all\"}} {}",
        app.stats.rate_limited.get()
    );
    let _ = writeln!(
        out,
        "gax_ws_rate_limited_total{{kind=\"typing\"}} {}",
        app.stats.typing_dropped.get()
    );
    head(
        &mut out,
        "gax_ws_closed_total",
        "counter",
        "Call WebSocket connections closed, by close code",
    );
    for (code, n) in app.stats.closes() {
        let _ = writeln!(out, "gax_ws_closed_total{{code=\"{code}\"}} {n}");
    }
    head(
        &mut out,
        "gax_http_connections",
        "gauge",
        "HTTP connections open (WebSockets included)",
    );
    let _ = writeln!(out, "gax_http_connections {}", app.connections.open());
    head(
        &mut out,
        "gax_http_connections_refused_total",
        "counter",
        "HTTP connections refused at a cap, by reason (server_full, per_ip)",
    );
    for r in crate::connections::Refusal::ALL {
        let _ = writeln!(
            out,
            "gax_http_connections_refused_total{{reason=\"{}\"}} {}",
            r.as_str(),
            app.connections.refused(r)
        );
    }
    head(
        &mut out,
        "gax_watch_viewers",
        "gauge",
        "Watch-party viewers connected to this node",
    );
    let _ = writeln!(
        out,
        "gax_watch_viewers {}",
        app.messenger.watch_hub.viewers()
    );
    if admin {
        crate::metrics::sessions(&mut out, &app.sfu.session_stats().await);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevTokenQuery {
    room: String,
    #[serde(default)]
    name: Option<String>,
}

/// `GET /api/dev/token?room=R&name=N`: a one-hour token, only in development mode.
#[utoipa::path(get, path = "/api/dev/token", tag = "calls",
    params(("room" = String, Query, description = "The call room"),
        ("name" = Option<String>, Query, description = "Display name")),
    responses((status = 200, description = "`{token, room, name}`"),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Not in development mode", body = ErrorBody)))]
pub async fn dev_token(
    State(app): State<Arc<App>>,
    query: Result<Query<DevTokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !app.dev {
        return Err(ApiError::NotFound(
            "development tokens are only served by `gax serve --dev`".into(),
        ));
    }
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if q.room.is_empty() || q.room.len() > 128 {
        return Err(ApiError::BadRequest(
            "room must be 1 to 128 characters".into(),
        ));
    }
    let name = q
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "guest".into());
    let identity = format!("{name}-{:08x}", rand_suffix());
    let claims = Claims::for_room(&identity, Some(&name), &q.room, Duration::from_secs(3600));
    let token = app
        .tokens
        .mint(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(
        serde_json::json!({ "token": token, "room": q.room, "identity": identity }),
    ))
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}
