//! The district's own pages: the appeal queue and its decisions, the allow list they
//! make (file and `/v1/allowlist.txt`), and the audit log.

use axum::extract::{Form, Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{esc, page, table, time};
use super::overview::Period;
use super::session::Viewer;
use super::state::{Shared, WebError, now_ms};
use crate::store::appeals;
use crate::store::people;

/// GET /appeals (district only).
pub(super) async fn appeals(
    State(app): State<Shared>,
    v: Viewer,
    Query(p): Query<Period>,
) -> Result<Response, WebError> {
    if !v.account.scope.is_district() {
        return Err(WebError::NotFound);
    }
    let state = match p.state.as_deref() {
        Some(s @ ("accepted" | "rejected")) => s.to_string(),
        _ => "waiting".to_string(),
    };
    let st = state.clone();
    let list = app.db(false, move |db| appeals::list(db, &st, 500)).await?;
    let off = app.config.offset_minutes;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let decide = if a.state == "waiting" {
                decide_form(&a.id, &v.csrf)
            } else {
                format!(
                    "{} · {} · {}",
                    esc(&a.state),
                    esc(&a.reviewer),
                    esc(&a.review_reason)
                )
            };
            vec![
                time(a.time_ms, off),
                format!("<strong>{}</strong>", esc(&a.host)),
                esc(&a.rule),
                esc(app.names.zh(&a.category)),
                esc(&a.reason),
                esc(&format!("{} {}", a.street, a.community)),
                decide,
            ]
        })
        .collect();
    let body = format!(
        "<p><a href=\"/appeals\">待审 Waiting</a> · <a href=\"/appeals?state=accepted\">已通过 Accepted</a> · <a href=\"/appeals?state=rejected\">已驳回 Rejected</a> · <a href=\"/v1/allowlist.txt\">放行名单 Allow list</a></p>{}",
        table(
            "appeals",
            &[
                "时间 Time",
                "域名 Host",
                "规则 Rule",
                "类别 Category",
                "理由 Reason",
                "地点 Place",
                "处理 Decision"
            ],
            &rows
        )
    );
    Ok(Html(page(
        &app.config.district,
        (&v.account, &v.csrf),
        "申诉 Appeals",
        &body,
    ))
    .into_response())
}

fn decide_form(id: &str, csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/appeals/{i}\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><input name=\"reason\" placeholder=\"理由 Reason\" required maxlength=\"500\">
<button name=\"decision\" value=\"accept\">通过 Accept</button> <button name=\"decision\" value=\"reject\">驳回 Reject</button></form>",
        i = esc(id),
        c = esc(csrf)
    )
}

/// The decision form.
#[derive(Deserialize)]
pub struct DecideForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

/// POST /appeals/{id}: accept (the host goes on the allow list, and the file is
/// rewritten) or reject, with a reason.
pub(super) async fn decide(
    State(app): State<Shared>,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<DecideForm>,
) -> Result<Response, WebError> {
    if !v.account.scope.is_district() {
        return Err(WebError::NotFound);
    }
    v.check(&f.csrf)?;
    let accept = match f.decision.as_str() {
        "accept" => true,
        "reject" => false,
        other => {
            return Err(WebError::BadRequest(format!(
                "decision {other:?}: accept or reject"
            )));
        }
    };
    if f.reason.trim().is_empty() {
        return Err(WebError::BadRequest("a decision needs its reason".into()));
    }
    let reason: String = f.reason.chars().take(500).collect();
    let (who, client) = (v.account.name.clone(), v.client.clone());
    let done = app
        .db(true, move |db| {
            let now = now_ms();
            let done = appeals::decide(db, &id, accept, &reason, &who, now)?;
            if done {
                people::audit(
                    db,
                    now,
                    &who,
                    if accept {
                        "accept appeal"
                    } else {
                        "reject appeal"
                    },
                    &id,
                    &client,
                )?;
            }
            Ok(done)
        })
        .await?;
    if !done {
        return Err(WebError::NotFound);
    }
    if accept {
        write_allowlist(&app).await?;
    }
    Ok(Redirect::to("/appeals").into_response())
}

/// Rewrite the allow list file from the database (atomically).
pub async fn write_allowlist(app: &Shared) -> Result<(), WebError> {
    let rows = app.db(false, appeals::allowlist).await?;
    let text = appeals::allowlist_file(&rows);
    let path = app.config.allowlist_file.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?
    .map_err(|e| {
        WebError::Internal(format!(
            "writing {}: {e}",
            app.config.allowlist_file.display()
        ))
    })
}

/// GET /v1/allowlist.txt: the names accepted appeals unblock, as a list file.
pub(super) async fn allowlist_txt(State(app): State<Shared>) -> Result<Response, WebError> {
    let rows = app.db(false, appeals::allowlist).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        appeals::allowlist_file(&rows),
    )
        .into_response())
}

/// GET /audit (district only): the latest 500 records.
pub(super) async fn audit(State(app): State<Shared>, v: Viewer) -> Result<Response, WebError> {
    if !v.account.scope.is_district() {
        return Err(WebError::NotFound);
    }
    let rows = app.db(false, |db| people::audit_log(db, 500)).await?;
    let off = app.config.offset_minutes;
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                time(r.time_ms, off),
                esc(&r.user),
                esc(&r.action),
                esc(&r.target),
                esc(&r.client),
            ]
        })
        .collect();
    let body = table(
        "audit",
        &[
            "时间 Time",
            "人员 User",
            "操作 Action",
            "对象 Target",
            "地址 Client",
        ],
        &rows,
    );
    Ok(Html(page(
        &app.config.district,
        (&v.account, &v.csrf),
        "审计日志 Audit log",
        &body,
    ))
    .into_response())
}
