//! The overview of each level: the district's (appeals waiting, every community's
//! follow-up figures, the trend, streets compared, top rules, the appliances), a
//! street's communities and queue, a community's queue first. Every query is limited
//! to the viewer's scope.

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::html::{bars, esc, page, table, time, trend};
use super::session::Viewer;
use super::state::{Shared, WebError, now_ms};
use crate::cases::{DAY_MS, Figures, wait_text};
use crate::scope::{Role, Scope};
use crate::store::appeals;
use crate::store::cases::{self, Case, Which};

/// `?days=` of the views (1 to 180, default 30), and `?state=` of the lists.
#[derive(Deserialize, Default)]
pub(super) struct Period {
    days: Option<i64>,
    /// Which cases or appeals a list shows.
    pub(super) state: Option<String>,
}

impl Period {
    /// The period's days.
    pub(super) fn days(&self) -> i64 {
        self.days.unwrap_or(30).clamp(1, 180)
    }
    /// Its first ms.
    pub(super) fn since(&self, now: i64) -> i64 {
        now - self.days() * DAY_MS
    }
}

/// Everything the overview shows, read in one snapshot.
pub(super) struct Overview {
    /// Follow-up figures per (street, community).
    pub(super) figures: Vec<(String, String, Figures)>,
    /// Hits per day and category.
    pub(super) daily: Vec<(String, String, i64)>,
    /// Hits and devices per street (district) or community.
    pub(super) places: Vec<(String, i64, i64)>,
    /// Top rules.
    pub(super) rules: Vec<(String, String, String, i64)>,
    /// The queue (open cases).
    pub(super) queue: Vec<Case>,
    /// Appliances (district).
    pub(super) appliances: Vec<cases::Health>,
    /// Appeals waiting (district).
    pub(super) appeals_waiting: i64,
}

/// Read the overview of `scope` since `since`.
pub(super) async fn overview_data(
    app: &Shared,
    scope: Scope,
    since: i64,
) -> Result<Overview, WebError> {
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
pub(super) fn figures_table(rows: &[(String, String, Figures)]) -> String {
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
pub(super) fn queue_table(app: &Shared, queue: &[Case]) -> String {
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
    Ok(Html(page(
        &app.config.district,
        (&v.account, &v.csrf),
        &title,
        &body,
    ))
    .into_response())
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
