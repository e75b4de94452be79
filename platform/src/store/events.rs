//! A batch from an appliance, stored in one transaction: each new event, the case it
//! opens or adds to, each appeal, the batch's key and the appliance's health.

use std::collections::{HashMap, HashSet};

use super::sql::{DbError, Sql, Value};
use crate::cases::day_of;
use crate::ingest::{Incoming, Kind};

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stored {
    /// Events new to the platform.
    pub stored: u64,
    /// Events it already had (a retried batch).
    pub duplicates: u64,
    /// The whole batch had been taken before (same Idempotency-Key).
    pub replayed: bool,
}

/// The batch as received.
pub struct Batch<'a> {
    /// Which appliance.
    pub appliance: &'a str,
    /// Its Idempotency-Key, if sent.
    pub key: Option<&'a str>,
    /// The events.
    pub events: &'a [Incoming],
    /// When it arrived, Unix ms.
    pub received_ms: i64,
    /// The appliance's spool backlog, if it said.
    pub spool_bytes: Option<i64>,
    /// Minutes east of UTC of the district's days.
    pub offset_minutes: i32,
}

/// Rows per multi-row statement (18 parameters each, well under both databases' limits).
const CHUNK: usize = 500;

const EVENT_COLUMNS: &str = "INSERT INTO events (id, kind, time_ms, received_ms, day, appliance,
    device, district, street, community, name, qtype, rule, list, category, note, action, count) VALUES ";

// A hit after the case was closed reopens it; its first hit and first close stay.
const CASE_COLUMNS: &str = "INSERT INTO cases (district, street, community, device, day, category,
    rule, note, hits, first_ms, last_ms, state, reopened) VALUES ";
const CASE_CONFLICT: &str = " ON CONFLICT (community, device, day) DO UPDATE SET
      hits = cases.hits + excluded.hits,
      first_ms = CASE WHEN excluded.first_ms < cases.first_ms THEN excluded.first_ms ELSE cases.first_ms END,
      last_ms = CASE WHEN excluded.last_ms > cases.last_ms THEN excluded.last_ms ELSE cases.last_ms END,
      note = COALESCE(cases.note, excluded.note),
      reopened = cases.reopened + CASE WHEN cases.state = 'closed' AND excluded.last_ms > cases.closed_ms THEN 1 ELSE 0 END,
      closed_ms = CASE WHEN cases.state = 'closed' AND excluded.last_ms > cases.closed_ms THEN NULL ELSE cases.closed_ms END,
      state = CASE WHEN cases.state = 'closed' AND excluded.last_ms > cases.closed_ms THEN 'open' ELSE cases.state END";

const INSERT_APPEAL: &str = "INSERT INTO appeals (id, time_ms, appliance, device, district, street,
    community, host, rule, category, reason, state)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'waiting')
    ON CONFLICT (id) DO NOTHING";

/// `(…), (…)` placeholders for `rows` rows of `cols` columns, with `extra` literal
/// columns appended to each row.
fn values(rows: usize, cols: usize, extra: &str) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("${}", r * cols + c + 1));
        }
        s.push_str(extra);
        s.push(')');
    }
    s
}

/// Store `b` (the caller commits): the events new to the platform, then the cases
/// they open or add to (one row per device, community and day, whatever the batch
/// holds), then the appeals. Multi-row statements: a round trip per 500 events.
pub fn ingest(db: &mut dyn Sql, b: &Batch<'_>) -> Result<Stored, DbError> {
    if let Some(key) = b.key {
        let seen = db.int(
            "SELECT COUNT(*) FROM batches WHERE appliance = $1 AND idem_key = $2",
            &[b.appliance.into(), key.into()],
        )?;
        if seen > 0 {
            return Ok(Stored {
                replayed: true,
                ..Stored::default()
            });
        }
    }
    // An id twice in one batch is one event.
    let mut seen = HashSet::new();
    let events: Vec<&Incoming> = b
        .events
        .iter()
        .filter(|e| seen.insert(e.id.as_str()))
        .collect();
    let mut fresh: HashSet<String> = HashSet::new();
    for chunk in events.chunks(CHUNK) {
        fresh.extend(insert_events(db, b, chunk)?);
    }
    let new: Vec<&Incoming> = events
        .into_iter()
        .filter(|e| fresh.contains(&e.id))
        .collect();
    upsert_cases(db, b, &new)?;
    for e in new.iter().filter(|e| e.kind == Kind::Appeal) {
        insert_appeal(db, b, e)?;
    }
    if let Some(key) = b.key {
        db.execute(
            "INSERT INTO batches (appliance, idem_key, received_ms, events) VALUES ($1, $2, $3, $4)",
            &[b.appliance.into(), key.into(), b.received_ms.into(), (b.events.len() as i64).into()],
        )?;
    }
    health(db, b)?;
    Ok(Stored {
        stored: new.len() as u64,
        duplicates: (b.events.len() - new.len()) as u64,
        replayed: false,
    })
}

/// Insert a chunk; the ids that were new.
fn insert_events(
    db: &mut dyn Sql,
    b: &Batch<'_>,
    chunk: &[&Incoming],
) -> Result<Vec<String>, DbError> {
    let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 18);
    for e in chunk {
        let [district, street, community] = &e.place;
        let kind = match e.kind {
            Kind::Hit => "hit",
            Kind::Appeal => "appeal",
        };
        params.extend([
            e.id.as_str().into(),
            kind.into(),
            e.time_ms.into(),
            b.received_ms.into(),
            day_of(e.time_ms, b.offset_minutes).into(),
            b.appliance.into(),
            e.device.as_str().into(),
            district.into(),
            street.into(),
            community.into(),
            e.name.as_str().into(),
            e.qtype.clone().into(),
            e.rule.clone().into(),
            e.list.clone().into(),
            e.category.clone().into(),
            e.note.clone().into(),
            e.action.as_str().into(),
            e.count.into(),
        ]);
    }
    let sql = format!(
        "{EVENT_COLUMNS}{} ON CONFLICT (id) DO NOTHING RETURNING id",
        values(chunk.len(), 18, "")
    );
    Ok(db
        .query(&sql, &params)?
        .into_iter()
        .map(|r| r[0].text())
        .collect())
}

