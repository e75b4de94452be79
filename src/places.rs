//! Client subnet → district / street / community, by longest-prefix match. Pure.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

/// Where a client is: the three levels of the district's administration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Place {
    /// 区
    pub district: String,
    /// 街道
    pub street: String,
    /// 社区
    pub community: String,
}

/// The configured subnets.
#[derive(Debug, Clone, Default)]
pub struct Places {
    /// Sorted by prefix length, longest first, so the first match is the best.
    nets: Vec<(IpNet, Place)>,
    default: Place,
}

impl Places {
    /// Places from `(subnet, place)` pairs, with `default` for clients in none.
    pub fn new(entries: Vec<(IpNet, Place)>, default: Place) -> Places {
        let mut nets = entries;
        nets.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        Places { nets, default }
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
        }
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
