//! The appliances' protocol, checked without a socket or a database: the signature,
//! the gzip body within its cap, and each event's fields (docs/platform-api.md).

use std::io::Read;

use fanzha::report::event::Event;
use hmac::{KeyInit, Mac};

/// Why a batch is refused, with its HTTP status.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    /// 401: no such appliance, or a signature that does not match.
    #[error("{0}")]
    Unauthorized(String),
    /// 413: the body, or what it unpacks to, is over the cap.
    #[error("{0}")]
    TooLarge(String),
    /// 400: not gzip, not JSON, or an event with a bad field (named).
    #[error("{0}")]
    Malformed(String),
}

impl Refused {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refused::Unauthorized(_) => 401,
            Refused::TooLarge(_) => 413,
            Refused::Malformed(_) => 400,
        }
    }
}

/// One event as stored: the event's fields, flattened and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The event's id (ULID).
    pub id: String,
    /// `hit` or `appeal`.
    pub kind: Kind,
    /// When it happened, Unix ms.
    pub time_ms: i64,
    /// The client as sent: an address, a network, or a keyed hash.
    pub device: String,
    /// 区, 街道, 社区.
    pub place: [String; 3],
    /// The query name (hits) or the appealed host (appeals).
    pub name: String,
    /// Query type (hits).
    pub qtype: Option<String>,
    /// Matched rule, its list, category and note.
    pub rule: Option<String>,
    /// The list file.
    pub list: Option<String>,
    /// Its category.
    pub category: Option<String>,
    /// The rule's note (a case number).
    pub note: Option<String>,
    /// The action given.
    pub action: String,
    /// Occurrences folded in.
    pub count: i64,
    /// The resident's text (appeals).
    pub reason: Option<String>,
}

/// Hit or appeal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A blocked query.
    Hit,
    /// An appeal from the warning page.
    Appeal,
}

/// Check `signature` (`sha256=<hex>`) over the body as sent, in constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: Option<&str>) -> Result<(), Refused> {
    let bad = || {
        Refused::Unauthorized("X-Fanzha-Signature does not match this appliance's secret".into())
    };
    let hex = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .ok_or_else(|| {
            Refused::Unauthorized("X-Fanzha-Signature missing or not sha256=<hex>".into())
        })?;
    let want = hex::decode(hex.trim()).map_err(|_| bad())?;
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| bad())?;
    m.update(body);
    m.verify_slice(&want).map_err(|_| bad())
}

/// Unpack a gzip body (or take a plain one), refusing more than `cap` bytes unpacked.
pub fn unpack(body: &[u8], gzip: bool, cap: usize) -> Result<Vec<u8>, Refused> {
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::with_capacity(body.len() * 8);
    let mut d = flate2::read::GzDecoder::new(body).take(cap as u64 + 1);
    d.read_to_end(&mut out)
        .map_err(|e| Refused::Malformed(format!("the body is not valid gzip: {e}")))?;
    if out.len() > cap {
        return Err(Refused::TooLarge(format!(
            "the batch unpacks to more than {cap} bytes; send smaller batches ([report] batch_events)"
        )));
    }
    Ok(out)
}

/// Parse and check a batch from `appliance`: every event, or a 400 naming the first
/// bad one and its field.
pub fn parse(json: &[u8], appliance: &str) -> Result<Vec<Incoming>, Refused> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(json)
        .map_err(|e| Refused::Malformed(format!("the body is not a JSON array of events: {e}")))?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let e: Event = serde_json::from_value(v)
                .map_err(|e| Refused::Malformed(format!("events[{i}]: {e}")))?;
            check(e, appliance)
                .map_err(|(field, why)| Refused::Malformed(format!("events[{i}].{field}: {why}")))
        })
        .collect()
}

fn short(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max
}

/// One event's fields; the field and what is wrong with it.
fn check(e: Event, appliance: &str) -> Result<Incoming, (&'static str, String)> {
    if !short(&e.id, 64)
        || !e
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(("id", "must be 1 to 64 letters, digits, - or _".into()));
    }
    let kind = match e.kind.as_str() {
        "hit" => Kind::Hit,
        "appeal" => Kind::Appeal,
        other => {
            return Err((
                "type",
                format!("{other:?} is neither \"hit\" nor \"appeal\""),
            ));
        }
    };
    let time = e
        .time
        .parse::<jiff::Timestamp>()
        .map_err(|_| ("time", format!("{:?} is not an RFC 3339 time", e.time)))?;
    if e.appliance != appliance {
        return Err((
            "appliance",
            format!(
                "{:?} differs from X-Fanzha-Appliance {appliance:?}",
                e.appliance
            ),
        ));
    }
    if !short(&e.client.ip, 200) {
        return Err(("client.ip", "must be 1 to 200 characters".into()));
    }
    let device = device(&e)?;
    let p = &e.client.place;
    for (field, v) in [
        ("client.place.district", &p.district),
        ("client.place.street", &p.street),
        ("client.place.community", &p.community),
    ] {
        if v.len() > 200 {
            return Err((field, "longer than 200 bytes".into()));
        }
    }
    if e.count < 1 {
        return Err(("count", "must be at least 1".into()));
    }
    let m = e.matched.as_ref();
    let (name, qtype, reason) = match kind {
        Kind::Hit => {
            let q = e
                .query
                .as_ref()
                .ok_or(("query", "a hit needs its query".to_string()))?;
            if m.is_none() {
                return Err(("match", "a hit needs the rule it matched".into()));
            }
            (q.name.clone(), Some(q.qtype.clone()), None)
        }
        Kind::Appeal => {
            let a = e.appeal.as_ref().ok_or((
                "appeal",
                "an appeal needs appeal.host and appeal.reason".to_string(),
            ))?;
            (
                a.host.clone(),
                None,
                Some(a.reason.chars().take(2000).collect()),
            )
        }
    };
    if !short(&name, 255) {
        return Err((
            if kind == Kind::Hit {
                "query.name"
            } else {
                "appeal.host"
            },
            "must be a name of 1 to 255 bytes".into(),
        ));
    }
    Ok(Incoming {
        id: e.id,
        kind,
        time_ms: time.as_millisecond(),
        device,
        place: [p.district.clone(), p.street.clone(), p.community.clone()],
        name: name.to_ascii_lowercase(),
        qtype,
        rule: m.map(|m| m.rule.clone()),
        list: m.map(|m| m.list.clone()),
        category: m.map(|m| m.category.clone()),
        note: m.and_then(|m| m.note.clone()),
        action: e.action,
        count: i64::from(e.count),
        reason,
    })
}

