//! The follow-up queue and the figures, always within the viewer's [`Scope`].

use super::scoped;
use super::sql::{DbError, Query, Row, Sql};
use crate::cases::{CaseTimes, Figures, Outcome, figures};
use crate::scope::Scope;

/// A case as listed and shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Its number.
    pub id: i64,
    /// 街道 and 社区.
    pub street: String,
    /// 社区.
    pub community: String,
    /// The device as the appliance sent it.
    pub device: String,
    /// The local day.
    pub day: String,
    /// The first hit's category.
    pub category: String,
    /// The first hit's rule.
    pub rule: String,
    /// The rule's note (the district's case number).
    pub note: Option<String>,
    /// Hits folded in.
    pub hits: i64,
    /// First and last hit, Unix ms.
    pub first_ms: i64,
    /// Last hit.
    pub last_ms: i64,
    /// `open` or `closed`.
    pub state: String,
    /// Times it reopened.
    pub reopened: i64,
    /// First contact, if any.
    pub first_contact_ms: Option<i64>,
}

const CASE_COLUMNS: &str = "id, street, community, device, day, category, rule, note, hits,
    first_ms, last_ms, state, reopened, first_contact_ms";

fn case(r: &Row) -> Case {
    Case {
        id: r[0].int(),
        street: r[1].text(),
        community: r[2].text(),
        device: r[3].text(),
        day: r[4].text(),
        category: r[5].text(),
        rule: r[6].text(),
        note: r[7].opt_text(),
        hits: r[8].int(),
        first_ms: r[9].int(),
        last_ms: r[10].int(),
        state: r[11].text(),
        reopened: r[12].int(),
        first_contact_ms: r[13].opt_int(),
    }
}

/// Which cases a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Open ones, oldest first: the queue.
    Open,
    /// Closed ones, newest first.
    Closed,
}

/// The cases of `scope`.
pub fn list(
    db: &mut dyn Sql,
    scope: &Scope,
    which: Which,
    limit: i64,
) -> Result<Vec<Case>, DbError> {
    let q = Query::new(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE state = ")).bind(
        if which == Which::Open {
            "open"
        } else {
            "closed"
        },
    );
    let order = if which == Which::Open {
        " ORDER BY first_ms ASC LIMIT "
    } else {
        " ORDER BY last_ms DESC LIMIT "
    };
    let q = scoped(q, scope, "").push(order).bind(limit);
    Ok(q.rows(db)?.iter().map(case).collect())
}

/// One outcome recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// What.
    pub kind: String,
    /// The worker's note.
    pub note: String,
    /// When, Unix ms.
    pub time_ms: i64,
    /// Who.
    pub user: String,
    /// It closed the case.
    pub closes: bool,
}

/// A hit of a case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseHit {
    /// When.
    pub time_ms: i64,
    /// The name looked up.
    pub name: String,
    /// Its category.
    pub category: String,
    /// The rule and its note.
    pub rule: String,
    /// The rule's note.
    pub note: Option<String>,
    /// Occurrences.
    pub count: i64,
    /// Which appliance.
    pub appliance: String,
}

/// A case, its hits and its outcomes.
pub type CaseView = (Case, Vec<CaseHit>, Vec<Recorded>);

/// A case with its hits and outcomes; None when it is not in `scope` (or not at all).
pub fn get(db: &mut dyn Sql, scope: &Scope, id: i64) -> Result<Option<CaseView>, DbError> {
    let q = scoped(
        Query::new(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ")).bind(id),
        scope,
        "",
    );
    let Some(c) = q.rows(db)?.first().map(case) else {
        return Ok(None);
    };
    let hits = db
        .query(
            "SELECT time_ms, name, category, rule, note, count, appliance FROM events
             WHERE community = $1 AND device = $2 AND day = $3 AND kind = 'hit' ORDER BY time_ms",
            &[
                c.community.as_str().into(),
                c.device.as_str().into(),
                c.day.as_str().into(),
            ],
        )?
        .iter()
        .map(|r| CaseHit {
            time_ms: r[0].int(),
            name: r[1].text(),
            category: r[2].text(),
            rule: r[3].text(),
            note: r[4].opt_text(),
            count: r[5].int(),
            appliance: r[6].text(),
        })
        .collect();
    let outcomes = db
        .query(
            "SELECT kind, note, time_ms, user_name, closes FROM outcomes WHERE case_id = $1 ORDER BY time_ms, id",
            &[id.into()],
        )?
        .iter()
        .map(|r| Recorded {
            kind: r[0].text(),
            note: r[1].text(),
            time_ms: r[2].int(),
            user: r[3].text(),
            closes: r[4].int() != 0,
        })
        .collect();
    Ok(Some((c, hits, outcomes)))
}

/// What became of an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Recorded.
    Done,
    /// No such case in the scope.
    NotFound,
    /// The time given is before the case's first hit (its ms).
    BeforeFirstHit(i64),
}

