//! DNSSEC trust anchors from `[resolver] trust_anchor`: a file of DNSKEY records (as
//! hickory reads them) or of DS records, the form most tools distribute (IANA's
//! root-anchors, `unbound-anchor`'s output, a zone's DS at its registrar). DS anchors
//! are turned into keys once the zone's DNSKEY set is fetched: the keys a DS matches
//! are trusted. Pure: the fetch is the caller's.

use std::path::Path;
use std::str::FromStr;

use hickory_proto::dnssec::TrustAnchors;
use hickory_proto::dnssec::rdata::{DNSSECRData, DS};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// What a trust-anchor file gives.
pub enum Anchors {
    /// Keys, ready for the validator.
    Keys(TrustAnchors),
    /// Digests of keys, by zone: keys must be fetched and matched first.
    Ds(Vec<(Name, DS)>),
}

/// Read a trust-anchor file: DS records when any line holds one, else DNSKEY
/// records. Lines are `owner [ttl] [class] TYPE rdata`; `;` starts a comment.
pub fn read(path: &Path) -> Result<Anchors, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse(&text)
}

/// [`read`] on text.
pub fn parse(text: &str) -> Result<Anchors, String> {
    let mut ds = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.split(';').next().unwrap_or("").trim();
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = tokens.iter().position(|t| t.eq_ignore_ascii_case("DS")) else {
            continue;
        };
        let owner = Name::from_str(tokens[0])
            .map_err(|e| format!("line {}: owner {:?}: {e}", no + 1, tokens[0]))?;
        let rdata = tokens[at + 1..].join(" ");
        match RData::try_from_str(RecordType::DS, &rdata) {
            Ok(RData::DNSSEC(DNSSECRData::DS(d))) => ds.push((owner.to_lowercase(), d)),
            Ok(_) | Err(_) => {
                return Err(format!(
                    "line {}: a DS record needs \"KEYTAG ALGORITHM DIGESTTYPE HEXDIGEST\"",
                    no + 1
                ));
            }
        }
    }
    if !ds.is_empty() {
        return Ok(Anchors::Ds(ds));
    }
    TrustAnchors::from_str(text)
        .map(Anchors::Keys)
        .map_err(|e| format!("neither DS nor DNSKEY records: {e}"))
}

/// Trust the keys in `dnskeys` (the DNSKEY set of `zone`) that a DS of `ds` for
/// that zone matches; how many were added.
pub fn add_matching(
    anchors: &mut TrustAnchors,
    ds: &[(Name, DS)],
    zone: &Name,
    dnskeys: &[Record],
) -> usize {
    let mut added = 0;
    for r in dnskeys.iter().filter(|r| r.name == *zone) {
        let RData::DNSSEC(DNSSECRData::DNSKEY(key)) = &r.data else {
            continue;
        };
        if ds
            .iter()
            .any(|(owner, d)| owner == zone && d.covers(zone, key).unwrap_or(false))
        {
            let public = key.public_key();
            if zone.is_root() {
                anchors.insert(public);
            } else {
                anchors.insert_with_name(public, zone.into());
            }
            added += 1;
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_lines_are_read_with_or_without_ttl_and_class() {
        let text = "; the root KSK-2017\n\
                    . 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n\
                    example. DS 12345 15 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n";
        let Ok(Anchors::Ds(ds)) = parse(text) else {
            panic!("DS expected")
        };
        assert_eq!(ds.len(), 2);
        assert!(ds[0].0.is_root());
        assert_eq!(ds[0].1.key_tag(), 20326);
        assert_eq!(ds[1].0, Name::from_str("example.").unwrap());
    }

    #[test]
    fn a_bad_ds_line_names_its_line() {
        let Err(e) = parse(". IN DS 20326 8\n") else {
            panic!("refused expected")
        };
        assert!(e.starts_with("line 1:"), "{e}");
    }

    #[test]
    fn dnskey_files_still_work() {
        let text = ". 172800 IN DNSKEY 257 3 8 AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=\n";
        assert!(matches!(parse(text), Ok(Anchors::Keys(k)) if k.len() == 1));
    }
}
