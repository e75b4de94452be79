//! Client subnet → district / street / community, by longest-prefix match, each
//! place's own actions per category (`[[policies]]`), and where its workers are
//! alerted (`[[places]] alert`). A place with an `id` can also be named by a client
//! over encrypted DNS (its private DNS name): such a query is the place's whatever
//! the address ([`Asker`]). Pure.

use std::collections::HashMap;
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
    /// Index of its alert target in [`Places`] (none: no alerts of its own).
    #[serde(skip)]
    pub alert: Option<u16>,
    /// Its devices trust the district's CA: the URL proxy opens their HTTPS.
    #[serde(skip)]
    pub managed_tls: bool,
}

impl Place {
    /// The three levels as one text ("滨江区/西兴街道/缤纷社区"): which digest a hit
    /// belongs to. Two subnets of one community share it.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.district, self.street, self.community)
    }
}

/// Who asked: the client's address, and the place it named over DNS over TLS or
/// HTTPS (`<id>.<dns_name>`, `/dns-query/<id>`), which then decides its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker {
    /// The client's address (its prefix is what rate limits and caps count).
    pub ip: IpAddr,
    /// Index of the named place in [`Places`] (see [`Places::named`]).
    pub named: Option<u16>,
}

impl Asker {
    /// A client that named no place: its address decides.
    pub fn at(ip: IpAddr) -> Asker {
        Asker { ip, named: None }
    }
}

/// How a place's own workers are alerted (`[[places]] alert`).
#[derive(Clone, PartialEq, Eq)]
pub struct AlertTarget {
    /// The robot's kind.
    pub kind: AlertKind,
    /// Where to POST (the robot's webhook URL).
    pub url: String,
    /// The signing secret (DingTalk's "加签" secret, the webhook's HMAC key); empty:
    /// unsigned (a DingTalk robot secured by keyword or address instead, WeCom).
    pub secret: String,
}

impl std::fmt::Debug for AlertTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertTarget")
            .field("kind", &self.kind)
            .field("url", &crate::text::redact_url(&self.url))
            .field(
                "secret",
                &if self.secret.is_empty() {
                    ""
                } else {
                    "(hidden)"
                },
            )
            .finish()
    }
}

/// The group-chat robots fanzha can post to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// A DingTalk (钉钉) custom robot.
    DingTalk,
    /// A WeCom (企业微信) group robot.
    WeCom,
    /// Any HTTP endpoint: signed JSON, as the reporter signs its batches.
    Webhook,
}

impl AlertKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::DingTalk => "dingtalk",
            AlertKind::WeCom => "wecom",
            AlertKind::Webhook => "webhook",
        }
    }
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
    alerts: Vec<AlertTarget>,
    /// The places with an `id`, in config order, and the ids (lower-case).
    named: Vec<(String, Place)>,
    /// For each prefix length in use, longest first: network address → index in
    /// `nets`. A lookup masks the address once per length in use (a district has a
    /// few: /16 streets, /24 communities), not once per subnet.
    v4: Vec<(u8, NetMap<u32>)>,
    v6: Vec<(u8, NetMap<u128>)>,
}

/// Network address → index. The keys are the operator's own subnets, not chosen by
/// clients, so a multiplicative hash (one multiply, no SipHash rounds) is enough:
/// a client's address only picks which bucket is probed.
type NetMap<K> = HashMap<K, usize, std::hash::BuildHasherDefault<MulHash>>;

/// Fibonacci hashing of an integer key.
#[derive(Default, Clone, Copy)]
struct MulHash(u64);

impl std::hash::Hasher for MulHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = (self.0 ^ (n as u64) ^ ((n >> 64) as u64).rotate_left(32))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

