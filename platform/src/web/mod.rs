//! The platform's HTTP server: the appliances' `POST /v1/events`, the pages of each
//! level, CSV exports, the allow list file and the metrics.

mod casework;
mod export;
mod html;
mod ingest;
mod overview;
pub mod review;
mod session;
mod state;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use session::Viewer;
pub use state::{App, Shared, WebError, now_ms};

/// The routes.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route(
            "/v1/events",
            post(ingest::events).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/allowlist.txt", get(review::allowlist_txt))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/", get(overview::overview))
        .route("/cases", get(casework::cases))
        .route("/cases/{id}", get(casework::case))
        .route("/cases/{id}/outcome", post(casework::outcome))
        .route("/appeals", get(review::appeals))
        .route("/appeals/{id}", post(review::decide))
        .route("/audit", get(review::audit))
        .route("/export/{view}", get(export::csv))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::map_response(headers))
        .with_state(app)
}

/// Every answer: no caching of people's data, no framing, no scripts.
async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert("X-Frame-Options", HeaderValue::from_static("DENY"));
    h.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("Referrer-Policy", HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

async fn healthz(axum::extract::State(app): axum::extract::State<Shared>) -> Response {
    match app.db(false, |db| db.int("SELECT 1", &[])).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response(),
    }
}

async fn metrics(axum::extract::State(app): axum::extract::State<Shared>) -> Response {
    // Read at scrape time: the figures are the database's, whichever instance wrote them.
    if let Ok((open, waiting, health)) = app
        .db(false, |db| {
            Ok((
                crate::store::cases::open_counts(db)?,
                crate::store::appeals::waiting(db)?,
                crate::store::cases::appliances(db)?,
            ))
        })
        .await
    {
        let m = &app.metrics;
        m.open_cases.reset();
        for (street, community, n) in open {
            m.open_cases
                .with_label_values(&[&street, &community])
                .set(n);
        }
        m.appeals_waiting
            .with_label_values(&[] as &[&str])
            .set(waiting);
        for h in health {
            let name = [h.name.as_str()];
            m.delay.with_label_values(&name).set(h.delay_ms / 1000);
            m.last_event
                .with_label_values(&name)
                .set(h.last_event_ms / 1000);
            m.spool.with_label_values(&name).set(h.spool_bytes);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    app: Shared,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
