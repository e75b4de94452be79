//! DNS over HTTPS requests (RFC 8484), read without I/O: which path, which method,
//! and the DNS message a GET carries in its `dns` parameter (base64url) or a POST
//! in its body. The HTTP server around it is [`super::https`]; this part is pure,
//! unit-tested and fuzzed.

use base64::Engine as _;

/// The path of DNS over HTTPS; `/dns-query/<id>` names a place.
pub const PATH: &str = "/dns-query";
/// RFC 8484's media type.
pub const MEDIA_TYPE: &str = "application/dns-message";
/// The longest DNS message a request may carry (a TCP frame's limit).
pub const MAX_MESSAGE: usize = 65_535;
/// The shortest: a header.
const MIN_MESSAGE: usize = 12;

/// Why a request is not a DNS query, as the HTTP status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 404: not `/dns-query` or `/dns-query/<id>`.
    NotFound,
    /// 405: neither GET nor POST.
    Method,
    /// 415: a POST whose body is not `application/dns-message`.
    MediaType,
    /// 400: no `dns` parameter, not base64url, or not a DNS message.
    BadRequest,
    /// 413: longer than a DNS message can be.
    TooLarge,
}

impl Refusal {
    /// Its HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Refusal::NotFound => 404,
            Refusal::Method => 405,
            Refusal::MediaType => 415,
            Refusal::BadRequest => 400,
            Refusal::TooLarge => 413,
        }
    }

    /// A line for the response body.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::NotFound => "not found: DNS over HTTPS is at /dns-query\n",
            Refusal::Method => "use GET with ?dns= or POST with application/dns-message\n",
            Refusal::MediaType => "POST a body of type application/dns-message\n",
            Refusal::BadRequest => "not a DNS query: give ?dns= with the message in base64url\n",
            Refusal::TooLarge => "a DNS message is at most 65535 bytes\n",
        }
    }
}

/// What the path names: `Ok(None)` for `/dns-query`, `Ok(Some(id))` for
/// `/dns-query/<id>` (a place's private DNS name; its case is the caller's to
/// fold), else [`Refusal::NotFound`]. A trailing slash is allowed.
pub fn route(path: &str) -> Result<Option<&str>, Refusal> {
    let rest = path.strip_prefix(PATH).ok_or(Refusal::NotFound)?;
    match rest {
        "" | "/" => Ok(None),
        _ => {
            let id = rest.strip_prefix('/').ok_or(Refusal::NotFound)?;
            let id = id.strip_suffix('/').unwrap_or(id);
            let label = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
            if id.is_empty() || id.len() > 63 || !id.bytes().all(label) {
                return Err(Refusal::NotFound);
            }
            Ok(Some(id))
        }
    }
}

/// The DNS message of a GET: the `dns` parameter of `query` (the part of the URI
/// after `?`), base64url with or without padding.
pub fn get_message(query: Option<&str>) -> Result<Vec<u8>, Refusal> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("dns="))
        .ok_or(Refusal::BadRequest)?;
    // Four characters carry three bytes.
    if value.len() > MAX_MESSAGE.div_ceil(3) * 4 {
        return Err(Refusal::TooLarge);
    }
    let value = value.trim_end_matches('=');
    let msg = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| Refusal::BadRequest)?;
    check(msg)
}

/// Whether a POST's `Content-Type` is RFC 8484's (parameters and case aside).
pub fn post_type_ok(content_type: Option<&[u8]>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(MEDIA_TYPE.as_bytes())
}

/// The DNS message of a POST body, as read (at most [`MAX_MESSAGE`] bytes).
pub fn post_message(body: Vec<u8>) -> Result<Vec<u8>, Refusal> {
    if body.len() > MAX_MESSAGE {
        return Err(Refusal::TooLarge);
    }
    check(body)
}

fn check(msg: Vec<u8>) -> Result<Vec<u8>, Refusal> {
    match msg.len() {
        n if n > MAX_MESSAGE => Err(Refusal::TooLarge),
        n if n < MIN_MESSAGE => Err(Refusal::BadRequest),
        _ => Ok(msg),
    }
}

