//! What every request shares: the app (config, store, limiter, metrics), the error
//! page of a request that fails, and the clock.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::html;
use crate::auth::Limiter;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{DbError, Sql, Store};

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

/// Unix ms now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
