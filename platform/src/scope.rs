//! Who sees what: a district account everything, a street account its street and its
//! communities, a community account its community. Every query of cases, events and
//! appeals goes through `store::scoped`, so a case of another place is simply not
//! found (404), whatever its id.

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
    fn roles_round_trip() {
        for r in [Role::District, Role::Street, Role::Community] {
            assert_eq!(Role::parse(r.word()), Some(r));
        }
        assert_eq!(Role::parse("mayor"), None);
    }
}
