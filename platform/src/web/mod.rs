//! The platform's HTTP server: the appliances' `POST /v1/events`, the pages of each
//! level, CSV exports, the allow list file and the metrics.

mod export;
mod html;
mod ingest;
pub mod pages;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::auth::Limiter;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{DbError, Sql, Store};

pub use session::Viewer;

/// Everything a request may use.
pub struct App {
    /// The config.
    pub config: Config,
    /// The database.
    pub store: Arc<Store>,
    /// Failed logins.
    pub limiter: Limiter,
    /// Metrics.
    pub metrics: Metrics,
    /// Category names for people.
    pub names: fanzha::categories::Names,
}

/// Shared state.
pub type Shared = Arc<App>;

impl App {
    /// The app over an open store.
    pub fn new(config: Config, store: Store) -> Shared {
        Arc::new(App {
            limiter: Limiter::new(config.login_failures, config.login_window),
            config,
            store: Arc::new(store),
            metrics: Metrics::new(),
            names: fanzha::warnpage::Templates::builtin().names(),
        })
    }

    /// Run `f` on the blocking pool, in a write transaction (`write`) or on a snapshot.
    pub async fn db<T: Send + 'static>(
        &self,
        write: bool,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, WebError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || if write { store.write(f) } else { store.read(f) })
            .await
            .map_err(|e| WebError::Internal(format!("database task: {e}")))?
            .map_err(|e| WebError::Internal(e.to_string()))
    }
}

/// A request that ends in an error page.
#[derive(Debug)]
pub enum WebError {
    /// 404: not there, or not in the viewer's scope (the same answer on purpose).
    NotFound,
    /// 400 with a reason.
    BadRequest(String),
    /// 403: a form without its CSRF token.
    Forbidden,
    /// 500: the database failed (logged; the page says to retry).
    Internal(String),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "未找到 Not found".to_string()),
            WebError::BadRequest(why) => (
                StatusCode::BAD_REQUEST,
                format!("请求有误 Bad request: {why}"),
            ),
            WebError::Forbidden => (
                StatusCode::FORBIDDEN,
                "表单已过期，请返回刷新后重试 The form expired: go back, reload and try again"
                    .to_string(),
            ),
            WebError::Internal(why) => {
                tracing::error!(error = %why, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "服务器出错，请稍后重试 Server error, try again".to_string(),
                )
            }
        };
        (status, axum::response::Html(html::bare(&text))).into_response()
    }
}

/// The routes.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route(
            "/v1/events",
            post(ingest::events).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/allowlist.txt", get(pages::allowlist_txt))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/", get(pages::overview))
        .route("/cases", get(pages::cases))
        .route("/cases/{id}", get(pages::case))
        .route("/cases/{id}/outcome", post(pages::outcome))
        .route("/appeals", get(pages::appeals))
        .route("/appeals/{id}", post(pages::decide))
        .route("/audit", get(pages::audit))
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

/// Unix ms now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
