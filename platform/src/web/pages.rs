//! The pages of each level: the district's overview (trend, streets, rules,
//! appliances, appeals, every community's follow-up figures), a street's communities
//! and queue, a community's queue first. Every query is limited to the viewer's scope.

use axum::extract::{Form, Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{bars, esc, page, table, time, trend};
use super::{Shared, Viewer, WebError, now_ms};
use crate::cases::{DAY_MS, Figures, Outcome, wait_text};
use crate::scope::{Role, Scope};
use crate::store::appeals;
use crate::store::cases::{self, Case, Which};
use crate::store::people;

/// `?days=` of the views (1 to 180, default 30).
#[derive(Deserialize, Default)]
pub struct Period {
    days: Option<i64>,
    state: Option<String>,
}

impl Period {
    /// The period's days.
    pub fn days(&self) -> i64 {
        self.days.unwrap_or(30).clamp(1, 180)
    }
    /// Its first ms.
    pub fn since(&self, now: i64) -> i64 {
        now - self.days() * DAY_MS
    }
}

/// Everything the overview shows, read in one snapshot.
pub struct Overview {
    /// Follow-up figures per (street, community).
    pub figures: Vec<(String, String, Figures)>,
    /// Hits per day and category.
    pub daily: Vec<(String, String, i64)>,
    /// Hits and devices per street (district) or community.
    pub places: Vec<(String, i64, i64)>,
    /// Top rules.
    pub rules: Vec<(String, String, String, i64)>,
    /// The queue (open cases).
    pub queue: Vec<Case>,
    /// Appliances (district).
    pub appliances: Vec<cases::Health>,
    /// Appeals waiting (district).
    pub appeals_waiting: i64,
}

/// Read the overview of `scope` since `since`.
pub async fn overview_data(app: &Shared, scope: Scope, since: i64) -> Result<Overview, WebError> {
    app.db(false, move |db| {
        let now = now_ms();
        let district = scope.is_district();
        Ok(Overview {
            figures: cases::figures_by_community(db, &scope, since, now)?,
            daily: cases::daily(db, &scope, since)?,
            places: cases::by_place(db, &scope, since)?,
            rules: cases::top_rules(db, &scope, since, 20)?,
            queue: cases::list(db, &scope, Which::Open, 200)?,
            appliances: if district {
                cases::appliances(db)?
            } else {
                Vec::new()
            },
            appeals_waiting: if district { appeals::waiting(db)? } else { 0 },
        })
    })
    .await
}

fn percent(f: Option<f64>) -> String {
    f.map_or_else(|| "—".into(), |f| format!("{:.0}%", f * 100.0))
}

/// The figures table (its cells carry data- attributes for the tests and exports).
pub fn figures_table(rows: &[(String, String, Figures)]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|(s, c, f)| {
            vec![
                esc(s),
                format!("<span data-community=\"{0}\">{0}</span>", esc(c)),
                format!("num:<span data-open=\"{0}\">{0}</span>", f.open),
                format!("num:{}", f.cases),
                format!(
                    "num:<span data-median=\"{}\">{}</span>",
                    f.median_contact_ms.unwrap_or(-1),
                    f.median_contact_ms.map_or_else(|| "—".into(), wait_text)
                ),
                format!(
                    "num:<span data-closed24=\"{}\">{}</span>",
                    f.closed_24h.map_or(-1.0, |x| (x * 1000.0).round() / 1000.0),
                    percent(f.closed_24h)
                ),
            ]
        })
        .collect();
    table(
        "figures",
        &[
            "街道 Street",
            "社区 Community",
            "待跟进 Open",
            "案件 Cases",
            "首次联系中位时长 Median to contact",
            "24小时内办结 Closed in 24 h",
        ],
        &body,
    )
}