fn mask4(a: u32, len: u8) -> u32 {
    a & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask6(a: u128, len: u8) -> u128 {
    a & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl Places {
    /// Places from `(subnet, place)` pairs, with `default` for clients in none.
    pub fn new(entries: Vec<(IpNet, Place)>, default: Place) -> Places {
        let mut nets = entries;
        nets.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        let mut v4: Vec<(u8, NetMap<u32>)> = Vec::new();
        let mut v6: Vec<(u8, NetMap<u128>)> = Vec::new();
        for (i, (net, _)) in nets.iter().enumerate() {
            // The first of two equal subnets wins, as the scan it replaces did.
            match net {
                IpNet::V4(n) => {
                    let len = n.prefix_len();
                    if v4.last().is_none_or(|(l, _)| *l != len) {
                        v4.push((len, NetMap::default()));
                    }
                    let key = mask4(u32::from(n.network()), len);
                    v4.last_mut().map(|(_, m)| m.entry(key).or_insert(i));
                }
                IpNet::V6(n) => {
                    let len = n.prefix_len();
                    if v6.last().is_none_or(|(l, _)| *l != len) {
                        v6.push((len, NetMap::default()));
                    }
                    let key = mask6(u128::from(n.network()), len);
                    v6.last_mut().map(|(_, m)| m.entry(key).or_insert(i));
                }
            }
        }
        Places {
            nets,
            default,
            policies: Vec::new(),
            alerts: Vec::new(),
            named: Vec::new(),
            v4,
            v6,
        }
    }

    /// With the `[[policies]]` the places' `policy` indices point into.
    pub fn with_policies(mut self, policies: Vec<PlacePolicy>) -> Places {
        self.policies = policies;
        self
    }

    /// With the alert targets the places' `alert` indices point into.
    pub fn with_alerts(mut self, alerts: Vec<AlertTarget>) -> Places {
        self.alerts = alerts;
        self
    }

    /// With the places that have an `id` (their private DNS name), as `(id, place)`.
    pub fn with_named(mut self, named: Vec<(String, Place)>) -> Places {
        self.named = named;
        self
    }

    /// The index of the place whose `id` is `id` (ASCII case ignored), for
    /// [`Asker::named`]. A district has tens of them: a scan is quicker than a hash.
    pub fn named(&self, id: &str) -> Option<u16> {
        self.named
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(id))
            .and_then(|i| u16::try_from(i).ok())
    }

    /// The places with an `id`, as `(id, place)`.
    pub fn ids(&self) -> impl Iterator<Item = (&str, &Place)> {
        self.named.iter().map(|(i, p)| (i.as_str(), p))
    }

    /// The place of `who`: the one it named, else its address's.
    pub fn of(&self, who: Asker) -> &Place {
        match who.named.and_then(|i| self.named.get(usize::from(i))) {
            Some((_, p)) => p,
            None => self.lookup(who.ip),
        }
    }

    /// Whether any place alerts its workers.
    pub fn has_alerts(&self) -> bool {
        !self.alerts.is_empty()
    }

    /// How many places alert their workers.
    pub fn alert_count(&self) -> usize {
        self.alerts.len()
    }

    /// The most specific place of `who` that alerts its workers, with its target: a
    /// community without a robot of its own is covered by its street's.
    pub fn alerting(&self, who: Asker) -> Option<(&Place, &AlertTarget)> {
        if self.alerts.is_empty() {
            return None;
        }
        if let Some((_, p)) = who.named.and_then(|i| self.named.get(usize::from(i))) {
            if let Some(t) = p.alert.and_then(|a| self.alerts.get(usize::from(a))) {
                return Some((p, t));
            }
            let street = format!("{}/{}/", p.district, p.street);
            return self.alert_of(&street);
        }
        let ip = who.ip;
        let with_alert = |i: &usize| {
            let place = &self.nets[*i].1;
            Some((place, self.alerts.get(usize::from(place.alert?))?))
        };
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .find_map(|(len, m)| m.get(&mask4(a, *len)).and_then(with_alert))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .find_map(|(len, m)| m.get(&mask6(a, *len)).and_then(with_alert))
            }
        }
    }

    /// The alert target of the place whose [`Place::key`] is `key` (the most specific
    /// subnet of that name with one), as the config says now.
    pub fn alert_of(&self, key: &str) -> Option<(&Place, &AlertTarget)> {
        let named = self.named.iter().map(|(_, p)| p);
        self.nets.iter().map(|(_, p)| p).chain(named).find_map(|p| {
            let t = self.alerts.get(usize::from(p.alert?))?;
            (p.key() == key).then_some((p, t))
        })
    }

    /// Whether any place has a policy of its own.
    pub fn has_policies(&self) -> bool {
        !self.policies.is_empty()
    }

    /// The action the place of `who` sets for `category` (lower-case), if its policy
    /// names it: the most specific place decides. No allocation.
    pub fn action(&self, who: Asker, category: &str) -> Option<Action> {
        let p = self.policies.get(usize::from(self.of(who).policy?))?;
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
        let found = match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|(len, m)| m.get(&mask4(a, *len)))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|(len, m)| m.get(&mask6(a, *len)))
            }
        };
        found.map_or(&self.default, |&i| &self.nets[i].1)
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
        let named = self.named.iter().map(|(_, p)| p);
        let mut v: Vec<&str> = (self.nets.iter().map(|(_, p)| p).chain(named))
            .map(|p| p.street.as_str())
            .collect();
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
            ..Default::default()
        }
    }

    #[test]
    fn the_indexed_lookup_is_the_longest_prefix_match() {
        // Random subnets of every length over a small space (so they nest and
        // repeat) against a plain scan of them, longest first.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut entries = Vec::new();
        for i in 0..300 {
            let r = next();
            let net: IpNet = if i % 3 == 0 {
                let a = std::net::Ipv6Addr::from(0xfd00u128 << 112 | u128::from(r as u16) << 96);
                IpNet::new(IpAddr::V6(a), (r >> 20) as u8 % 129).unwrap()
            } else {
                let a = std::net::Ipv4Addr::from(0x0a00_0000 | (r as u32 & 0x000f_ff00));
                IpNet::new(IpAddr::V4(a), (r >> 20) as u8 % 33).unwrap()
            };
            entries.push((net, p("d", &format!("s{i}"), "")));
        }
        let places = Places::new(entries.clone(), p("d", "default", ""));
        let mut sorted = entries;
        sorted.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        for _ in 0..20_000 {
            let r = next();
            let ip = if r % 3 == 0 {
                IpAddr::V6(std::net::Ipv6Addr::from(
                    0xfd00u128 << 112 | u128::from(r >> 16) << 48,
                ))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::from(
                    0x0a00_0000 | (r as u32 & 0x00ff_ffff),
                ))
            };
            let want = sorted
                .iter()
                .find(|(n, _)| n.contains(&ip))
                .map_or("default", |(_, p)| p.street.as_str());
            assert_eq!(places.lookup(ip).street, want, "{ip}");
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
        let at = |ip: &str, c: &str| places.action(Asker::at(ip.parse().unwrap()), c);
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
    fn alerts_go_to_the_most_specific_place_with_a_robot() {
        let with = |c: &str, alert| Place {
            alert,
            ..p("滨江区", "西兴街道", c)
        };
        let target = |url: &str| AlertTarget {
            kind: AlertKind::Webhook,
            url: url.into(),
            secret: "s".into(),
        };
        let places = Places::new(
            vec![
                ("10.1.0.0/16".parse().unwrap(), with("", Some(0))),
                ("10.1.2.0/24".parse().unwrap(), with("缤纷社区", Some(1))),
                ("10.1.3.0/24".parse().unwrap(), with("江二社区", None)),
                ("10.1.4.0/24".parse().unwrap(), with("缤纷社区", None)),
            ],
            p("滨江区", "", ""),
        )
        .with_alerts(vec![target("http://street"), target("http://c1")]);
        let at = |ip: &str| {
            places
                .alerting(Asker::at(ip.parse().unwrap()))
                .map(|(p, t)| (p.community.clone(), t.url.clone()))
        };
        assert_eq!(
            at("10.1.2.9"),
            Some(("缤纷社区".into(), "http://c1".into()))
        );
        // A community without a robot: its street's.
        assert_eq!(at("10.1.3.9"), Some(("".into(), "http://street".into())));
        assert_eq!(at("10.1.9.9"), Some(("".into(), "http://street".into())));
        assert_eq!(at("10.2.0.1"), None);
        // By name: the subnet that has the robot, whichever one the hit came from.
        let (_, t) = places.alert_of("滨江区/西兴街道/缤纷社区").unwrap();
        assert_eq!(t.url, "http://c1");
        assert!(places.alert_of("滨江区/西兴街道/江二社区").is_none());
        assert!(
            !format!("{:?}", target("u")).contains("\"s\""),
            "secret hidden"
        );
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
