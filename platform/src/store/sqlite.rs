//! SQLite: one file in WAL mode, one writer and a few readers. Commits are durable
//! (`synchronous = FULL`): a batch is acknowledged only once it would survive a
//! power cut.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::sql::{DbError, Dialect, Row, Sql, Value, for_sqlite};

/// The readers kept open.
const READERS: usize = 4;

/// An SQLite database.
pub struct Sqlite {
    path: std::path::PathBuf,
    writer: Mutex<rusqlite::Connection>,
    readers: Mutex<Vec<rusqlite::Connection>>,
}

fn open(path: &Path) -> Result<rusqlite::Connection, DbError> {
    let c = rusqlite::Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )?;
    Ok(c)
}

impl Sqlite {
    /// Open (or create) the database file.
    pub fn open(path: &Path) -> Result<Sqlite, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Other(format!("creating {}: {e}", dir.display())))?;
        }
        Ok(Sqlite {
            path: path.to_path_buf(),
            writer: Mutex::new(open(path)?),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Run `f` in a write transaction; committed when it returns Ok.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut c = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut lite = Lite(&tx);
        let out = f(&mut lite)?;
        tx.commit()?;
        Ok(out)
    }

    /// Run `f` on a reader (a consistent snapshot for its statements).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let taken = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut c = match taken {
            Some(c) => c,
            None => open(&self.path)?,
        };
        let out = {
            let tx = c.transaction()?;
            let out = f(&mut Lite(&tx));
            tx.finish()?;
            out
        };
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.len() < READERS {
            readers.push(c);
        }
        out
    }

    /// An online copy of the database into `to` (SQLite's backup API: writers go on).
    pub fn backup(&self, to: &Path) -> Result<(), DbError> {
        let src = open(&self.path)?;
        let mut dst = rusqlite::Connection::open(to)?;
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        b.run_to_completion(1024, std::time::Duration::from_millis(5), None)?;
        Ok(())
    }
}

/// A connection (or transaction, by deref) as [`Sql`].
struct Lite<'a>(&'a rusqlite::Connection);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(Some(i)) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(None) | Value::Text(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

impl Sql for Lite<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut st = self.0.prepare_cached(&for_sqlite(sql))?;
        Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut st = self.0.prepare_cached(&for_sqlite(sql))?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Int(None),
                    ValueRef::Integer(v) => Value::Int(Some(v)),
                    ValueRef::Real(f) => Value::Int(Some(f as i64)),
                    ValueRef::Text(t) => Value::Text(Some(String::from_utf8_lossy(t).into())),
                    ValueRef::Blob(_) => return Err(DbError::Type(i)),
                });
            }
            out.push(row);
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}
