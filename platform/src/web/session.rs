//! Logging in and out, and who is asking: the session cookie (Secure, HttpOnly,
//! SameSite=Lax, only its SHA-256 stored), a CSRF token per session for every form,
//! and the login limiter.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::login_form;
use super::state::{Shared, WebError, now_ms};
use crate::auth;
use crate::store::people::{self, Account};

const SESSION: &str = "fanzha_platform_session";
const LOGIN: &str = "fanzha_platform_login";

/// The cookie `name` of a request.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn client(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(String::new, |c| c.0.ip().to_string())
}

/// The logged-in person asking.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The account and its scope.
    pub account: Account,
    /// The CSRF token every form must carry.
    pub csrf: String,
    /// The client's address (for the audit log).
    pub client: String,
}

impl Viewer {
    /// Check a form's CSRF token.
    pub fn check(&self, token: &str) -> Result<(), WebError> {
        if auth::same(&self.csrf, token) {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }
}

/// Not logged in: a page goes to the login form.
pub(super) struct NeedLogin(String);

impl IntoResponse for NeedLogin {
    fn into_response(self) -> Response {
        if self.0.is_empty() {
            return (StatusCode::UNAUTHORIZED, "login needed\n").into_response();
        }
        Redirect::to(&format!("/login?next={}", percent(&self.0))).into_response()
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Self::Rejection> {
        let next = if parts.method == axum::http::Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string()
        } else {
            String::new()
        };
        let Some(token) = cookie(&parts.headers, SESSION) else {
            return Err(NeedLogin(next).into_response());
        };
        let hash = auth::token_hash(token);
        let found = app
            .db(false, move |db| people::session(db, &hash, now_ms()))
            .await
            .map_err(IntoResponse::into_response)?;
        match found {
            Some((account, csrf)) => Ok(Viewer {
                account,
                csrf,
                client: client(parts),
            }),
            None => Err(NeedLogin(next).into_response()),
        }
    }
}

/// `?next=` of the login form.
#[derive(Deserialize, Default)]
pub(super) struct Next {
    next: Option<String>,
}

/// A local path only (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

/// GET /login.
pub(super) async fn login_page(
    State(app): State<Shared>,
    q: axum::extract::Query<Next>,
) -> Result<Response, WebError> {
    let token = auth::token().map_err(WebError::Internal)?;
    let next = safe_next(q.next.as_deref());
    let set =
        format!("{LOGIN}={token}; Path=/login; HttpOnly; Secure; SameSite=Strict; Max-Age=3600");
    let page = login_form(&app.config.district, &token, &next, "");
    Ok(([(header::SET_COOKIE, set)], Html(page)).into_response())
}

/// The login form.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// POST /login.
pub(super) async fn login(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, WebError> {
    if !cookie(&headers, LOGIN).is_some_and(|c| auth::same(c, &f.csrf)) {
        return Err(WebError::Forbidden);
    }
    let client = peer.ip().to_string();
    let again = |msg: &str, status: StatusCode| {
        let page = login_form(
            &app.config.district,
            &f.csrf,
            &safe_next(Some(&f.next)),
            msg,
        );
        (status, Html(page)).into_response()
    };
    if let Some(wait) = app.limiter.wait(&f.name, &client, Instant::now()) {
        app.metrics.logins.with_label_values(&["locked"]).inc();
        let msg = format!(
            "登录失败次数过多，请 {} 分钟后再试 Too many failed logins: try again in {} min",
            wait.as_secs() / 60 + 1,
            wait.as_secs() / 60 + 1
        );
        return Ok(again(&msg, StatusCode::TOO_MANY_REQUESTS));
    }
    let name = f.name.clone();
    let account = app.db(false, move |db| people::user(db, &name)).await?;
    let password = f.password.clone();
    let hash = account
        .as_ref()
        .filter(|a| !a.disabled)
        .map_or_else(|| auth::decoy_hash().to_string(), |a| a.password.clone());
    let ok = tokio::task::spawn_blocking(move || auth::check_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(account) = account.filter(|a| ok && !a.disabled) else {
        app.limiter.failed(&f.name, &client, Instant::now());
        app.metrics.logins.with_label_values(&["bad"]).inc();
        let (who, c) = (f.name.clone(), client.clone());
        app.db(true, move |db| {
            people::audit(db, now_ms(), &who, "login failed", "", &c)
        })
        .await?;
        return Ok(again(
            "用户名或密码错误 Wrong name or password",
            StatusCode::UNAUTHORIZED,
        ));
    };
    app.limiter.succeeded(&f.name);
    app.metrics.logins.with_label_values(&["ok"]).inc();
    let token = auth::token().map_err(WebError::Internal)?;
    let csrf = auth::token().map_err(WebError::Internal)?;
    let (hash, ttl) = (auth::token_hash(&token), app.config.session_ttl);
    let (id, who) = (account.id, account.name.clone());
    app.db(true, move |db| {
        let now = now_ms();
        people::open_session(db, &hash, id, &csrf, now, now + ttl.as_millis() as i64)?;
        people::audit(db, now, &who, "login", "", &client)
    })
    .await?;
    let set = format!(
        "{SESSION}={token}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
        ttl.as_secs()
    );
    let clear = format!("{LOGIN}=; Path=/login; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    let mut r = Redirect::to(&safe_next(Some(&f.next))).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, set.parse().expect("ascii"));
    r.headers_mut()
        .append(header::SET_COOKIE, clear.parse().expect("ascii"));
    Ok(r)
}

/// The logout form.
#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: String,
}

/// POST /logout.
pub(super) async fn logout(
    State(app): State<Shared>,
    v: Viewer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    v.check(&f.csrf)?;
    if let Some(token) = cookie(&headers, SESSION) {
        let hash = auth::token_hash(token);
        app.db(true, move |db| people::close_session(db, &hash))
            .await?;
    }
    let clear = format!("{SESSION}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0");
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, clear.parse().expect("ascii"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/cases/3")), "/cases/3");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
