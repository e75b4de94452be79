//! Path rules: a fraud page on a shared host (`http://sites.example/shop-1234/pay`),
//! blocked without blocking the host.
//!
//! A list entry with a path becomes a [`PathRule`] of its host. The compiled file
//! keeps them in its header ([`PathHost`] per host, in `Meta::paths`); DNS sends a
//! host that has path rules (and no host rule) to the URL proxy, which checks each
//! request against them ([`PathIndex::check`]). Pure: no I/O.
//!
//! Matching is on the normalised path (see [`normalize`]): percent-escapes of
//! unreserved characters decoded, the other escapes upper-cased, `.` and `..`
//! segments resolved and repeated slashes folded, so that `/a/./b`, `//a/b` and
//! `/%61/b` are all `/a/b` to the rule and to the request alike. Paths stay
//! case-sensitive, as HTTP says they are.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::action::Action;
pub use super::parse::{PathMatch, Schemes};

/// One path rule of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    /// The normalised path, from `/`, with the rule's query (`?…`) if it has one.
    pub path: String,
    /// How it covers a request's path.
    pub how: PathMatch,
    /// The schemes it was written for.
    pub schemes: Schemes,
    /// Its category.
    pub category: String,
    /// The list it came from and the line.
    pub list: String,
    /// Line number in that list.
    pub line: u64,
    /// What its list does with a hit (sinkhole: the warning page; shadow: relayed
    /// and counted; off: relayed).
    pub action: Action,
    /// The inline comment (a case id, `expires=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Whether it covers the names below the host too (adblock `||`, `*.host`).
    #[serde(default)]
    pub subtree: bool,
}

impl PathRule {
    /// The rule as a URL pattern, for logs, `lookup` and reports.
    pub fn pattern(&self, host: &str) -> String {
        let subtree = self.subtree;
        let scheme = match self.schemes {
            Schemes::Http => "http://",
            Schemes::Https => "https://",
            Schemes::Both => "*://",
        };
        let dot = if subtree { "*." } else { "" };
        let tail = match self.how {
            PathMatch::Exact => "",
            PathMatch::Prefix => "*",
            PathMatch::Separator => "^",
        };
        format!("{scheme}{dot}{host}{}{tail}", self.path)
    }

    /// Whether the rule covers `target` (a normalised path with its query).
    pub fn covers(&self, target: &str) -> bool {
        match self.how {
            PathMatch::Exact => {
                if self.path.contains('?') {
                    target == self.path
                } else {
                    target.split('?').next() == Some(self.path.as_str())
                }
            }
            PathMatch::Prefix => target.starts_with(&self.path),
            PathMatch::Separator => target.strip_prefix(&self.path).is_some_and(|rest| {
                rest.bytes()
                    .next()
                    .is_none_or(|b| !(b.is_ascii_alphanumeric() || b"_-.%".contains(&b)))
            }),
        }
    }
}

/// The path rules of one host, as the compiled file keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathHost {
    /// The host (normalised name).
    pub host: String,
    /// Whether some rule covers the names below the host too.
    #[serde(default)]
    pub subtree: bool,
    /// Its rules, in list order.
    pub rules: Vec<PathRule>,
}

/// What a request comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathVerdict<'a> {
    /// The host has no path rules: the proxy must not relay it.
    NotAPathHost,
    /// The host has path rules, none covers this request: relay it.
    Relay,
    /// A rule covers it.
    Hit(&'a PathRule, &'a PathHost),
}

/// Hosts with path rules, looked up by name; built when a list is loaded.
#[derive(Debug, Default)]
pub struct PathIndex {
    hosts: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// The last two labels of every host (the host itself when it has one): a
    /// name whose last two are not here is no path host, found with one lookup.
    tops: std::collections::HashSet<Box<[u8]>, foldhash::fast::RandomState>,
    table: Vec<PathHost>,
    /// Expiry (Unix seconds, 0 never) of each rule, by host then rule.
    expiries: Vec<Vec<u64>>,
}

/// Longest name the DNS lookup lower-cases on the stack.
const MAX_NAME: usize = 255;

