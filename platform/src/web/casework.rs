//! The follow-up queue: the list of cases, one case with its hits and outcomes, and
//! recording an outcome. Every query is limited to the viewer's scope; a case of
//! another place is 404.

use axum::extract::{Form, Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{esc, page, table, time};
use super::overview::{Period, queue_table};
use super::session::Viewer;
use super::state::{Shared, WebError, now_ms};
use crate::cases::Outcome;
use crate::store::cases::{self, Which};
use crate::store::people;

/// GET /cases: the queue (or `?state=closed`).
pub(super) async fn cases(
    State(app): State<Shared>,
    v: Viewer,
    Query(p): Query<Period>,
) -> Result<Response, WebError> {
    let which = if p.state.as_deref() == Some("closed") {
        Which::Closed
    } else {
        Which::Open
    };
    let scope = v.account.scope.clone();
    let list = app
        .db(false, move |db| cases::list(db, &scope, which, 500))
        .await?;
    let (title, other) = match which {
        Which::Open => (
            "待跟进 Open cases",
            "<a href=\"/cases?state=closed\">已办结 Closed cases</a>",
        ),
        Which::Closed => (
            "已办结 Closed cases",
            "<a href=\"/cases\">待跟进 Open cases</a>",
        ),
    };
    let body = format!("<p>{other}</p>{}", queue_table(&app, &list));
    Ok(Html(page(
        &app.config.district,
        (&v.account, &v.csrf),
        title,
        &body,
    ))
    .into_response())
}

/// GET /cases/{id}: one case, its hits and outcomes, and the outcome form; the view
/// is written to the audit log.
pub(super) async fn case(
    State(app): State<Shared>,
    v: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let (scope, who, client) = (
        v.account.scope.clone(),
        v.account.name.clone(),
        v.client.clone(),
    );
    let found = app
        .db(true, move |db| {
            let found = cases::get(db, &scope, id)?;
            if found.is_some() {
                people::audit(db, now_ms(), &who, "view case", &id.to_string(), &client)?;
            }
            Ok(found)
        })
        .await?;
    let (c, hits, outcomes) = found.ok_or(WebError::NotFound)?;
    let off = app.config.offset_minutes;
    let hit_rows: Vec<Vec<String>> = hits
        .iter()
        .map(|h| {
            vec![
                time(h.time_ms, off),
                esc(&h.name),
                esc(app.names.zh(&h.category)),
                esc(&h.rule),
                esc(h.note.as_deref().unwrap_or("")),
                format!("num:{}", h.count),
                esc(&h.appliance),
            ]
        })
        .collect();
    let out_rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let label =
                Outcome::parse(&o.kind).map_or_else(|| o.kind.clone(), |x| x.label().to_string());
            vec![
                time(o.time_ms, off),
                esc(&label),
                esc(&o.note),
                esc(&o.user),
                if o.closes {
                    "办结 closed".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let paid = outcomes.iter().any(|o| o.kind == "paid");
    let body = format!(
        "{banner}<div class=\"card\"><p>状态 State: <strong id=\"state\" class=\"{state}\">{state_label}</strong>{reopened}</p>
<p>{street} · {community} · {day}</p><p>设备 Device: <code>{device}</code></p><p>类别 Category: {cat} · 规则 Rule: {rule} · 备注 Note: {note}</p></div>
<h2>拦截记录 Hits ({n})</h2>{hits}<h2>跟进记录 Outcomes</h2>{outs}{form}",
        banner = if paid { PAID_REMINDER } else { "" },
        state = esc(&c.state),
        state_label = if c.state == "open" { "待跟进 open" } else { "已办结 closed" },
        reopened = if c.reopened > 0 { format!(" · 重新打开 reopened {} 次", c.reopened) } else { String::new() },
        street = esc(&c.street),
        community = esc(&c.community),
        day = esc(&c.day),
        device = esc(&c.device),
        cat = esc(app.names.zh(&c.category)),
        rule = esc(&c.rule),
        note = esc(c.note.as_deref().unwrap_or("—")),
        n = c.hits,
        hits = table("hits", &["时间 Time", "域名 Name", "类别 Category", "规则 Rule", "备注 Note", "次数 Count", "设备 Appliance"], &hit_rows),
        outs = table("outcomes", &["时间 Time", "结果 Outcome", "说明 Note", "人员 By", ""], &out_rows),
        form = outcome_form(c.id, &v.csrf),
    );
    Ok(Html(page(
        &app.config.district,
        (&v.account, &v.csrf),
        &format!("案件 Case #{}", c.id),
        &body,
    ))
    .into_response())
}

const PAID_REMINDER: &str = "<p class=\"warn\" id=\"paid-reminder\">已被骗：请立即协助居民拨打 110 报警，并拨打 96110 反诈专线。Already paid: help the resident call 110 and 96110 now.</p>";

fn outcome_form(id: i64, csrf: &str) -> String {
    let options: String = Outcome::ALL
        .iter()
        .map(|o| format!("<option value=\"{}\">{}</option>", o.word(), o.label()))
        .collect();
    format!(
        "<form method=\"post\" action=\"/cases/{id}/outcome\" class=\"card\" id=\"outcome-form\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">
<p><label>结果 Outcome<br><select name=\"outcome\" id=\"outcome\">{options}</select></label></p>
<p class=\"muted\">已被骗：提醒居民拨打 110 / 96110。Already paid: remind the resident to call 110 / 96110.</p>
<p><label>说明 Note<br><textarea name=\"note\" id=\"note\" rows=\"3\" maxlength=\"2000\"></textarea></label></p>
<p><label>时间 When（不填为现在 empty: now）<br><input type=\"datetime-local\" name=\"at\" id=\"at\"></label></p>
<p><label><input type=\"checkbox\" name=\"close\" value=\"1\" id=\"close\"> 办结 Close the case</label></p>
<p><button id=\"record\">记录 Record</button></p></form>",
        c = esc(csrf)
    )
}

/// The outcome form.
#[derive(Deserialize)]
pub(super) struct OutcomeForm {
    csrf: String,
    outcome: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    close: Option<String>,
    /// When it was done, local time (empty: now).
    #[serde(default)]
    at: String,
}

/// POST /cases/{id}/outcome.
pub(super) async fn outcome(
    State(app): State<Shared>,
    v: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<OutcomeForm>,
) -> Result<Response, WebError> {
    v.check(&f.csrf)?;
    let o = Outcome::parse(&f.outcome)
        .ok_or_else(|| WebError::BadRequest(format!("unknown outcome {:?}", f.outcome)))?;
    let note: String = f.note.chars().take(2000).collect();
    let close = f.close.is_some();
    let now = now_ms();
    let at = if f.at.trim().is_empty() {
        now
    } else {
        crate::cases::parse_local(&f.at, app.config.offset_minutes).ok_or_else(|| {
            WebError::BadRequest(format!("时间 {:?} is not a date and time", f.at))
        })?
    };
    // A little clock skew is fine; a contact tomorrow is not.
    if at > now + 300_000 {
        return Err(WebError::BadRequest(
            "时间在将来 the time is in the future".into(),
        ));
    }
    let (scope, who, client) = (
        v.account.scope.clone(),
        v.account.name.clone(),
        v.client.clone(),
    );
    let done = app
        .db(true, move |db| {
            let done = cases::record(db, &scope, id, (o, &note, close), &who, (at, now))?;
            if done == cases::Record::Done {
                people::audit(
                    db,
                    now,
                    &who,
                    &format!("outcome {}", o.word()),
                    &id.to_string(),
                    &client,
                )?;
            }
            Ok(done)
        })
        .await?;
    match done {
        cases::Record::Done => Ok(Redirect::to(&format!("/cases/{id}")).into_response()),
        cases::Record::NotFound => Err(WebError::NotFound),
        cases::Record::BeforeFirstHit(first) => Err(WebError::BadRequest(format!(
            "时间早于首次拦截 ({}) the time is before the first hit",
            super::html::time(first, app.config.offset_minutes)
        ))),
    }
}
