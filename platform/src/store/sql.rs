//! One SQL interface over SQLite and PostgreSQL: values are 64-bit integers or text
//! (the only column types of the schema), placeholders are written `$1`, `$2` … in
//! every statement, as PostgreSQL reads them (SQLite gets `?1`, `?2` …).

use std::borrow::Cow;

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A BIGINT, or NULL.
    Int(Option<i64>),
    /// A TEXT, or NULL.
    Text(Option<String>),
}

impl Value {
    /// The integer (0 for NULL or text).
    pub fn int(&self) -> i64 {
        match self {
            Value::Int(Some(i)) => *i,
            _ => 0,
        }
    }
    /// The integer, if not NULL.
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => *i,
            Value::Text(_) => None,
        }
    }
    /// The text ("" for NULL).
    pub fn text(&self) -> String {
        match self {
            Value::Text(Some(s)) => s.clone(),
            Value::Int(Some(i)) => i.to_string(),
            _ => String::new(),
        }
    }
    /// The text, if not NULL.
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Value::Text(s) => s.clone(),
            Value::Int(_) => None,
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(Some(i))
    }
}
impl From<Option<i64>> for Value {
    fn from(i: Option<i64>) -> Self {
        Value::Int(i)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(Some(s.to_string()))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(Some(s))
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(Some(s.clone()))
    }
}
impl From<Option<String>> for Value {
    fn from(s: Option<String>) -> Self {
        Value::Text(s)
    }
}
impl From<Option<&str>> for Value {
    fn from(s: Option<&str>) -> Self {
        Value::Text(s.map(str::to_string))
    }
}

/// A row read back.
pub type Row = Vec<Value>;

/// What failed in the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    /// A column of a type the schema does not use.
    #[error("column {0} has a type other than BIGINT or TEXT")]
    Type(usize),
    /// Anything else (a pool, a migration).
    #[error("{0}")]
    Other(String),
}

/// Statements on one connection or transaction.
pub trait Sql {
    /// Run a statement; the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
    /// Run a query; every row.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Run statements with no parameters, separated by `;`.
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Which database: the schema's few differences.
    fn dialect(&self) -> Dialect;
}

impl dyn Sql + '_ {
    /// The first row, if any.
    pub fn one(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
    /// The first column of the first row as an integer (0 when there is none).
    pub fn int(&mut self, sql: &str, params: &[Value]) -> Result<i64, DbError> {
        Ok(self
            .one(sql, params)?
            .and_then(|r| r.into_iter().next())
            .map_or(0, |v| v.int()))
    }
}

/// The database behind a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// `$1` → `?1` for SQLite (the same numbering; `$` inside quotes never occurs in our SQL).
pub fn for_sqlite(sql: &str) -> Cow<'_, str> {
    if sql.contains('$') {
        Cow::Owned(sql.replace('$', "?"))
    } else {
        Cow::Borrowed(sql)
    }
}

/// A statement with its parameters, numbered as they are pushed.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// The SQL so far.
    pub sql: String,
    /// Its parameters.
    pub params: Vec<Value>,
}

impl Query {
    /// Start with `sql` (no parameters in it).
    pub fn new(sql: &str) -> Query {
        Query {
            sql: sql.to_string(),
            params: Vec::new(),
        }
    }
    /// Append SQL.
    pub fn push(mut self, sql: &str) -> Query {
        self.sql.push_str(sql);
        self
    }
    /// Append a placeholder bound to `v`.
    pub fn bind(mut self, v: impl Into<Value>) -> Query {
        self.params.push(v.into());
        self.sql.push_str(&format!("${}", self.params.len()));
        self
    }
    /// Run it as a query.
    pub fn rows(&self, db: &mut dyn Sql) -> Result<Vec<Row>, DbError> {
        db.query(&self.sql, &self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_in_order() {
        let q = Query::new("SELECT a FROM t WHERE b = ")
            .bind(1)
            .push(" AND c = ")
            .bind("x");
        assert_eq!(q.sql, "SELECT a FROM t WHERE b = $1 AND c = $2");
        assert_eq!(
            for_sqlite(&q.sql),
            "SELECT a FROM t WHERE b = ?1 AND c = ?2"
        );
        assert_eq!(q.params, vec![Value::from(1), Value::from("x")]);
    }
}
