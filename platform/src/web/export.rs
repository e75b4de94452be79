//! `GET /export/{view}.csv`: each view's rows as CSV, within the viewer's scope;
//! every export is written to the audit log.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::overview::{Overview, Period, overview_data};
use super::session::Viewer;
use super::state::{Shared, WebError, now_ms};
use crate::scope::Scope;
use crate::store::{appeals, cases, people};

/// One CSV field: quoted when needed, and a leading `= + - @` defused so that a
/// spreadsheet never runs it as a formula.
pub(super) fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn rows_csv(heads: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = heads.join(",");
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&r.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// A view of the overview as CSV; None when there is no such view here.
fn overview_csv(o: &Overview, view: &str, scope: &Scope) -> Option<String> {
    let district = scope.is_district();
    Some(match view {
        "figures" => rows_csv(
            &[
                "street",
                "community",
                "open",
                "cases",
                "median_contact_seconds",
                "closed_within_24h",
            ],
            o.figures.iter().map(|(s, c, f)| {
                vec![
                    s.clone(),
                    c.clone(),
                    f.open.to_string(),
                    f.cases.to_string(),
                    f.median_contact_ms
                        .map_or_else(String::new, |m| (m / 1000).to_string()),
                    f.closed_24h.map_or_else(String::new, |x| format!("{x:.3}")),
                ]
            }),
        ),
        "places" => rows_csv(
            &[scope.group_column(), "hits", "devices"],
            o.places
                .iter()
                .map(|(n, h, d)| vec![n.clone(), h.to_string(), d.to_string()]),
        ),
        "daily" => rows_csv(
            &["day", "category", "hits"],
            o.daily
                .iter()
                .map(|(d, c, h)| vec![d.clone(), c.clone(), h.to_string()]),
        ),
        "rules" => rows_csv(
            &["rule", "category", "note", "hits"],
            o.rules
                .iter()
                .map(|(r, c, n, h)| vec![r.clone(), c.clone(), n.clone(), h.to_string()]),
        ),
        "appliances" if district => rows_csv(
            &[
                "appliance",
                "last_event",
                "delay_seconds",
                "spool_bytes",
                "events",
            ],
            o.appliances.iter().map(|h| {
                vec![
                    h.name.clone(),
                    fanzha::report::event::rfc3339_millis(ms(h.last_event_ms)),
                    (h.delay_ms / 1000).to_string(),
                    h.spool_bytes.to_string(),
                    h.events.to_string(),
                ]
            }),
        ),
        _ => return None,
    })
}

/// The CSV of `view` for `v`.
pub(super) async fn csv_view(
    app: &Shared,
    v: &Viewer,
    view: &str,
    p: &Period,
) -> Result<String, WebError> {
    let scope = v.account.scope.clone();
    let district = scope.is_district();
    let o = overview_data(app, scope.clone(), p.since(now_ms())).await?;
    if let Some(text) = overview_csv(&o, view, &scope) {
        return Ok(text);
    }
    Ok(match view {
        "cases" | "closed" => {
            let which = if view == "cases" {
                cases::Which::Open
            } else {
                cases::Which::Closed
            };
            let list = app
                .db(false, move |db| cases::list(db, &scope, which, 100_000))
                .await?;
            rows_csv(
                &[
                    "case",
                    "street",
                    "community",
                    "device",
                    "day",
                    "category",
                    "rule",
                    "note",
                    "hits",
                    "first_hit",
                    "last_hit",
                    "state",
                ],
                list.into_iter().map(|c| {
                    vec![
                        c.id.to_string(),
                        c.street,
                        c.community,
                        c.device,
                        c.day,
                        c.category,
                        c.rule,
                        c.note.unwrap_or_default(),
                        c.hits.to_string(),
                        fanzha::report::event::rfc3339_millis(ms(c.first_ms)),
                        fanzha::report::event::rfc3339_millis(ms(c.last_ms)),
                        c.state,
                    ]
                }),
            )
        }
        "appeals" if district => {
            let list = app
                .db(false, |db| appeals::list(db, "waiting", 100_000))
                .await?;
            rows_csv(
                &[
                    "id",
                    "time",
                    "street",
                    "community",
                    "host",
                    "rule",
                    "category",
                    "reason",
                ],
                list.into_iter().map(|a| {
                    vec![
                        a.id,
                        fanzha::report::event::rfc3339_millis(ms(a.time_ms)),
                        a.street,
                        a.community,
                        a.host,
                        a.rule,
                        a.category,
                        a.reason,
                    ]
                }),
            )
        }
        _ => return Err(WebError::NotFound),
    })
}

fn ms(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

/// GET /export/{view}.csv.
pub(super) async fn csv(
    State(app): State<Shared>,
    v: Viewer,
    Path(file): Path<String>,
    Query(p): Query<Period>,
) -> Result<Response, WebError> {
    let view = file.strip_suffix(".csv").ok_or(WebError::NotFound)?;
    let text = csv_view(&app, &v, view, &p).await?;
    let (who, client, target) = (v.account.name.clone(), v.client.clone(), file.clone());
    app.db(true, move |db| {
        people::audit(db, now_ms(), &who, "export", &target, &client)
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        // A byte-order mark, so that Excel reads the Chinese as UTF-8.
        format!("\u{feff}{text}"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(field("-1"), "'-1");
    }
}