/// How long an answer may be cached by HTTP caches (RFC 8484 §5.1): the smallest
/// TTL of its records, or `None` when it has none (then no Cache-Control is sent)
/// or cannot be read.
pub fn min_ttl(resp: &[u8]) -> Option<u32> {
    let count = |i: usize| Some(u16::from_be_bytes([*resp.get(i)?, *resp.get(i + 1)?]));
    let (qd, rrs) = (count(4)?, [count(6)?, count(8)?, count(10)?]);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(resp, at)? + 4;
    }
    let mut min: Option<u32> = None;
    for _ in 0..rrs.iter().map(|&n| usize::from(n)).sum::<usize>() {
        at = skip_name(resp, at)?;
        let head = resp.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([head[0], head[1]]);
        let ttl = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let len = usize::from(u16::from_be_bytes([head[8], head[9]]));
        // OPT's "TTL" is flags.
        if rtype != 41 {
            min = Some(min.map_or(ttl, |m| m.min(ttl)));
        }
        at += 10 + len;
    }
    (at <= resp.len()).then_some(min).flatten()
}

/// The offset after the name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l & 0xc0 != 0 => return None,
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8484 §4.1.1's example: www.example.com A, ID 0.
    const EXAMPLE: &str = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";

    #[test]
    fn paths_name_a_place_or_none() {
        assert_eq!(route("/dns-query"), Ok(None));
        assert_eq!(route("/dns-query/"), Ok(None));
        assert_eq!(route("/dns-query/binfen"), Ok(Some("binfen")));
        assert_eq!(route("/dns-query/binfen/"), Ok(Some("binfen")));
        for bad in [
            "/",
            "/dns-queryx",
            "/dns-query/a/b",
            "/dns-query/a.b",
            "/dns-query/%2e",
            "/dns-query//",
            "/DNS-QUERY",
        ] {
            assert_eq!(route(bad), Err(Refusal::NotFound), "{bad}");
        }
        assert_eq!(
            route(&format!("/dns-query/{}", "a".repeat(64))),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn a_get_carries_base64url_with_or_without_padding() {
        let m = get_message(Some(&format!("dns={EXAMPLE}"))).unwrap();
        assert_eq!(m.len(), 33);
        assert_eq!(&m[13..16], b"www");
        // Other parameters, and padding some clients add.
        let padded = get_message(Some(&format!("ct=x&dns={EXAMPLE}=="))).unwrap();
        assert_eq!(padded, m);
        assert_eq!(get_message(None), Err(Refusal::BadRequest));
        assert_eq!(get_message(Some("name=x")), Err(Refusal::BadRequest));
        // Standard base64's '+' and '/' are not base64url.
        assert_eq!(get_message(Some("dns=AAAB+/8A")), Err(Refusal::BadRequest));
        assert_eq!(get_message(Some("dns=AAAB")), Err(Refusal::BadRequest));
        let long = "A".repeat(90_000);
        assert_eq!(
            get_message(Some(&format!("dns={long}"))),
            Err(Refusal::TooLarge)
        );
    }

    #[test]
    fn a_post_needs_the_media_type_and_a_message() {
        assert!(post_type_ok(Some(b"application/dns-message")));
        assert!(post_type_ok(Some(b"Application/DNS-Message; charset=x")));
        assert!(!post_type_ok(Some(b"application/json")));
        assert!(!post_type_ok(None));
        assert_eq!(post_message(vec![0; 11]), Err(Refusal::BadRequest));
        assert_eq!(post_message(vec![0; 12]).map(|m| m.len()), Ok(12));
        assert_eq!(post_message(vec![0; 65_536]), Err(Refusal::TooLarge));
    }

    #[test]
    fn the_cache_lifetime_is_the_smallest_ttl_opt_aside() {
        use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
        use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
        let name = Name::from_ascii("www.example.com.").unwrap();
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(
            name.clone(),
            300,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        m.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 2))));
        m.set_edns(Edns::new());
        let wire = m.to_vec().unwrap();
        assert_eq!(min_ttl(&wire), Some(60));
        let mut empty = Message::new(0, MessageType::Response, OpCode::Query);
        empty.add_query(Query::query(Name::root(), RecordType::NS));
        assert_eq!(min_ttl(&empty.to_vec().unwrap()), None);
        assert_eq!(min_ttl(&wire[..wire.len() - 3]), None);
        assert_eq!(min_ttl(&[0; 5]), None);
    }
}