/// The queue table.
pub fn queue_table(app: &Shared, queue: &[Case]) -> String {
    let off = app.config.offset_minutes;
    let body: Vec<Vec<String>> = queue
        .iter()
        .map(|c| {
            vec![
                format!("<a href=\"/cases/{0}\">#{0}</a>", c.id),
                esc(&c.community),
                esc(app.names.zh(&c.category)),
                format!("num:{}", c.hits),
                time(c.first_ms, off),
                esc(&c.device),
                esc(c.note.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    table(
        "queue",
        &[
            "案件 Case",
            "社区 Community",
            "类别 Category",
            "次数 Hits",
            "首次 First hit",
            "设备 Device",
            "备注 Note",
        ],
        &body,
    )
}

fn export_links(district: bool) -> String {
    let mut views = vec!["figures", "places", "daily", "rules", "cases", "closed"];
    if district {
        views.extend(["appliances", "appeals"]);
    }
    let links: Vec<String> = views
        .iter()
        .map(|v| format!("<a href=\"/export/{v}.csv\">{v}.csv</a>"))
        .collect();
    format!("<p class=\"muted\">导出 CSV: {}</p>", links.join(" · "))
}

/// GET /: the viewer's level.
pub(super) async fn overview(
    State(app): State<Shared>,
    v: Viewer,
    Query(p): Query<Period>,
) -> Result<Response, WebError> {
    let scope = v.account.scope.clone();
    let o = overview_data(&app, scope.clone(), p.since(now_ms())).await?;
    let days = p.days();
    let places: Vec<(String, i64)> = o.places.iter().map(|(n, h, _)| (n.clone(), *h)).collect();
    let place_rows: Vec<Vec<String>> = o
        .places
        .iter()
        .map(|(n, h, d)| vec![esc(n), format!("num:{h}"), format!("num:{d}")])
        .collect();
    let level = if scope.role == Role::District {
        "街道 Street"
    } else {
        "社区 Community"
    };
    let compare = format!(
        "<h2>各{level}比较（近 {days} 天）</h2>{}{}",
        bars("places-chart", &places),
        table(
            "places",
            &[level, "拦截次数 Hits", "设备 Devices"],
            &place_rows
        )
    );
    let queue = format!(
        "<h2>待跟进 Open cases ({})</h2>{}",
        o.queue.len(),
        queue_table(&app, &o.queue)
    );
    let figures = format!(
        "<h2>跟进情况 Follow-up（近 {days} 天）</h2>{}",
        figures_table(&o.figures)
    );
    let chart = format!(
        "<h2>每日拦截 Hits per day</h2>{}",
        trend("trend", &o.daily, &app.names)
    );
    let body = match scope.role {
        Role::District => format!(
            "{}{figures}{chart}{compare}{}{}{queue}",
            appeals_banner(o.appeals_waiting),
            rules_table(&app, &o.rules),
            appliances_table(&app, &o.appliances),
        ),
        Role::Street => format!(
            "{compare}{figures}{queue}{chart}{}",
            rules_table(&app, &o.rules)
        ),
        Role::Community => format!("{queue}{figures}{chart}{}", rules_table(&app, &o.rules)),
    };
    let body = format!("{body}{}", export_links(scope.is_district()));
    let title = format!("{}总览 Overview", scope.role.label());
    Ok(Html(page(&app.config.district, &v, &title, &body)).into_response())
}

fn appeals_banner(waiting: i64) -> String {
    format!(
        "<p class=\"card\">待审申诉 Appeals waiting: <a href=\"/appeals\" id=\"appeals-waiting\">{waiting}</a></p>"
    )
}

fn rules_table(app: &Shared, rules: &[(String, String, String, i64)]) -> String {
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|(r, c, n, h)| vec![esc(r), esc(app.names.zh(c)), esc(n), format!("num:{h}")])
        .collect();
    format!(
        "<h2>拦截最多的规则 Top rules</h2>{}",
        table(
            "rules",
            &["规则 Rule", "类别 Category", "备注 Note", "次数 Hits"],
            &rows
        )
    )
}

fn appliances_table(app: &Shared, rows: &[cases::Health]) -> String {
    let off = app.config.offset_minutes;
    let now = now_ms();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|h| {
            // Quiet for an hour: worth a look (a quiet district at night is normal).
            let quiet = if now - h.last_received_ms > 3_600_000 {
                " class=\"open\""
            } else {
                ""
            };
            vec![
                esc(&h.name),
                format!("<span{quiet}>{}</span>", time(h.last_event_ms, off)),
                format!("num:{} s", h.delay_ms / 1000),
                format!("num:{}", h.spool_bytes),
                format!("num:{}", h.events),
            ]
        })
        .collect();
    format!(
        "<h2>设备状态 Appliances</h2>{}",
        table(
            "appliances",
            &[
                "设备 Appliance",
                "最新事件 Last event",
                "延迟 Delay",
                "积压字节 Spool bytes",
                "事件 Events"
            ],
            &rows
        )
    )
}

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
    Ok(Html(page(&app.config.district, &v, title, &body)).into_response())
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
        &v,
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
pub struct OutcomeForm {
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
    Ok(Html(page(&app.config.district, &v, "申诉 Appeals", &body)).into_response())
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
    Ok(Html(page(&app.config.district, &v, "审计日志 Audit log", &body)).into_response())
}