impl PathIndex {
    /// The index of a compiled file's path table.
    pub fn new(table: &[PathHost]) -> PathIndex {
        let table = table.to_vec();
        let hosts = table
            .iter()
            .enumerate()
            .map(|(i, h)| (h.host.clone().into_boxed_str(), i))
            .collect();
        let expiries = table
            .iter()
            .map(|h| {
                h.rules
                    .iter()
                    .map(|r| {
                        r.note
                            .as_deref()
                            .and_then(super::parse::expiry_in)
                            .flatten()
                            .and_then(super::parse::expiry_unix)
                            .unwrap_or(0)
                    })
                    .collect()
            })
            .collect();
        let tops = table
            .iter()
            .map(|h| {
                let n = h.host.as_str();
                let cut = n.rmatch_indices('.').nth(1).map_or(0, |(i, _)| i + 1);
                n.as_bytes()[cut..].into()
            })
            .collect();
        PathIndex {
            hosts,
            tops,
            table,
            expiries,
        }
    }

    /// Whether there are no path rules.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every host, in the compiled order.
    pub fn hosts(&self) -> &[PathHost] {
        &self.table
    }

    /// Number of rules.
    pub fn rules(&self) -> usize {
        self.table.iter().map(|h| h.rules.len()).sum()
    }

    /// The host entry that covers `name` (lower-case, no trailing dot): the name's
    /// own, else the nearest parent's whose rules cover the names below it.
    pub fn host(&self, name: &str) -> Option<&PathHost> {
        if self.table.is_empty() {
            return None;
        }
        let mut rest = name;
        let mut own = true;
        loop {
            if let Some(&i) = self.hosts.get(rest) {
                let h = &self.table[i];
                if own || h.subtree {
                    return Some(h);
                }
            }
            own = false;
            rest = rest.split_once('.')?.1;
        }
    }

    /// [`PathIndex::host`] for a name given as DNS labels from the top (any case),
    /// without allocating: for the DNS hot path.
    pub fn covers_labels<'a>(&self, labels_from_top: impl Iterator<Item = &'a [u8]>) -> bool {
        if self.table.is_empty() {
            return false;
        }
        let mut buf = [0u8; MAX_NAME];
        let mut start = buf.len();
        let mut labels = 0;
        for (i, label) in labels_from_top.enumerate() {
            if label.len() + 1 > start {
                return false;
            }
            if i > 0 {
                start -= 1;
                buf[start] = b'.';
            }
            start -= label.len();
            for (d, &b) in buf[start..].iter_mut().zip(label) {
                *d = b.to_ascii_lowercase();
            }
            labels = i + 1;
            // Most names end in two labels no path host ends in: one lookup.
            if labels == 2 && !self.tops.contains(&buf[start..]) {
                return false;
            }
        }
        if labels == 1 && !self.tops.contains(&buf[start..]) {
            return false;
        }
        std::str::from_utf8(&buf[start..]).is_ok_and(|n| !n.is_empty() && self.host(n).is_some())
    }

    /// What a request for `host` (lower-case, no port) and `target` (the request's
    /// path and query, as sent) over TLS or not comes to at `now` (Unix seconds).
    pub fn check(&self, host: &str, target: &str, tls: bool, now: u64) -> PathVerdict<'_> {
        let Some(h) = self.host(host) else {
            return PathVerdict::NotAPathHost;
        };
        let i = self.hosts[h.host.as_str()];
        let own = h.host.len() == host.len();
        let target = normalized(target);
        for (r, &exp) in h.rules.iter().zip(&self.expiries[i]) {
            if (own || r.subtree)
                && r.schemes.covers(tls)
                && (exp == 0 || exp > now)
                && r.covers(&target)
            {
                return PathVerdict::Hit(r, h);
            }
        }
        PathVerdict::Relay
    }
}

/// A URL taken apart for [`PathIndex::check`] (`fanzha lookup URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The host, normalised.
    pub host: String,
    /// Path and query, from `/`.
    pub target: String,
    /// `https://`.
    pub tls: bool,
}

impl Url {
    /// `http://host[:port]/path?query` or `https://…`; `None` for anything else
    /// (a bare name, an address).
    pub fn parse(raw: &str) -> Option<Url> {
        let (scheme, rest) = raw.split_once("://")?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        let host = super::name::normalize(host).ok()?;
        let target = &rest[end..];
        let target = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        Some(Url { host, target, tls })
    }
}

