//! The hit event sent to the district platform (DESIGN §5), built from plain inputs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::blocklist::Blocklist;

use crate::places::Place;

/// A hit as handed over by the DNS path: cheap to build (the snapshot is shared).
pub struct Hit {
    /// Client address, and the place it named over encrypted DNS.
    pub client: crate::places::Asker,
    /// `"dot"` or `"doh"` for a query over DNS over TLS or HTTPS (the report's
    /// `via`, and `[report] encrypted_client_ip` for its address).
    pub via: Option<&'static str>,
    /// Query name, lower-case.
    pub name: String,
    /// Query type.
    pub qtype: u16,
    /// The snapshot that decided.
    pub list: Arc<Blocklist>,
    /// The deciding entry.
    pub hit: crate::blocklist::Hit,
    /// The rule's name.
    pub rule: String,
    /// The answer given.
    pub action: &'static str,
    /// When.
    pub time: SystemTime,
}

/// A page blocked by a path rule, as the URL proxy hands it over.
pub struct PathHit {
    /// Client address.
    pub client: IpAddr,
    /// The host, lower-case.
    pub host: String,
    /// The rule, as a URL pattern (`http://sites.example/shop-1/pay`).
    pub rule: String,
    /// Its list.
    pub list: String,
    /// Its category.
    pub category: String,
    /// Its note.
    pub note: Option<String>,
    /// sinkhole (the warning page) or shadow (relayed).
    pub action: &'static str,
    /// When.
    pub time: SystemTime,
}

/// What the pipeline takes.
pub enum Input {
    /// A blocked query.
    Hit(Box<Hit>),
    /// A page blocked by a path rule.
    PathHit(Box<PathHit>),
    /// An appeal from the warning page.
    Appeal(Appeal, SystemTime),
}

/// An appeal, as logged now and reported to the platform later.
#[derive(Debug, Clone)]
pub struct Appeal {
    /// Client address.
    pub client: IpAddr,
    /// The blocked host the resident appealed for.
    pub host: String,
    /// Category it was blocked for.
    pub category: String,
    /// The resident's text (at most 500 characters).
    pub reason: String,
}

/// A query type's name for events and logs ("A", "AAAA", "TYPE65534").
pub fn qtype_name(t: u16) -> String {
    hickory_proto::rr::RecordType::from(t).to_string()
}

/// Client part of an event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientInfo {
    /// Address, truncated or hashed per config.
    pub ip: String,
    /// District / street / community of its subnet.
    pub place: PlaceOut,
}

/// Place as serialised.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlaceOut {
    /// 区
    pub district: String,
    /// 街道
    pub street: String,
    /// 社区
    pub community: String,
}

impl From<&Place> for PlaceOut {
    fn from(p: &Place) -> Self {
        PlaceOut {
            district: p.district.clone(),
            street: p.street.clone(),
            community: p.community.clone(),
        }
    }
}

/// Query part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueryInfo {
    /// Query name, lower-case, no trailing dot.
    pub name: String,
    /// Query type mnemonic.
    #[serde(rename = "type")]
    pub qtype: String,
}

/// Matched rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MatchInfo {
    /// The listed name that matched.
    pub rule: String,
    /// The list file.
    pub list: String,
    /// Its category.
    pub category: String,
    /// The rule's note in the list (case id …), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

/// Appeal part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppealInfo {
    /// The blocked host appealed for.
    pub host: String,
    /// The resident's text.
    pub reason: String,
}

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// ULID, unique per event; the platform de-duplicates retries by it.
    pub id: String,
    /// `hit` or `appeal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 UTC with milliseconds (first occurrence).
    pub time: String,
    /// Appliance id.
    pub appliance: String,
    /// Client.
    pub client: ClientInfo,
    /// The query (hits).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub query: Option<QueryInfo>,
    /// The rule (hits; appeals when the host is still blocked).
    #[serde(rename = "match", skip_serializing_if = "Option::is_none", default)]
    pub matched: Option<MatchInfo>,
    /// What the resident got: sinkhole, nxdomain, refused (hits), shadow (a hit of a
    /// list or category on trial: the name resolved as usual) or appeal.
    pub action: String,
    /// Occurrences folded into this event (same client and rule within the window).
    pub count: u32,
    /// The appeal (appeals).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub appeal: Option<AppealInfo>,
    /// `dot` or `doh`: the query came over DNS over TLS or HTTPS (its place may be
    /// the one its private DNS name named, whatever the address).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub via: Option<String>,
}

/// RFC 3339 with milliseconds.
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::new_id;

    #[test]
    fn serialises_as_the_design_says() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_852_800_123);
        let e = Event {
            id: new_id(t),
            kind: "hit".into(),
            time: rfc3339_millis(t),
            appliance: "binjiang-01".into(),
            client: ClientInfo {
                ip: "10.1.2.3".into(),
                place: PlaceOut {
                    district: "滨江区".into(),
                    street: "西兴街道".into(),
                    community: "缤纷社区".into(),
                },
            },
            query: Some(QueryInfo {
                name: "a.evil.top".into(),
                qtype: "A".into(),
            }),
            matched: Some(MatchInfo {
                rule: "evil.top".into(),
                list: "fraud-loan.txt".into(),
                category: "loan".into(),
                note: None,
            }),
            action: "sinkhole".into(),
            count: 1,
            appeal: None,
            via: None,
        };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "hit");
        assert_eq!(v["time"], "2026-11-28T08:00:00.123Z");
        assert_eq!(v["client"]["place"]["street"], "西兴街道");
        assert_eq!(v["query"]["type"], "A");
        assert_eq!(v["match"]["rule"], "evil.top");
        assert_eq!(v["id"].as_str().unwrap().len(), 26);
        assert!(v.get("appeal").is_none());
        assert!(v.get("via").is_none(), "plain DNS has no via");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let dot = Event {
            via: Some("dot".into()),
            ..e
        };
        let v = serde_json::to_value(&dot).unwrap();
        assert_eq!(v["via"], "dot");
    }
}
