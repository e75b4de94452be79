//! What fanzha answers itself: the locally served zones it knows (`[resolver]
//! local_zones`, `nodefault`) and the operator's `[[local_records]]`, encoded here
//! once so that the DNS path only copies them.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::BinEncodable;

/// The zones served locally unless turned off, lowercase, without the final dot.
pub const DEFAULT_LOCAL_ZONES: &[&str] = &[
    // RFC 6303 §4.1: IPv4 (RFC 1918, "this network", loopback, link local, the
    // documentation networks, the broadcast address).
    "10.in-addr.arpa",
    "16.172.in-addr.arpa",
    "17.172.in-addr.arpa",
    "18.172.in-addr.arpa",
    "19.172.in-addr.arpa",
    "20.172.in-addr.arpa",
    "21.172.in-addr.arpa",
    "22.172.in-addr.arpa",
    "23.172.in-addr.arpa",
    "24.172.in-addr.arpa",
    "25.172.in-addr.arpa",
    "26.172.in-addr.arpa",
    "27.172.in-addr.arpa",
    "28.172.in-addr.arpa",
    "29.172.in-addr.arpa",
    "30.172.in-addr.arpa",
    "31.172.in-addr.arpa",
    "168.192.in-addr.arpa",
    "0.in-addr.arpa",
    "127.in-addr.arpa",
    "254.169.in-addr.arpa",
    "2.0.192.in-addr.arpa",
    "100.51.198.in-addr.arpa",
    "113.0.203.in-addr.arpa",
    "255.255.255.255.in-addr.arpa",
    // RFC 6598 shared address space (100.64.0.0/10), as Unbound serves it.
    "64.100.in-addr.arpa",
    "65.100.in-addr.arpa",
    "66.100.in-addr.arpa",
    "67.100.in-addr.arpa",
    "68.100.in-addr.arpa",
    "69.100.in-addr.arpa",
    "70.100.in-addr.arpa",
    "71.100.in-addr.arpa",
    "72.100.in-addr.arpa",
    "73.100.in-addr.arpa",
    "74.100.in-addr.arpa",
    "75.100.in-addr.arpa",
    "76.100.in-addr.arpa",
    "77.100.in-addr.arpa",
    "78.100.in-addr.arpa",
    "79.100.in-addr.arpa",
    "80.100.in-addr.arpa",
    "81.100.in-addr.arpa",
    "82.100.in-addr.arpa",
    "83.100.in-addr.arpa",
    "84.100.in-addr.arpa",
    "85.100.in-addr.arpa",
    "86.100.in-addr.arpa",
    "87.100.in-addr.arpa",
    "88.100.in-addr.arpa",
    "89.100.in-addr.arpa",
    "90.100.in-addr.arpa",
    "91.100.in-addr.arpa",
    "92.100.in-addr.arpa",
    "93.100.in-addr.arpa",
    "94.100.in-addr.arpa",
    "95.100.in-addr.arpa",
    "96.100.in-addr.arpa",
    "97.100.in-addr.arpa",
    "98.100.in-addr.arpa",
    "99.100.in-addr.arpa",
    "100.100.in-addr.arpa",
    "101.100.in-addr.arpa",
    "102.100.in-addr.arpa",
    "103.100.in-addr.arpa",
    "104.100.in-addr.arpa",
    "105.100.in-addr.arpa",
    "106.100.in-addr.arpa",
    "107.100.in-addr.arpa",
    "108.100.in-addr.arpa",
    "109.100.in-addr.arpa",
    "110.100.in-addr.arpa",
    "111.100.in-addr.arpa",
    "112.100.in-addr.arpa",
    "113.100.in-addr.arpa",
    "114.100.in-addr.arpa",
    "115.100.in-addr.arpa",
    "116.100.in-addr.arpa",
    "117.100.in-addr.arpa",
    "118.100.in-addr.arpa",
    "119.100.in-addr.arpa",
    "120.100.in-addr.arpa",
    "121.100.in-addr.arpa",
    "122.100.in-addr.arpa",
    "123.100.in-addr.arpa",
    "124.100.in-addr.arpa",
    "125.100.in-addr.arpa",
    "126.100.in-addr.arpa",
    "127.100.in-addr.arpa",
    // RFC 6303 §4.2: IPv6 (unspecified, loopback, ULA, link local, documentation).
    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
    "d.f.ip6.arpa",
    "8.e.f.ip6.arpa",
    "9.e.f.ip6.arpa",
    "a.e.f.ip6.arpa",
    "b.e.f.ip6.arpa",
    "8.b.d.0.1.0.0.2.ip6.arpa",
    // RFC 8375 (home networks), RFC 6761 and RFC 7686 special-use names.
    "home.arpa",
    "localhost",
    "invalid",
    "onion",
];

