//! Client subnet → district / street / community, by longest-prefix match, and
//! each place's own actions per category (`[[policies]]`). Pure.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::blocklist::Action;

/// Where a client is: the three levels of the district's administration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Place {
    /// 区
    pub district: String,
    /// 街道
    pub street: String,
    /// 社区
    pub community: String,
    /// Index of its `[[policies]]` entry in [`Places`] (none: the global actions).
    #[serde(skip)]
    pub policy: Option<u16>,
}

/// A `[[policies]]` entry: actions by category, for the places that name it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlacePolicy {
    /// Its name.
    pub name: String,
    /// Category (lower-case) → action; a category not here keeps the global action.
    pub categories: Vec<(String, Action)>,
}

/// The configured subnets.
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// Sorted by prefix length, longest first, so the first match is the best.
    nets: Vec<(IpNet, Place)>,
    default: Place,
    policies: Vec<PlacePolicy>,
}

impl Places {
    /// Places from `(subnet, place)` pairs, with `default` for clients in none.
    pub fn new(entries: Vec<(IpNet, Place)>, default: Place) -> Places {
        let mut nets = entries;
        nets.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        Places {
            nets,
            default,
            policies: Vec::new(),
        }
    }

    /// With the `[[policies]]` the places' `policy` indices point into.
    pub fn with_policies(mut self, policies: Vec<PlacePolicy>) -> Places {
        self.policies = policies;
        self
    }

    /// Whether any place has a policy of its own.
    pub fn has_policies(&self) -> bool {
        !self.policies.is_empty()
    }

    /// The action the place of `ip` sets for `category` (lower-case), if its policy
    /// names it: the most specific place decides. No allocation.
    pub fn action(&self, ip: IpAddr, category: &str) -> Option<Action> {
        let p = self.policies.get(usize::from(self.lookup(ip).policy?))?;
        p.categories
            .iter()
            .find(|(c, _)| c == category)
            .map(|&(_, a)| a)
    }

    /// The `[[policies]]` entries.
    pub fn policies(&self) -> &[PlacePolicy] {
        &self.policies
    }

    /// The place of `ip` (IPv4-mapped IPv6 counts as IPv4).
    pub fn lookup(&self, ip: IpAddr) -> &Place {
        let ip = ip.to_canonical();
        self.nets
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, p)| p)
            .unwrap_or(&self.default)
    }

    /// How many subnets are configured.
    pub fn len(&self) -> usize {
        self.nets.len()
    }

    /// Whether no subnet is configured (every client is in the default place).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Every street named in the config (bounded label values for metrics).
    pub fn streets(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.nets.iter().map(|(_, p)| p.street.as_str()).collect();
        v.push(&self.default.street);
        v.sort();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(d: &str, s: &str, c: &str) -> Place {
        Place {
            district: d.into(),
            street: s.into(),
            community: c.into(),
            policy: None,
        }
    }

    #[test]
    fn the_most_specific_place_sets_the_action_and_others_keep_the_global_one() {
        let with = |policy| Place {
            policy,
            ..p("滨江区", "西兴街道", "")
        };
        let places = Places::new(
            vec![
                ("10.1.0.0/16".parse().unwrap(), with(Some(0))),
                ("10.1.2.0/24".parse().unwrap(), with(Some(1))),
                ("10.1.3.0/24".parse().unwrap(), with(None)),
            ],
            p("滨江区", "", ""),
        )
        .with_policies(vec![
            PlacePolicy {
                name: "street".into(),
                categories: vec![("loan".into(), Action::Shadow)],
            },
            PlacePolicy {
                name: "school".into(),
                categories: vec![
                    ("loan".into(), Action::Sinkhole),
                    ("gambling".into(), Action::Nxdomain),
                ],
            },
        ]);
        let at = |ip: &str, c: &str| places.action(ip.parse().unwrap(), c);
        assert_eq!(at("10.1.9.9", "loan"), Some(Action::Shadow));
        assert_eq!(at("10.1.9.9", "gambling"), None);
        assert_eq!(at("10.1.2.3", "loan"), Some(Action::Sinkhole));
        assert_eq!(at("10.1.2.3", "gambling"), Some(Action::Nxdomain));
        // A more specific place without a policy: the global actions, not the
        // broader place's.
        assert_eq!(at("10.1.3.1", "loan"), None);
        assert_eq!(at("192.168.0.1", "loan"), None);
    }

    #[test]
    fn longest_prefix_wins() {
        let places = Places::new(
            vec![
                ("10.1.0.0/16".parse().unwrap(), p("滨江区", "西兴街道", "")),
                (
                    "10.1.2.0/24".parse().unwrap(),
                    p("滨江区", "西兴街道", "缤纷社区"),
                ),
                ("10.0.0.0/8".parse().unwrap(), p("滨江区", "", "")),
                ("fd00:1::/32".parse().unwrap(), p("滨江区", "长河街道", "")),
                (
                    "fd00:1:2::/48".parse().unwrap(),
                    p("滨江区", "长河街道", "江一社区"),
                ),
            ],
            p("滨江区", "未知", ""),
        );
        let at = |ip: &str| places.lookup(ip.parse().unwrap()).clone();
        assert_eq!(at("10.1.2.3"), p("滨江区", "西兴街道", "缤纷社区"));
        assert_eq!(at("10.1.9.9"), p("滨江区", "西兴街道", ""));
        assert_eq!(at("10.200.0.1"), p("滨江区", "", ""));
        assert_eq!(at("::ffff:10.1.2.3"), p("滨江区", "西兴街道", "缤纷社区"));
        assert_eq!(at("fd00:1:2::99"), p("滨江区", "长河街道", "江一社区"));
        assert_eq!(at("fd00:1:3::1"), p("滨江区", "长河街道", ""));
        assert_eq!(at("192.168.1.1"), p("滨江区", "未知", ""));
        assert_eq!(places.streets(), vec!["", "未知", "西兴街道", "长河街道"]);
    }
}