/// Record `outcome` on case `id`, as done at `at_ms` (a worker records a visit in the
/// evening; the figures need the visit's time) and written at `now_ms`. It closes the
/// case when the worker says so or the outcome leaves nothing to do; the first
/// contact and the first close keep their earliest times.
pub fn record(
    db: &mut dyn Sql,
    scope: &Scope,
    id: i64,
    (outcome, note, close): (Outcome, &str, bool),
    user: &str,
    (at_ms, now_ms): (i64, i64),
) -> Result<Record, DbError> {
    let found = scoped(
        Query::new("SELECT first_ms FROM cases WHERE id = ").bind(id),
        scope,
        "",
    );
    let Some(first_ms) = found.rows(db)?.first().map(|r| r[0].int()) else {
        return Ok(Record::NotFound);
    };
    if at_ms < first_ms {
        return Ok(Record::BeforeFirstHit(first_ms));
    }
    let closes = close || outcome.always_closes();
    db.execute(
        "INSERT INTO outcomes (case_id, kind, note, time_ms, user_name, closes) VALUES ($1, $2, $3, $4, $5, $6)",
        &[id.into(), outcome.word().into(), note.into(), at_ms.into(), user.into(), i64::from(closes).into()],
    )?;
    if outcome.is_contact() {
        db.execute(
            "UPDATE cases SET first_contact_ms = CASE WHEN first_contact_ms IS NULL OR $2 < first_contact_ms
             THEN $2 ELSE first_contact_ms END WHERE id = $1",
            &[id.into(), at_ms.into()],
        )?;
    }
    if closes {
        // closed_ms is when the case was closed here: a hit after it reopens the case.
        db.execute(
            "UPDATE cases SET state = 'closed', closed_ms = $3,
             first_closed_ms = CASE WHEN first_closed_ms IS NULL OR $2 < first_closed_ms
             THEN $2 ELSE first_closed_ms END WHERE id = $1",
            &[id.into(), at_ms.into(), now_ms.into()],
        )?;
    }
    Ok(Record::Done)
}

