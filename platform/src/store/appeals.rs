//! Residents' appeals, their review, and the allow list accepted appeals make.

use super::sql::{DbError, Sql};

/// An appeal as the reviewer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Appeal {
    /// The event id.
    pub id: String,
    /// When.
    pub time_ms: i64,
    /// Where from.
    pub street: String,
    /// 社区.
    pub community: String,
    /// The host appealed for.
    pub host: String,
    /// The rule and category that blocked it.
    pub rule: String,
    /// Category.
    pub category: String,
    /// The resident's text.
    pub reason: String,
    /// waiting, accepted, rejected.
    pub state: String,
    /// Who decided, why, when.
    pub reviewer: String,
    /// Why.
    pub review_reason: String,
}

/// Appeals in `state` (waiting: oldest first; others newest first).
pub fn list(db: &mut dyn Sql, state: &str, limit: i64) -> Result<Vec<Appeal>, DbError> {
    let order = if state == "waiting" { "ASC" } else { "DESC" };
    Ok(db
        .query(
            &format!(
                "SELECT id, time_ms, street, community, host, COALESCE(rule, ''), COALESCE(category, ''), reason,
                 state, COALESCE(reviewer, ''), COALESCE(review_reason, '') FROM appeals WHERE state = $1
                 ORDER BY time_ms {order} LIMIT $2"
            ),
            &[state.into(), limit.into()],
        )?
        .iter()
        .map(|r| Appeal {
            id: r[0].text(),
            time_ms: r[1].int(),
            street: r[2].text(),
            community: r[3].text(),
            host: r[4].text(),
            rule: r[5].text(),
            category: r[6].text(),
            reason: r[7].text(),
            state: r[8].text(),
            reviewer: r[9].text(),
            review_reason: r[10].text(),
        })
        .collect())
}

/// Accept or reject a waiting appeal; an accepted one puts its host on the allow
/// list. False when there is no such waiting appeal.
pub fn decide(
    db: &mut dyn Sql,
    id: &str,
    accept: bool,
    reason: &str,
    user: &str,
    now_ms: i64,
) -> Result<bool, DbError> {
    let state = if accept { "accepted" } else { "rejected" };
    let n = db.execute(
        "UPDATE appeals SET state = $2, reviewer = $3, review_reason = $4, reviewed_ms = $5
         WHERE id = $1 AND state = 'waiting'",
        &[
            id.into(),
            state.into(),
            user.into(),
            reason.into(),
            now_ms.into(),
        ],
    )?;
    if n == 1 && accept {
        db.execute(
            "INSERT INTO allowlist (host, appeal_id, added_ms, added_by)
             SELECT host, id, $2, $3 FROM appeals WHERE id = $1
             ON CONFLICT (host) DO NOTHING",
            &[id.into(), now_ms.into(), user.into()],
        )?;
    }
    Ok(n == 1)
}

/// Appeals waiting.
pub fn waiting(db: &mut dyn Sql) -> Result<i64, DbError> {
    db.int("SELECT COUNT(*) FROM appeals WHERE state = 'waiting'", &[])
}

/// The allow list: host, appeal id, when, by whom.
pub fn allowlist(db: &mut dyn Sql) -> Result<Vec<(String, String, i64, String)>, DbError> {
    Ok(db
        .query(
            "SELECT host, appeal_id, added_ms, added_by FROM allowlist ORDER BY host",
            &[],
        )?
        .iter()
        .map(|r| (r[0].text(), r[1].text(), r[2].int(), r[3].text()))
        .collect())
}

/// The allow list as a fanzha list file (plain names, each with its appeal as the
/// note), for `fanzha publish` (`[blocklist] allow_dirs`).
pub fn allowlist_file(rows: &[(String, String, i64, String)]) -> String {
    let mut s = String::from(
        "# fanzha-platform: names unblocked by accepted appeals (written by the platform; do not edit)\n",
    );
    for (host, appeal, _, _) in rows {
        s.push_str(&format!("{host} # appeal {appeal}\n"));
    }
    s
}