/// A case's share of a batch.
struct CaseRows<'a> {
    first: &'a Incoming,
    day: String,
    hits: i64,
    first_ms: i64,
    last_ms: i64,
}

/// One upsert row per (community, device, day) of the new hits. A shadow hit (a list
/// on trial) resolved as usual: nobody was stopped, so it makes no case.
fn upsert_cases(db: &mut dyn Sql, b: &Batch<'_>, new: &[&Incoming]) -> Result<(), DbError> {
    let mut cases: Vec<CaseRows<'_>> = Vec::new();
    let mut index: HashMap<(&str, &str, String), usize> = HashMap::new();
    for e in new
        .iter()
        .filter(|e| e.kind == Kind::Hit && e.action != "shadow")
    {
        let day = day_of(e.time_ms, b.offset_minutes);
        let key = (e.place[2].as_str(), e.device.as_str(), day.clone());
        match index.get(&key) {
            Some(&i) => {
                let c = &mut cases[i];
                c.hits += e.count;
                c.first_ms = c.first_ms.min(e.time_ms);
                c.last_ms = c.last_ms.max(e.time_ms);
            }
            None => {
                index.insert(key, cases.len());
                cases.push(CaseRows {
                    first: e,
                    day,
                    hits: e.count,
                    first_ms: e.time_ms,
                    last_ms: e.time_ms,
                });
            }
        }
    }
    for chunk in cases.chunks(CHUNK) {
        let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 11);
        for c in chunk {
            let e = c.first;
            let [district, street, community] = &e.place;
            params.extend([
                district.into(),
                street.into(),
                community.into(),
                e.device.as_str().into(),
                c.day.as_str().into(),
                e.category.clone().unwrap_or_default().into(),
                e.rule.clone().unwrap_or_default().into(),
                e.note.clone().into(),
                c.hits.into(),
                c.first_ms.into(),
                c.last_ms.into(),
            ]);
        }
        let sql = format!(
            "{CASE_COLUMNS}{}{CASE_CONFLICT}",
            values(chunk.len(), 11, ", 'open', 0")
        );
        db.execute(&sql, &params)?;
    }
    Ok(())
}

fn insert_appeal(db: &mut dyn Sql, b: &Batch<'_>, e: &Incoming) -> Result<(), DbError> {
    let [district, street, community] = &e.place;
    db.execute(
        INSERT_APPEAL,
        &[
            e.id.as_str().into(),
            e.time_ms.into(),
            b.appliance.into(),
            e.device.as_str().into(),
            district.into(),
            street.into(),
            community.into(),
            e.name.as_str().into(),
            e.rule.clone().into(),
            e.category.clone().into(),
            e.reason.clone().unwrap_or_default().into(),
        ],
    )?;
    Ok(())
}

/// The appliance's last event, delay and backlog.
fn health(db: &mut dyn Sql, b: &Batch<'_>) -> Result<(), DbError> {
    let newest = b.events.iter().map(|e| e.time_ms).max();
    let delay = newest.map_or(0, |t| (b.received_ms - t).max(0));
    db.execute(
        "INSERT INTO appliances (name, last_event_ms, last_received_ms, delay_ms, spool_bytes, events)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO UPDATE SET
           last_event_ms = CASE WHEN excluded.last_event_ms > appliances.last_event_ms
                           THEN excluded.last_event_ms ELSE appliances.last_event_ms END,
           last_received_ms = excluded.last_received_ms,
           delay_ms = excluded.delay_ms,
           spool_bytes = COALESCE($7, appliances.spool_bytes),
           events = appliances.events + excluded.events",
        &[
            b.appliance.into(),
            newest.unwrap_or(0).into(),
            b.received_ms.into(),
            delay.into(),
            b.spool_bytes.unwrap_or(0).into(),
            (b.events.len() as i64).into(),
            Value::Int(b.spool_bytes),
        ],
    )?;
    Ok(())
}

/// Delete what is older than `cutoff_ms` (events, cases and their outcomes, reviewed
/// appeals, batch keys, expired sessions); the events deleted.
pub fn retain(db: &mut dyn Sql, cutoff_ms: i64, now_ms: i64) -> Result<u64, DbError> {
    let n = db.execute("DELETE FROM events WHERE time_ms < $1", &[cutoff_ms.into()])?;
    db.execute(
        "DELETE FROM outcomes WHERE case_id IN (SELECT id FROM cases WHERE last_ms < $1)",
        &[cutoff_ms.into()],
    )?;
    db.execute("DELETE FROM cases WHERE last_ms < $1", &[cutoff_ms.into()])?;
    db.execute(
        "DELETE FROM appeals WHERE time_ms < $1 AND state <> 'waiting'",
        &[cutoff_ms.into()],
    )?;
    // A retried batch comes within days; a week of keys is plenty.
    db.execute(
        "DELETE FROM batches WHERE received_ms < $1",
        &[(now_ms - 7 * crate::cases::DAY_MS).into()],
    )?;
    db.execute(
        "DELETE FROM sessions WHERE expires_ms < $1",
        &[now_ms.into()],
    )?;
    Ok(n)
}
