//! A batch from an appliance, stored in one transaction: each new event, the case it
//! opens or adds to, each appeal, the batch's key and the appliance's health.

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

const INSERT_EVENT: &str = "INSERT INTO events (id, kind, time_ms, received_ms, day, appliance,
    device, district, street, community, name, qtype, rule, list, category, note, action, count)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
    ON CONFLICT (id) DO NOTHING";

// A hit after the case was closed reopens it; its first hit and first close stay.
const UPSERT_CASE: &str = "INSERT INTO cases (district, street, community, device, day, category,
    rule, note, hits, first_ms, last_ms, state, reopened)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 'open', 0)
    ON CONFLICT (community, device, day) DO UPDATE SET
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

/// Store `b` (the caller commits).
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
    let mut out = Stored::default();
    for e in b.events {
        if insert_event(db, b, e)? {
            out.stored += 1;
        } else {
            out.duplicates += 1;
        }
    }
    if let Some(key) = b.key {
        db.execute(
            "INSERT INTO batches (appliance, idem_key, received_ms, events) VALUES ($1, $2, $3, $4)",
            &[b.appliance.into(), key.into(), b.received_ms.into(), (b.events.len() as i64).into()],
        )?;
    }
    health(db, b)?;
    Ok(out)
}

/// One event; false when it was already there.
fn insert_event(db: &mut dyn Sql, b: &Batch<'_>, e: &Incoming) -> Result<bool, DbError> {
    let day = day_of(e.time_ms, b.offset_minutes);
    let [district, street, community] = &e.place;
    let kind = match e.kind {
        Kind::Hit => "hit",
        Kind::Appeal => "appeal",
    };
    let fresh = db.execute(
        INSERT_EVENT,
        &[
            e.id.as_str().into(),
            kind.into(),
            e.time_ms.into(),
            b.received_ms.into(),
            day.as_str().into(),
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
        ],
    )? == 1;
    if !fresh {
        return Ok(false);
    }
    match e.kind {
        // A shadow hit (a list on trial) resolved as usual: nobody was stopped, no case.
        Kind::Hit if e.action != "shadow" => {
            db.execute(
                UPSERT_CASE,
                &[
                    district.into(),
                    street.into(),
                    community.into(),
                    e.device.as_str().into(),
                    day.into(),
                    e.category.clone().unwrap_or_default().into(),
                    e.rule.clone().unwrap_or_default().into(),
                    e.note.clone().into(),
                    e.count.into(),
                    e.time_ms.into(),
                ],
            )?;
        }
        Kind::Hit => {}
        Kind::Appeal => {
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
        }
    }
    Ok(true)
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