/// `[[local_records]]` as written: name, type, data and TTL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecordSpec {
    /// Owner name, e.g. `warn.fanzha.lan`.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `TXT` or `PTR`.
    #[serde(rename = "type")]
    pub rtype: String,
    /// The data: an address, a name or a text.
    pub data: String,
    /// TTL in seconds (Unbound's local-data default: 3600).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

fn default_ttl() -> u32 {
    3600
}

/// Why a local record cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The owner name is not a DNS name.
    #[error("{0:?} is not a DNS name")]
    Name(String),
    /// A type fanzha does not serve locally.
    #[error("type {0:?} is not served locally; use A, AAAA, CNAME, TXT or PTR")]
    Type(String),
    /// Data that does not fit the type.
    #[error("{data:?} is not {what}")]
    Data {
        /// The data as written.
        data: String,
        /// What it should be.
        what: &'static str,
    },
    /// A CNAME next to other records of the same name (RFC 1034 §3.6.2).
    #[error("{0} has a CNAME and other records; a CNAME must be alone")]
    CnameAndOther(String),
}

/// A local record, checked and encoded: owner name, type, TTL and RDATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRecord {
    /// Owner name.
    pub name: Name,
    /// Type code (A, AAAA, CNAME, TXT or PTR).
    pub rtype: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// RDATA, names in it uncompressed.
    pub rdata: Vec<u8>,
}

const A: u16 = 1;
const CNAME: u16 = 5;
const PTR: u16 = 12;
const TXT: u16 = 16;
const AAAA: u16 = 28;

/// Check and encode the configured records; the first that cannot be served is an
/// error, with its index.
pub(super) fn local_records(
    specs: &[RawRecordSpec],
) -> Result<Vec<LocalRecord>, (usize, RecordError)> {
    let mut out: Vec<LocalRecord> = Vec::new();
    for (i, r) in specs.iter().enumerate() {
        let name = Name::from_ascii(format!("{}.", r.name.trim().trim_end_matches('.')))
            .ok()
            .filter(|n| !n.is_root())
            .map(|n| n.to_lowercase())
            .ok_or_else(|| (i, RecordError::Name(r.name.clone())))?;
        let (rtype, rdata) = encode(r).map_err(|e| (i, e))?;
        let same: Vec<u16> = out
            .iter()
            .filter(|o| o.name == name)
            .map(|o| o.rtype)
            .collect();
        if !same.is_empty() && (rtype == CNAME || same.contains(&CNAME)) {
            return Err((i, RecordError::CnameAndOther(r.name.clone())));
        }
        out.push(LocalRecord {
            name,
            rtype,
            ttl: r.ttl,
            rdata,
        });
    }
    Ok(out)
}

/// The type and RDATA of a configured record.
fn encode(r: &RawRecordSpec) -> Result<(u16, Vec<u8>), RecordError> {
    let bad = |what| RecordError::Data {
        data: r.data.clone(),
        what,
    };
    let name_data = |what| -> Result<Vec<u8>, RecordError> {
        Name::from_ascii(r.data.trim())
            .ok()
            .and_then(|n| n.to_lowercase().to_bytes().ok())
            .ok_or_else(|| bad(what))
    };
    let (t, rdata) = match r.rtype.to_ascii_uppercase().as_str() {
        "A" => (
            A,
            r.data
                .trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| bad("an IPv4 address"))?
                .octets()
                .to_vec(),
        ),
        "AAAA" => (
            AAAA,
            r.data
                .trim()
                .parse::<Ipv6Addr>()
                .map_err(|_| bad("an IPv6 address"))?
                .octets()
                .to_vec(),
        ),
        "CNAME" => (CNAME, name_data("a DNS name")?),
        "PTR" => (PTR, name_data("a DNS name")?),
        "TXT" => {
            // Strings of at most 255 bytes each; a longer text is cut into several.
            let mut rdata = Vec::new();
            for chunk in r.data.as_bytes().chunks(255) {
                rdata.push(chunk.len() as u8);
                rdata.extend_from_slice(chunk);
            }
            if rdata.is_empty() || rdata.len() > 4000 {
                return Err(bad("a text of 1 to 3,900 bytes"));
            }
            (TXT, rdata)
        }
        _ => return Err(RecordError::Type(r.rtype.clone())),
    };
    Ok((t, rdata))
}
