//! The HTTP(S) server of the warning page. Never a proxy: every request is answered
//! here, from the templates.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::setup::{Setup, qr_svg};
use super::{AppealTokens, Templates, host_name};
use crate::blocklist::{Handle, Verdict};
use crate::limits::{PerClient, Quiet};
use crate::metrics::Metrics;
use crate::report::event::{Appeal, Input};
use crate::report::pipeline::Reporter;
use crate::text::clip;
use crate::wallclock::unix_now;

/// Where appeals are posted.
pub const APPEAL_PATH: &str = "/.well-known/fanzha/appeal";
/// The public display page, and its figures.
pub const KIOSK_PATH: &str = "/kiosk";
/// A place's phone setup page (`/setup/<id>`).
pub const SETUP_PATH: &str = "/setup/{id}";
/// A place's iOS configuration profile.
pub const PROFILE_PATH: &str = "/setup/{id}/profile.mobileconfig";
/// The kiosk's figures as JSON (refreshed by the page without reloading).
pub const KIOSK_FIGURES_PATH: &str = "/kiosk/figures.json";

/// State of the warning-page server.
pub struct WarnState {
    /// Blocklist (to find the category again from the Host header).
    pub lists: Arc<Handle>,
    /// Templates (shared with the alerts, which name categories with them).
    pub templates: Arc<arc_swap::ArcSwap<Templates>>,
    /// Appeal tokens.
    pub tokens: AppealTokens,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Recent appeals per client (rate limit).
    appeals: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    /// Appeals per client per 10 minutes.
    pub appeal_limit: usize,
    /// Receives appeals (the reporter); `None`: logged only.
    pub sink: Option<Reporter>,
    /// The places' private DNS names, for their phone setup pages (swapped on
    /// reload).
    pub setup: arc_swap::ArcSwap<Setup>,
}

impl WarnState {
    /// State with the given parts.
    pub fn new(lists: Arc<Handle>, templates: Templates, metrics: Arc<Metrics>) -> WarnState {
        Self::sharing(
            lists,
            Arc::new(arc_swap::ArcSwap::from_pointee(templates)),
            metrics,
        )
    }

    /// State with templates shared with another part (a reload reaches both).
    pub fn sharing(
        lists: Arc<Handle>,
        templates: Arc<arc_swap::ArcSwap<Templates>>,
        metrics: Arc<Metrics>,
    ) -> WarnState {
        WarnState {
            lists,
            templates,
            tokens: AppealTokens::random(),
            metrics,
            appeals: Mutex::new(HashMap::new()),
            appeal_limit: 5,
            sink: None,
            setup: arc_swap::ArcSwap::from_pointee(Setup::default()),
        }
    }

    fn appeal_allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let mut m = self.appeals.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 50_000 {
            m.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(600))
            });
        }
        // A device rotating its IPv6 addresses is one client.
        let q = m.entry(crate::limits::client_of(ip)).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(600))
        {
            q.pop_front();
        }
        if q.len() >= self.appeal_limit {
            return false;
        }
        q.push_back(now);
        true
    }
}

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // No referrer leaves for other sites, while the page's own appeal form still
    // carries its Origin (under "no-referrer" browsers send `Origin: null` with
    // every POST, which would leave the origin check nothing to check).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn host_header(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default()
}

