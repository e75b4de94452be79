//! Who sees what: a district account everything, a street account its street and its
//! communities, a community account its community. Every query of cases, events and
//! appeals goes through [`Scope::filter`], so a case of another place is simply not
//! found (404), whatever its id.

use crate::store::sql::Query;

/// An account's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 区: the whole district.
    District,
    /// 街道: one street.
    Street,
    /// 社区: one community.
    Community,
}

impl Role {
    /// The stored word.
    pub fn word(self) -> &'static str {
        match self {
            Role::District => "district",
            Role::Street => "street",
            Role::Community => "community",
        }
    }
    /// From the stored word.
    pub fn parse(s: &str) -> Option<Role> {
        [Role::District, Role::Street, Role::Community]
            .into_iter()
            .find(|r| r.word() == s)
    }
    /// The label people read.
    pub fn label(self) -> &'static str {
        match self {
            Role::District => "区",
            Role::Street => "街道",
            Role::Community => "社区",
        }
    }
}

/// What an account may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Its level.
    pub role: Role,
    /// The street or community it is limited to ("" for the district).
    pub place: String,
}

impl Scope {
    /// Append ` AND <limit>` for a table whose street and community columns are
    /// `street` and `community` (with `prefix`, e.g. `c.`).
    pub fn filter(&self, q: Query, prefix: &str) -> Query {
        match self.role {
            Role::District => q,
            Role::Street => q.push(&format!(" AND {prefix}street = ")).bind(&self.place),
            Role::Community => q
                .push(&format!(" AND {prefix}community = "))
                .bind(&self.place),
        }
    }

    /// The district's reviewers: appeals, appliances, the allow list.
    pub fn is_district(&self) -> bool {
        self.role == Role::District
    }

    /// What the rows group by at this level: streets for the district, communities
    /// below it.
    pub fn group_column(&self) -> &'static str {
        match self.role {
            Role::District => "street",
            Role::Street | Role::Community => "community",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_bind_the_place() {
        let s = Scope {
            role: Role::Community,
            place: "缤纷社区".into(),
        };
        let q = s.filter(
            Query::new("SELECT id FROM cases WHERE id = ").bind(7i64),
            "",
        );
        assert_eq!(
            q.sql,
            "SELECT id FROM cases WHERE id = $1 AND community = $2"
        );
        let d = Scope {
            role: Role::District,
            place: String::new(),
        };
        assert_eq!(d.filter(Query::new("x WHERE 1=1"), "c.").sql, "x WHERE 1=1");
        for r in [Role::District, Role::Street, Role::Community] {
            assert_eq!(Role::parse(r.word()), Some(r));
        }
    }
}
