//! PostgreSQL: a small pool of connections (the `postgres` crate, used from the
//! blocking pool).

use std::sync::Mutex;

use postgres::types::{ToSql, Type};
use postgres::{GenericClient, NoTls, Statement};
use std::collections::HashMap;

use super::sql::{DbError, Dialect, Row, Sql, Value};

/// Connections kept open.
const POOL: usize = 8;

/// A PostgreSQL database.
pub struct Postgres {
    url: String,
    pool: Mutex<Vec<Conn>>,
}

/// A connection and its prepared statements (a round trip saved per statement).
struct Conn {
    client: postgres::Client,
    prepared: HashMap<String, Statement>,
}

impl Conn {
    fn connect(url: &str) -> Result<Conn, DbError> {
        Ok(Conn {
            client: postgres::Client::connect(url, NoTls)?,
            prepared: HashMap::new(),
        })
    }
}

impl Postgres {
    /// Connect to `url` (`postgres://user@host:port/db` or
    /// `postgresql:///db?host=/run/postgresql`); fails now when it cannot.
    pub fn open(url: &str) -> Result<Postgres, DbError> {
        let first = Conn::connect(url)?;
        Ok(Postgres {
            url: url.to_string(),
            pool: Mutex::new(vec![first]),
        })
    }

    fn take(&self) -> Result<Conn, DbError> {
        let taken = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match taken {
            Some(c) if !c.client.is_closed() => Ok(c),
            _ => Conn::connect(&self.url),
        }
    }

    fn give(&self, c: Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL && !c.client.is_closed() {
            pool.push(c);
        }
    }

    /// Run `f` in a transaction; committed when it returns Ok.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut c = self.take()?;
        let out = (|| {
            let mut tx = c.client.transaction()?;
            let out = f(&mut Pg(&mut tx, &mut c.prepared))?;
            tx.commit()?;
            Ok(out)
        })();
        self.give(c);
        out
    }

    /// Run `f` in a read-only transaction (one snapshot).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut c = self.take()?;
        let out = (|| {
            let mut tx = c
                .client
                .build_transaction()
                .read_only(true)
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .start()?;
            let out = f(&mut Pg(&mut tx, &mut c.prepared))?;
            tx.commit()?;
            Ok(out)
        })();
        self.give(c);
        out
    }
}

impl Drop for Postgres {
    // Each client owns a small runtime, which may not be dropped on an async worker:
    // they are dropped on a thread of their own.
    fn drop(&mut self) {
        let pool = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|p| p.into_inner()));
        let _ = std::thread::spawn(move || drop(pool)).join();
    }
}

struct Pg<'a, C: GenericClient>(&'a mut C, &'a mut HashMap<String, Statement>);

impl<C: GenericClient> Pg<'_, C> {
    fn prepared(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(st) = self.1.get(sql) {
            return Ok(st.clone());
        }
        let st = self.0.prepare(sql)?;
        self.1.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| -> &(dyn ToSql + Sync) {
            match v {
                Value::Int(i) => i,
                Value::Text(s) => s,
            }
        })
        .collect()
}

impl<C: GenericClient> Sql for Pg<'_, C> {
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        let st = self.prepared(sql)?;
        Ok(self.0.execute(&st, &params(values))?)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, DbError> {
        let st = self.prepared(sql)?;
        let rows = self.0.query(&st, &params(values))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut row = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                row.push(match *col.type_() {
                    Type::INT8 => Value::Int(r.try_get(i)?),
                    Type::INT4 => Value::Int(r.try_get::<_, Option<i32>>(i)?.map(i64::from)),
                    Type::INT2 => Value::Int(r.try_get::<_, Option<i16>>(i)?.map(i64::from)),
                    Type::FLOAT8 => Value::Int(r.try_get::<_, Option<f64>>(i)?.map(|f| f as i64)),
                    Type::BOOL => Value::Int(r.try_get::<_, Option<bool>>(i)?.map(i64::from)),
                    Type::TEXT | Type::VARCHAR | Type::NAME => Value::Text(r.try_get(i)?),
                    _ => return Err(DbError::Type(i)),
                });
            }
            out.push(row);
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.0.batch_execute(sql)?)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}