/// Per community of `scope` (street, community): the figures of the cases whose first
/// hit is at or after `since_ms`.
pub fn figures_by_community(
    db: &mut dyn Sql,
    scope: &Scope,
    since_ms: i64,
    now_ms: i64,
) -> Result<Vec<(String, String, Figures)>, DbError> {
    let q = scoped(
            Query::new("SELECT street, community, first_ms, first_contact_ms, first_closed_ms, state FROM cases WHERE first_ms >= ")
                .bind(since_ms), scope, "")
        .push(" ORDER BY street, community");
    let mut groups: Vec<(String, String, Vec<CaseTimes>)> = Vec::new();
    for r in q.rows(db)? {
        let (street, community) = (r[0].text(), r[1].text());
        let t = CaseTimes {
            first_ms: r[2].int(),
            first_contact_ms: r[3].opt_int(),
            first_closed_ms: r[4].opt_int(),
            open: r[5].text() == "open",
        };
        match groups.last_mut() {
            Some((s, c, v)) if *s == street && *c == community => v.push(t),
            _ => groups.push((street, community, vec![t])),
        }
    }
    // Open cases older than the period still count as open.
    let mut out: Vec<(String, String, Figures)> = groups
        .into_iter()
        .map(|(s, c, v)| (s, c, figures(&v, now_ms)))
        .collect();
    let older = scoped(
        Query::new(
            "SELECT street, community, COUNT(*) FROM cases WHERE state = 'open' AND first_ms < ",
        )
        .bind(since_ms),
        scope,
        "",
    );
    for r in older.push(" GROUP BY street, community").rows(db)? {
        let (s, c) = (r[0].text(), r[1].text());
        match out.iter_mut().find(|(os, oc, _)| *os == s && *oc == c) {
            Some((_, _, f)) => f.open += r[2].int() as u64,
            None => out.push((
                s,
                c,
                Figures {
                    open: r[2].int() as u64,
                    ..Figures::default()
                },
            )),
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(out)
}

/// Hits per local day and category since `since_ms` (the trend chart).
pub fn daily(
    db: &mut dyn Sql,
    scope: &Scope,
    since_ms: i64,
) -> Result<Vec<(String, String, i64)>, DbError> {
    let q = scoped(
            Query::new("SELECT day, COALESCE(category, ''), CAST(SUM(count) AS BIGINT) FROM events WHERE kind = 'hit' AND time_ms >= ")
                .bind(since_ms), scope, "")
        .push(" GROUP BY day, category ORDER BY day, category");
    Ok(q.rows(db)?
        .iter()
        .map(|r| (r[0].text(), r[1].text(), r[2].int()))
        .collect())
}

/// Hits and devices per street (district) or community (street, community) since
/// `since_ms`, most first.
pub fn by_place(
    db: &mut dyn Sql,
    scope: &Scope,
    since_ms: i64,
) -> Result<Vec<(String, i64, i64)>, DbError> {
    let col = scope.group_column();
    let q = scoped(
            Query::new(&format!(
                "SELECT {col}, CAST(SUM(count) AS BIGINT), COUNT(DISTINCT device) FROM events WHERE kind = 'hit' AND time_ms >= "
            ))
            .bind(since_ms), scope, "")
        .push(&format!(" GROUP BY {col} ORDER BY 2 DESC, 1"));
    Ok(q.rows(db)?
        .iter()
        .map(|r| (r[0].text(), r[1].int(), r[2].int()))
        .collect())
}

/// The rules that stopped most since `since_ms`: rule, category, note, hits.
pub fn top_rules(
    db: &mut dyn Sql,
    scope: &Scope,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<(String, String, String, i64)>, DbError> {
    let q = scoped(
            Query::new("SELECT rule, COALESCE(category, ''), COALESCE(MAX(note), ''), CAST(SUM(count) AS BIGINT) FROM events WHERE kind = 'hit' AND time_ms >= ")
                .bind(since_ms), scope, "")
        .push(" GROUP BY rule, category ORDER BY 4 DESC, 1 LIMIT ")
        .bind(limit);
    Ok(q.rows(db)?
        .iter()
        .map(|r| (r[0].text(), r[1].text(), r[2].text(), r[3].int()))
        .collect())
}

/// An appliance's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Its name.
    pub name: String,
    /// Its newest event, Unix ms.
    pub last_event_ms: i64,
    /// Its last batch's arrival.
    pub last_received_ms: i64,
    /// From the newest event of that batch to its arrival.
    pub delay_ms: i64,
    /// Its spool backlog as it last said.
    pub spool_bytes: i64,
    /// Events received.
    pub events: i64,
}

/// Each appliance's health (district only).
pub fn appliances(db: &mut dyn Sql) -> Result<Vec<Health>, DbError> {
    Ok(db
        .query(
            "SELECT name, last_event_ms, last_received_ms, delay_ms, spool_bytes, events FROM appliances ORDER BY name",
            &[],
        )?
        .iter()
        .map(|r| Health {
            name: r[0].text(),
            last_event_ms: r[1].int(),
            last_received_ms: r[2].int(),
            delay_ms: r[3].int(),
            spool_bytes: r[4].int(),
            events: r[5].int(),
        })
        .collect())
}

/// Open cases per (street, community), for the metrics.
pub fn open_counts(db: &mut dyn Sql) -> Result<Vec<(String, String, i64)>, DbError> {
    Ok(db
        .query(
            "SELECT street, community, COUNT(*) FROM cases WHERE state = 'open' GROUP BY street, community",
            &[],
        )?
        .iter()
        .map(|r| (r[0].text(), r[1].text(), r[2].int()))
        .collect())
}
