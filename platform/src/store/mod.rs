//! Where the platform keeps everything: SQLite by default (one file, WAL), PostgreSQL
//! for a district that runs several instances or its own backups. Both run the same
//! statements ([`sql`]) on the same schema ([`schema`]).

pub mod appeals;
pub mod cases;
pub mod events;
pub mod people;
pub mod postgres;
pub mod schema;
pub mod sql;
pub mod sqlite;

use std::path::Path;

pub use sql::{DbError, Query, Sql, Value};

use crate::scope::{Role, Scope};

/// Limit `q` to `scope`: append ` AND <prefix>street = …` or `… community = …`. Every
/// query of cases, events and appeals for a person goes through here, so a row of
/// another place is simply not found, whatever its id.
pub fn scoped(q: Query, scope: &Scope, prefix: &str) -> Query {
    match scope.role {
        Role::District => q,
        Role::Street => q
            .push(&format!(" AND {prefix}street = "))
            .bind(&scope.place),
        // `街道/社区` where two streets have a community of the same name.
        Role::Community => match scope.place.split_once('/') {
            Some((street, community)) => q
                .push(&format!(" AND {prefix}street = "))
                .bind(street)
                .push(&format!(" AND {prefix}community = "))
                .bind(community),
            None => q
                .push(&format!(" AND {prefix}community = "))
                .bind(&scope.place),
        },
    }
}

/// The database.
pub enum Store {
    /// One SQLite file.
    Sqlite(sqlite::Sqlite),
    /// A PostgreSQL server.
    Postgres(postgres::Postgres),
}

impl Store {
    /// Open `url`: `sqlite:PATH` (or a bare path) or `postgres://…`/`postgresql://…`,
    /// and bring its schema up to date.
    pub fn open(url: &str) -> Result<Store, DbError> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(postgres::Postgres::open(url)?)
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"));
            Store::Sqlite(sqlite::Sqlite::open(Path::new(path.unwrap_or(url)))?)
        };
        store.write(schema::migrate)?;
        Ok(store)
    }

    /// Run `f` in one transaction, committed (durably) when it returns Ok.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        match self {
            Store::Sqlite(s) => s.write(f),
            Store::Postgres(p) => p.write(f),
        }
    }

    /// Run `f` on one consistent snapshot.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        match self {
            Store::Sqlite(s) => s.read(f),
            Store::Postgres(p) => p.read(f),
        }
    }

    /// Which kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgresql",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_bind_the_place() {
        let s = Scope {
            role: Role::Community,
            place: "缤纷社区".into(),
        };
        let q = scoped(
            Query::new("SELECT id FROM cases WHERE id = ").bind(7i64),
            &s,
            "",
        );
        assert_eq!(
            q.sql,
            "SELECT id FROM cases WHERE id = $1 AND community = $2"
        );
        assert_eq!(q.params[1], Value::from("缤纷社区"));
        let twin = Scope {
            role: Role::Community,
            place: "长河街道/新村社区".into(),
        };
        let q = scoped(Query::new("x WHERE 1=1"), &twin, "");
        assert_eq!(q.sql, "x WHERE 1=1 AND street = $1 AND community = $2");
        assert_eq!(
            q.params,
            vec![Value::from("长河街道"), Value::from("新村社区")]
        );
        let st = Scope {
            role: Role::Street,
            place: "西兴街道".into(),
        };
        assert_eq!(
            scoped(Query::new("x WHERE 1=1"), &st, "c.").sql,
            "x WHERE 1=1 AND c.street = $1"
        );
        let d = Scope {
            role: Role::District,
            place: String::new(),
        };
        assert_eq!(
            scoped(Query::new("x WHERE 1=1"), &d, "c.").sql,
            "x WHERE 1=1"
        );
    }
}
