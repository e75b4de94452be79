//! The warning page's request handling, through its real router: any Host header,
//! path, method and form body gets an answer, never a panic, and no markup from the
//! Host or the path reaches the page.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use fanzha::blocklist::Handle;
use fanzha::metrics::Metrics;
use fanzha::warnpage::Templates;
use fanzha::warnpage::server::{APPEAL_PATH, WarnState, router};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fn parts() -> &'static (tokio::runtime::Runtime, Arc<WarnState>) {
    static P: OnceLock<(tokio::runtime::Runtime, Arc<WarnState>)> = OnceLock::new();
    P.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let state = WarnState::new(
            Arc::new(Handle::default()),
            Templates::builtin(),
            Arc::new(Metrics::new()),
        );
        (rt, Arc::new(state))
    })
}

fn get(host: &[u8], uri: &str, method: &str, body: Vec<u8>) -> Option<(u16, String)> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", host)
        .header("content-type", "application/x-www-form-urlencoded")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9,
        ))))
        .body(Body::from(body))
        .ok()?;
    let (rt, state) = parts();
    let resp = rt.block_on(router(state.clone()).oneshot(req)).unwrap();
    let status = resp.status().as_u16();
    let page = rt
        .block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
        .unwrap();
    Some((status, String::from_utf8_lossy(&page).into_owned()))
}

/// The page for a plain host and path: what the template itself contains.
fn baseline() -> &'static str {
    static B: OnceLock<String> = OnceLock::new();
    B.get_or_init(|| get(b"plain.example", "/", "GET", Vec::new()).unwrap().1)
}

/// The kiosk for a plain street: what its template contains (no blocks yet).
fn kiosk_baseline() -> &'static str {
    static B: OnceLock<String> = OnceLock::new();
    B.get_or_init(|| {
        get(b"plain.example", "/kiosk?street=x", "GET", Vec::new())
            .unwrap()
            .1
    })
}

fuzz_target!(|data: &[u8]| {
    // host \0 path \0 body; the first byte picks the method.
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let mut it = rest.splitn(3, |&b| b == 0);
    let host = it.next().unwrap_or_default();
    let path = it.next().unwrap_or_default();
    let body = it.next().unwrap_or_default().to_vec();
    let path = String::from_utf8_lossy(path);
    let uri = if m & 1 == 1 {
        APPEAL_PATH.to_string()
    } else {
        format!("/{}", path.trim_start_matches('/'))
    };
    let method = if m & 2 == 2 { "POST" } else { "GET" };
    let Some((status, page)) = get(host, &uri, method, body) else {
        return;
    };
    assert!((200..500).contains(&status), "status {status}");
    // Markup from the request must arrive escaped: the page for any Host and path
    // has exactly the template's tags (no list is loaded, so every GET gets the
    // neutral page).
    // The kiosk (its street comes from the query) likewise has its template's tags,
    // and its figures are JSON with no markup at all.
    if method == "GET" && m & 1 == 0 && status == 200 {
        let tags = |p: &str| p.matches('<').count();
        // The route is the path alone: the router matches without the query and
        // without a fragment (`/kiosk#street=…` is the kiosk; over HTTP a client
        // never sends a fragment, and the server answers such a request 400).
        let route = uri.split(['?', '#']).next().unwrap_or("");
        let want = match route {
            "/kiosk/figures.json" => 0,
            "/kiosk" => tags(kiosk_baseline()),
            _ => tags(baseline()),
        };
        assert_eq!(
            tags(&page),
            want,
            "markup from the request in the page: {page}"
        );
    }
});