/// The normalised form of a request target or a rule's path: `/`-rooted path and
/// optional `?query`; a fragment is dropped. See the module doc.
pub fn normalize(target: &str) -> String {
    normalized(target).into_owned()
}

/// [`normalize`], borrowing `target` when it is already normal (most requests):
/// rooted, no `%`, no `#`, no empty, `.` or `..` segment.
pub fn normalized(target: &str) -> std::borrow::Cow<'_, str> {
    let path = target.split('?').next().unwrap_or("");
    let plain = path.starts_with('/')
        && !target.contains(['%', '#'])
        && !path.contains("//")
        && !path.split('/').any(|s| s == "." || s == "..");
    if plain {
        return std::borrow::Cow::Borrowed(target);
    }
    std::borrow::Cow::Owned(normalize_slow(target))
}

fn normalize_slow(target: &str) -> String {
    let target = target.split('#').next().unwrap_or("");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut segs: Vec<String> = Vec::new();
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    for seg in path.split('/') {
        let seg = decode_unreserved(seg);
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            _ => segs.push(seg),
        }
    }
    let mut out = String::with_capacity(target.len() + 1);
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(&decode_unreserved(q));
    }
    out
}

/// `%41` → `A` for unreserved characters (RFC 3986 §2.3); other escapes upper-cased;
/// a `%` that starts no escape becomes `%25`.
fn decode_unreserved(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let c = h << 4 | l;
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                out.push(c as char);
            } else {
                out.push('%');
                out.push(b[i + 1].to_ascii_uppercase() as char);
                out.push(b[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
            continue;
        }
        if b[i] == b'%' {
            // A `%` that starts no escape is written as one, so that what is read
            // next cannot make one with it (normalising twice changes nothing).
            out.push_str("%25");
            i += 1;
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, how: PathMatch, schemes: Schemes) -> PathRule {
        PathRule {
            path: normalize(path),
            how,
            schemes,
            category: "phishing".into(),
            list: "l.txt".into(),
            line: 1,
            action: Action::Sinkhole,
            note: None,
            subtree: false,
        }
    }

    #[test]
    fn a_normal_target_is_borrowed_and_the_others_are_made_normal() {
        for t in ["/a/b", "/a/b/?x=%41", "/", "/a.b/c..d"] {
            let n = normalized(t);
            assert!(
                matches!(n, std::borrow::Cow::Borrowed(_)) || t.contains('%'),
                "{t}"
            );
            assert_eq!(n, normalize_slow(t), "{t}");
        }
        for t in ["a", "/a//b", "/a/./b", "/a/../b", "/%61", "/a#b", ""] {
            assert!(matches!(normalized(t), std::borrow::Cow::Owned(_)), "{t}");
        }
    }

    #[test]
    fn normalising_folds_the_spellings_of_one_path() {
        for p in [
            "/a/b",
            "/a/./b",
            "//a//b",
            "/%61/b",
            "/a/c/../b",
            "/a/b#frag",
        ] {
            assert_eq!(normalize(p), "/a/b", "{p}");
        }
        assert_eq!(normalize("/a/b/"), "/a/b/");
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/../../x"), "/x");
        assert_eq!(normalize("/p%2fq?id=%7e1"), "/p%2Fq?id=~1");
        assert_eq!(normalize("/A"), "/A", "paths stay case-sensitive");
        assert_eq!(normalize("/%zz%4"), "/%25zz%254");
        let odd = normalize("/%b%412");
        assert_eq!(odd, "/%25bA2");
        assert_eq!(normalize(&odd), odd, "normalising twice changes nothing");
        assert_eq!(normalize("/表单"), "/表单");
    }

    #[test]
    fn exact_prefix_and_separator_rules_cover_what_they_say() {
        let exact = rule("/shop-1/pay", PathMatch::Exact, Schemes::Both);
        assert!(exact.covers("/shop-1/pay"));
        assert!(exact.covers("/shop-1/pay?amount=9"));
        assert!(!exact.covers("/shop-1/pay/x"));
        assert!(!exact.covers("/shop-1/payment"));
        let q = rule("/form?id=7", PathMatch::Exact, Schemes::Both);
        assert!(q.covers("/form?id=7") && !q.covers("/form?id=8") && !q.covers("/form"));
        let prefix = rule("/shop-1/", PathMatch::Prefix, Schemes::Both);
        assert!(prefix.covers("/shop-1/") && prefix.covers("/shop-1/pay?x"));
        assert!(!prefix.covers("/shop-2/"));
        let sep = rule("/pay", PathMatch::Separator, Schemes::Both);
        for t in ["/pay", "/pay/", "/pay?x=1", "/pay/step2"] {
            assert!(sep.covers(t), "{t}");
        }
        for t in ["/payment", "/pay-later", "/pay.html", "/"] {
            assert!(!sep.covers(t), "{t}");
        }
    }

    #[test]
    fn the_index_finds_hosts_and_checks_requests() {
        let ix = PathIndex::new(&[
            PathHost {
                host: "sites.example".into(),
                subtree: false,
                rules: vec![
                    rule("/shop-1/pay", PathMatch::Exact, Schemes::Http),
                    rule("/shop-2/", PathMatch::Prefix, Schemes::Both),
                ],
            },
            PathHost {
                host: "blog.example".into(),
                subtree: true,
                rules: vec![PathRule {
                    subtree: true,
                    ..rule("/scam", PathMatch::Separator, Schemes::Https)
                }],
            },
        ]);
        assert_eq!(ix.rules(), 3);
        assert!(ix.host("sites.example").is_some());
        assert!(ix.host("a.sites.example").is_none(), "exact host only");
        assert!(ix.host("a.b.blog.example").is_some(), "subtree");
        assert!(ix.host("example").is_none());
        let labels = |n: &'static str| n.rsplit('.').map(str::as_bytes);
        assert!(ix.covers_labels(labels("SITES.Example")));
        assert!(ix.covers_labels(labels("x.blog.example")));
        assert!(!ix.covers_labels(labels("other.example")));
        assert!(matches!(
            ix.check("sites.example", "/shop-1//pay?a", false, 0),
            PathVerdict::Hit(r, _) if r.path == "/shop-1/pay"
        ));
        assert_eq!(
            ix.check("sites.example", "/shop-1/pay", true, 0),
            PathVerdict::Relay,
            "an http:// rule does not cover HTTPS"
        );
        assert_eq!(
            ix.check("sites.example", "/shop-3/", false, 0),
            PathVerdict::Relay
        );
        assert!(matches!(
            ix.check("sites.example", "/shop-2/x", true, 0),
            PathVerdict::Hit(..)
        ));
        assert!(matches!(
            ix.check("m.blog.example", "/scam/1", true, 0),
            PathVerdict::Hit(..)
        ));
        assert_eq!(
            ix.check("elsewhere.example", "/", false, 0),
            PathVerdict::NotAPathHost
        );
    }

    #[test]
    fn an_expired_rule_stops_covering() {
        let mut r = rule("/x", PathMatch::Exact, Schemes::Both);
        r.note = Some("expires=2030-01-01T00:00:00+08:00 case 9".into());
        let ix = PathIndex::new(&[PathHost {
            host: "h.example".into(),
            subtree: false,
            rules: vec![r],
        }]);
        let at = 1_893_427_200; // 2030-01-01T00:00:00+08:00
        assert!(matches!(
            ix.check("h.example", "/x", false, at - 1),
            PathVerdict::Hit(..)
        ));
        assert_eq!(ix.check("h.example", "/x", false, at), PathVerdict::Relay);
        assert!(
            ix.host("h.example").is_some(),
            "the host still goes to the proxy"
        );
    }

    #[test]
    fn patterns_read_back_as_written() {
        let r = PathRule {
            subtree: true,
            ..rule("/pay", PathMatch::Separator, Schemes::Both)
        };
        assert_eq!(r.pattern("sites.example"), "*://*.sites.example/pay^");
        let r = rule("/a", PathMatch::Prefix, Schemes::Https);
        assert_eq!(r.pattern("h.example"), "https://h.example/a*");
    }
}