async fn page(
    State(s): State<Arc<WarnState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = html(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let raw_host = host_header(&headers);
    let shown_host = clip(&raw_host, 253);
    // Shown decoded (as the resident typed it) and escaped by the template.
    let raw_path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let decoded = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    let path = clip(&decoded, 200);
    let templates = s.templates.load();
    let list = s.lists.load();
    let verdict = host_name(&raw_host).map(|h| (list.lookup(&h), h));
    match verdict {
        Some((Verdict::Block(hit), name)) => {
            let category = list.category(&hit).to_string();
            s.metrics
                .warnpage_views
                .with_label_values(&[category.as_str()])
                .inc();
            let token = s.tokens.token(&name, unix_now());
            html(
                StatusCode::OK,
                templates.page(&category, shown_host, path, &token),
            )
        }
        _ => {
            s.metrics.warnpage_views.with_label_values(&["none"]).inc();
            html(StatusCode::OK, templates.neutral(shown_host, path))
        }
    }
}

/// The warning page of a page blocked by a path rule (the URL proxy's): the host
/// itself is not blocked, so the category comes from the rule.
pub fn path_page(s: &WarnState, category: &str, host: &str, path: &str) -> Response {
    s.metrics
        .warnpage_views
        .with_label_values(&[category])
        .inc();
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let token = s.tokens.token(host, unix_now());
    let mut r = html(
        StatusCode::FORBIDDEN,
        s.templates
            .load()
            .page(category, clip(host, 253), clip(&decoded, 200), &token),
    );
    // Not this page's content: a browser or cache must not keep it as the page's.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    r
}

/// The seconds each slide of the kiosk shows: `turn` of its URL (3 to 120),
/// default 12.
fn turn_param(uri: &Uri) -> u64 {
    query_param(uri, "turn")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(12, |t| t.clamp(3, 120))
}

/// The `street` of a kiosk URL's query, if any (it is only compared with the
/// configured streets and shown escaped).
fn street_param(uri: &Uri) -> Option<String> {
    query_param(uri, "street")
}

/// The week's figures now, for `street`.
fn figures(s: &WarnState, street: Option<&str>) -> crate::metrics::week::Figures {
    s.metrics
        .week
        .figures(unix_now(), &s.metrics.blocked_counts(), street)
}

/// `HH:MM` of `unix` in the appliance's local time.
fn local_hhmm(unix: u64) -> String {
    let t = unix as libc::time_t;
    // SAFETY: `tm` is written by localtime_r, which reads only `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::new();
    }
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

/// Whether the request names a blocked host (its Host header): then every path is
/// that host's warning page.
fn blocked_host(s: &WarnState, headers: &HeaderMap) -> bool {
    let list = s.lists.load();
    host_name(&host_header(headers)).is_some_and(|h| list.lookup(&h).is_block())
}

/// The public display page. On a blocked host's name it is that host's warning
/// page, as every other path is.
async fn kiosk(
    state: State<Arc<WarnState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if blocked_host(&state, &headers) {
        return page(state, method, uri, headers).await;
    }
    let street = street_param(&uri);
    let f = figures(&state, street.as_deref());
    let setup = query_param(&uri, "place").and_then(|id| setup_slide(&state, &id, &headers));
    // The page's own script runs (by a nonce of this response); nothing else does,
    // and it may fetch from this server only.
    let nonce = hex::encode(random_bytes());
    let mut r = html(
        StatusCode::OK,
        state.templates.load().kiosk(
            &f,
            street.as_deref(),
            &local_hhmm(unix_now()),
            turn_param(&uri),
            &nonce,
            setup.as_deref(),
        ),
    );
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// The value of `key` in a URL's query: decoded ('+' is a space), trimmed and
/// clipped to 64 characters; `None` when absent or empty.
fn query_param(uri: &Uri, key: &str) -> Option<String> {
    let v = uri
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
        .replace('+', " ");
    let v = percent_encoding::percent_decode_str(&v).decode_utf8_lossy();
    Some(clip(v.trim(), 64).to_string()).filter(|s| !s.is_empty())
}

/// The address of place `id`'s setup page as the client reached this server (its
/// Host header, when it is a plain host name or address).
fn setup_url(headers: &HeaderMap, id: &str) -> Option<String> {
    let host = host_header(headers);
    let ok = |b: u8| b.is_ascii_alphanumeric() || b".-:[]".contains(&b);
    (!host.is_empty() && host.len() <= 260 && host.bytes().all(ok))
        .then(|| format!("http://{host}/setup/{}", id.to_ascii_lowercase()))
}

/// The kiosk's slide for place `id`: the QR code of its setup page.
fn setup_slide(s: &WarnState, id: &str, headers: &HeaderMap) -> Option<String> {
    let setup = s.setup.load();
    let name = setup.place_name(id)?;
    let url = setup_url(headers, id)?;
    let qr = qr_svg(&url, 300)?;
    Some(format!(
        "<div class=\"tag\">{}</div><h1>扫码，让手机在任何网络下都受保护</h1>{qr}<p class=\"how\">用 WLAN 或 4G/5G 上网时，打开诈骗网站前都会先看到提醒。一分钟设置，可随时取消。</p><p class=\"host\">Scan to keep your phone protected on any network · {}</p>",
        super::escape_html(name),
        super::escape_html(&url),
    ))
}

/// A place's phone setup page. On a blocked host's name it is that host's warning
/// page, as every other path is.
async fn setup_page(
    state: State<Arc<WarnState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if blocked_host(&state, &headers) {
        return page(state, method, uri, headers).await;
    }
    let found = setup_url(&headers, &id).and_then(|url| state.setup.load().page(&id, &url));
    match found {
        Some(body) => html(StatusCode::OK, body),
        None => html(
            StatusCode::NOT_FOUND,
            "没有这个社区的设置页 · no such place\n".into(),
        ),
    }
}

/// A place's iOS configuration profile (DNS over HTTPS to its URL).
async fn profile(
    State(s): State<Arc<WarnState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let body = match s.setup.load().profile(&id, unix_now()) {
        Some(Ok(b)) => b,
        None => {
            return html(
                StatusCode::NOT_FOUND,
                "no such place, or DNS over HTTPS is off\n".into(),
            );
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "the setup profile could not be signed");
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the profile could not be signed\n".into(),
            );
        }
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-apple-aspen-config"),
    );
    let file = format!(
        "attachment; filename=\"fanzha-{}.mobileconfig\"",
        id.to_ascii_lowercase()
    );
    if let Ok(v) = HeaderValue::from_str(&file) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// 16 bytes from the kernel's random source (a script nonce).
fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    if !crate::random::fill(&mut b) {
        // Never a fixed nonce: fall back on the clock's nanoseconds, hashed.
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = xxhash_rust::xxh3::xxh3_128(&t.to_le_bytes()).to_le_bytes();
    }
    b
}