/// The device a case is kept for. A query over DNS over TLS or HTTPS came from
/// wherever the phone was (4G, a café): its address is no device of the community's
/// networks, so its cases say so ("dot:" or "doh:" before it) and never merge with a
/// local device's.
fn device(e: &Event) -> Result<String, (&'static str, String)> {
    match e.via.as_deref() {
        Some(v @ ("dot" | "doh")) => Ok(format!("{v}:{}", e.client.ip)),
        Some(other) => Err(("via", format!("{other:?} is neither \"dot\" nor \"doh\""))),
        None => Ok(e.client.ip.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> serde_json::Value {
        serde_json::json!({"id": id, "type": "hit", "time": "2026-11-28T08:00:00.123Z",
            "appliance": "a1",
            "client": {"ip": "10.1.2.0/24", "place": {"district": "滨江区", "street": "西兴街道", "community": "缤纷社区"}},
            "query": {"name": "A.evil.top", "type": "A"},
            "match": {"rule": "evil.top", "list": "loan.txt", "category": "loan", "note": "case 17"},
            "action": "sinkhole", "count": 3})
    }

    #[test]
    fn a_good_batch_parses() {
        let body = serde_json::to_vec(&vec![event("01A"), event("01B")]).unwrap();
        let got = parse(&body, "a1").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].time_ms, 1_795_852_800_123);
        assert_eq!(got[0].name, "a.evil.top");
        assert_eq!(got[0].note.as_deref(), Some("case 17"));
        assert_eq!(got[1].count, 3);
    }

    #[test]
    fn encrypted_dns_devices_are_told_apart_from_local_ones() {
        let mut e = event("01KB5W9Q1T4W6JX0Y3S0B8ZC7N");
        e["via"] = "dot".into();
        let body = serde_json::to_vec(&vec![e.clone()]).unwrap();
        let got = parse(&body, "a1").unwrap();
        assert_eq!(got[0].device, "dot:10.1.2.0/24");
        e["via"] = "carrier-pigeon".into();
        let body = serde_json::to_vec(&vec![e]).unwrap();
        let err = parse(&body, "a1").unwrap_err().to_string();
        assert!(err.contains("events[0].via"), "{err}");
    }

    #[test]
    fn a_bad_event_is_named_with_its_field() {
        let mut e = event("01B");
        e["time"] = "yesterday".into();
        let body = serde_json::to_vec(&vec![event("01A"), e]).unwrap();
        let err = parse(&body, "a1").unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().starts_with("events[1].time:"), "{err}");
        let mut e = event("01C");
        e.as_object_mut().unwrap().remove("client");
        let err = parse(&serde_json::to_vec(&vec![e]).unwrap(), "a1").unwrap_err();
        assert!(
            err.to_string().contains("events[0]") && err.to_string().contains("client"),
            "{err}"
        );
        let err = parse(&serde_json::to_vec(&vec![event("01D")]).unwrap(), "other").unwrap_err();
        assert!(err.to_string().starts_with("events[0].appliance"), "{err}");
        assert!(parse(b"{}", "a1").is_err());
    }

    #[test]
    fn signatures_are_checked() {
        let body = b"payload";
        let sig = fanzha::outbox::signature(b"secret", body);
        assert!(verify(b"secret", body, Some(&sig)).is_ok());
        assert_eq!(
            verify(b"other", body, Some(&sig)).unwrap_err().status(),
            401
        );
        assert_eq!(
            verify(b"secret", b"payloaD", Some(&sig))
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(verify(b"secret", body, None).unwrap_err().status(), 401);
        assert_eq!(
            verify(b"secret", body, Some("sha256=zz"))
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn unpacking_is_capped() {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&vec![b' '; 100_000]).unwrap();
        let gz = z.finish().unwrap();
        assert_eq!(unpack(&gz, true, 200_000).unwrap().len(), 100_000);
        assert_eq!(unpack(&gz, true, 50_000).unwrap_err().status(), 413);
        assert_eq!(unpack(b"not gzip", true, 50_000).unwrap_err().status(), 400);
    }
}
