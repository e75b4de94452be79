//! Accounts, sessions and the audit log.

use super::sql::{DbError, Sql};
use crate::scope::{Role, Scope};

/// An account.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// Its number.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// What it may see.
    pub scope: Scope,
    /// The argon2id PHC string.
    pub password: String,
    /// Disabled accounts cannot log in, and their sessions end.
    pub disabled: bool,
}

fn account(r: &[super::Value]) -> Option<Account> {
    Some(Account {
        id: r[0].int(),
        name: r[1].text(),
        scope: Scope {
            role: Role::parse(&r[2].text())?,
            place: r[3].text(),
        },
        password: r[4].text(),
        disabled: r[5].int() != 0,
    })
}

/// Add an account, or replace the role, scope and password of one of that name.
pub fn put_user(
    db: &mut dyn Sql,
    name: &str,
    scope: &Scope,
    password_hash: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO users (name, role, scope, password, created_ms, disabled) VALUES ($1, $2, $3, $4, $5, 0)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, scope = excluded.scope,
           password = excluded.password, disabled = 0",
        &[name.into(), scope.role.word().into(), scope.place.as_str().into(), password_hash.into(), now_ms.into()],
    )?;
    Ok(())
}

/// Disable an account and end its sessions; false when there is none.
pub fn disable_user(db: &mut dyn Sql, name: &str) -> Result<bool, DbError> {
    let n = db.execute(
        "UPDATE users SET disabled = 1 WHERE name = $1",
        &[name.into()],
    )?;
    db.execute(
        "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)",
        &[name.into()],
    )?;
    Ok(n > 0)
}

/// Every account.
pub fn users(db: &mut dyn Sql) -> Result<Vec<Account>, DbError> {
    Ok(db
        .query(
            "SELECT id, name, role, scope, password, disabled FROM users ORDER BY name",
            &[],
        )?
        .iter()
        .filter_map(|r| account(r))
        .collect())
}

/// The account of `name`.
pub fn user(db: &mut dyn Sql, name: &str) -> Result<Option<Account>, DbError> {
    Ok(db
        .one(
            "SELECT id, name, role, scope, password, disabled FROM users WHERE name = $1",
            &[name.into()],
        )?
        .and_then(|r| account(&r)))
}

/// Store a session (`token_hash` is the SHA-256 of the cookie: a stolen database
/// gives no live session).
pub fn open_session(
    db: &mut dyn Sql,
    token_hash: &str,
    user_id: i64,
    csrf: &str,
    now_ms: i64,
    expires_ms: i64,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO sessions (token, user_id, csrf, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)",
        &[token_hash.into(), user_id.into(), csrf.into(), now_ms.into(), expires_ms.into()],
    )?;
    Ok(())
}

/// The live session of `token_hash`: its account and CSRF token.
pub fn session(
    db: &mut dyn Sql,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<(Account, String)>, DbError> {
    let row = db.one(
        "SELECT u.id, u.name, u.role, u.scope, u.password, u.disabled, s.csrf FROM sessions s
         JOIN users u ON u.id = s.user_id WHERE s.token = $1 AND s.expires_ms > $2 AND u.disabled = 0",
        &[token_hash.into(), now_ms.into()],
    )?;
    Ok(row.and_then(|r| Some((account(&r)?, r[6].text()))))
}

/// End a session.
pub fn close_session(db: &mut dyn Sql, token_hash: &str) -> Result<(), DbError> {
    db.execute(
        "DELETE FROM sessions WHERE token = $1",
        &[token_hash.into()],
    )?;
    Ok(())
}

/// Write an audit record.
pub fn audit(
    db: &mut dyn Sql,
    now_ms: i64,
    user: &str,
    action: &str,
    target: &str,
    client: &str,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO audit (time_ms, user_name, action, target, client) VALUES ($1, $2, $3, $4, $5)",
        &[now_ms.into(), user.into(), action.into(), target.into(), client.into()],
    )?;
    Ok(())
}

/// One audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When.
    pub time_ms: i64,
    /// Who.
    pub user: String,
    /// What.
    pub action: String,
    /// On what (a case number, an appeal, an export).
    pub target: String,
    /// From where.
    pub client: String,
}

/// The latest audit records: time, user, action, target, client.
pub fn audit_log(db: &mut dyn Sql, limit: i64) -> Result<Vec<AuditRecord>, DbError> {
    Ok(db
        .query(
            "SELECT time_ms, user_name, action, target, client FROM audit ORDER BY id DESC LIMIT $1",
            &[limit.into()],
        )?
        .iter()
        .map(|r| AuditRecord { time_ms: r[0].int(), user: r[1].text(), action: r[2].text(), target: r[3].text(), client: r[4].text() })
        .collect())
}