/// The kiosk's figures: blocks of the last week in the district and in `street`.
async fn kiosk_figures(State(s): State<Arc<WarnState>>, uri: Uri) -> Response {
    let street = street_param(&uri);
    let f = figures(&s, street.as_deref());
    let mut v = serde_json::to_value(&f).unwrap_or_default();
    v["updated"] = unix_now().into();
    v["street_name"] = street.unwrap_or_default().into();
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Deserialize)]
struct AppealForm {
    host: String,
    token: String,
    #[serde(default)]
    reason: String,
}

async fn appeal(
    State(s): State<Arc<WarnState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<AppealForm>,
) -> Response {
    let templates = s.templates.load();
    // Cross-site posts: a browser sends Origin; it must name the host the page came
    // from. `null` (a sandboxed frame, a data: page, a no-referrer page elsewhere) is
    // an opaque origin: not this page's, so refused too.
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        let here = host_name(&host_header(&headers));
        if here.is_none() || host_name(origin_host) != here {
            return html(StatusCode::FORBIDDEN, "cross-site appeal refused\n".into());
        }
    }
    let Some(name) = host_name(&f.host) else {
        return html(StatusCode::BAD_REQUEST, "bad appeal\n".into());
    };
    if !s.tokens.verify(&name, &f.token, unix_now()) {
        return html(
            StatusCode::FORBIDDEN,
            "this form has expired; reload the page and try again\n".into(),
        );
    }
    if !s.appeal_allowed(peer.ip(), Instant::now()) {
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            "too many appeals from this device; please try again later\n".into(),
        );
    }
    let list = s.lists.load();
    let category = match list.lookup(&name) {
        Verdict::Block(hit) => list.category(&hit).to_string(),
        _ => "none".to_string(),
    };
    let reason: String = f
        .reason
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(500)
        .collect();
    let a = Appeal {
        client: peer.ip(),
        host: name.clone(),
        category,
        reason,
    };
    s.metrics.appeals.inc();
    tracing::info!(host = %a.host, category = %a.category, reason_chars = a.reason.chars().count(), "appeal received");
    if let Some(r) = &s.sink {
        r.send(Input::Appeal(a, SystemTime::now()));
    }
    html(StatusCode::OK, templates.thanks(&name))
}

async fn appeal_other(method: Method) -> Response {
    let _ = method;
    let mut r = html(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed\n".into(),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

/// The router (also used by tests through `tower::ServiceExt::oneshot`).
pub fn router(state: Arc<WarnState>) -> Router {
    Router::new()
        .route(APPEAL_PATH, post(appeal).fallback(appeal_other))
        .route(KIOSK_PATH, get(kiosk))
        .route(KIOSK_FIGURES_PATH, get(kiosk_figures))
        .route(SETUP_PATH, get(setup_page))
        .route(PROFILE_PATH, get(profile))
        .fallback(page)
        .layer(DefaultBodyLimit::max(4096))
        .with_state(state)
}

/// Limits of one HTTP connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CONN_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections open at once, all clients together.
pub const MAX_CONNS: usize = 4096;

/// Serve the warning page on `listener` (plain HTTP, or TLS with `tls`) until
/// `shutdown`, with at most `per_client` connections from one address (and
/// [`MAX_CONNS`] in all), so that one client cannot hold every connection.
pub async fn serve(
    listener: TcpListener,
    state: Arc<WarnState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    per_client: usize,
    shutdown: CancellationToken,
) {
    let app = router(state);
    let conns = Arc::new(tokio::sync::Semaphore::new(MAX_CONNS));
    let clients = Arc::new(PerClient::default());
    let (full, crowded) = (Quiet::new(), Quiet::new());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "warning page: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            if let Some(held) = full.may_log() {
                tracing::warn!(%peer, max = MAX_CONNS, similar_since_last_line = held, "warning page: too many connections; closing new ones");
            }
            continue;
        };
        let Some(slot) = clients.take(peer.ip(), per_client) else {
            if let Some(held) = crowded.may_log() {
                tracing::warn!(%peer, per_client, similar_since_last_line = held, "warning page: too many connections from one address (warnpage.per_client); closing new ones");
            }
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            let svc = TowerToHyperService::new(app.map_request(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req.map(Body::new)
                },
            ));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .keep_alive(true);
            let work = async {
                match tls {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acc) => {
                        if let Ok(Ok(s)) =
                            tokio::time::timeout(HEADER_TIMEOUT, acc.accept(stream)).await
                        {
                            let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::timeout(CONN_TIMEOUT, work) => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// The warning page's TLS acceptor from PEM certificate chain and key files.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    crate::http::tls_acceptor(cert, key, "warnpage", &[])
}
