//! DNSSEC trust anchors from `[resolver] trust_anchor`: a file of DNSKEY records (as
//! hickory reads them) or of DS records, the form most tools distribute (IANA's
//! root-anchors, `unbound-anchor`'s output, a zone's DS at its registrar). DS anchors
//! are turned into keys once the zone's DNSKEY set is fetched: the keys a DS matches
//! are trusted. Pure: the fetch is the caller's.

use std::path::Path;
use std::str::FromStr;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS};
use hickory_proto::dnssec::{Algorithm, PublicKey, PublicKeyBuf, TrustAnchors};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// What a trust-anchor file gives.
pub enum Anchors {
    /// Keys, ready for the validator.
    Keys(TrustAnchors),
    /// Digests of keys, by zone: keys must be fetched and matched first.
    Ds(Vec<(Name, DS)>),
}

/// Read a trust-anchor file: DS records when any record is one, else DNSKEY
/// records. The file is in zone-file syntax: `owner [ttl] [class] TYPE rdata`, in
/// either order of TTL and class, a record continued across lines in parentheses,
/// `;` starting a comment, a line starting with blanks taking the last owner.
pub fn read(path: &Path) -> Result<Anchors, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse(&text)
}

/// [`read`] on text.
pub fn parse(text: &str) -> Result<Anchors, String> {
    let mut ds = Vec::new();
    let mut keys = Vec::new();
    for (no, owner, rtype, rdata) in records(text)? {
        let at = |e: &str| format!("line {no}: {e}");
        let owner = Name::from_str(&owner)
            .map_err(|e| at(&format!("owner {owner:?}: {e}")))?
            .to_lowercase();
        if rtype == RecordType::DS {
            match RData::try_from_str(RecordType::DS, &rdata) {
                Ok(RData::DNSSEC(DNSSECRData::DS(d))) => ds.push((owner, d)),
                _ => {
                    return Err(at(
                        "a DS record needs \"KEYTAG ALGORITHM DIGESTTYPE HEXDIGEST\"",
                    ));
                }
            }
        } else {
            let key = dnskey(&rdata)
                .ok_or_else(|| at("a DNSKEY record needs \"FLAGS 3 ALGORITHM BASE64KEY\""))?;
            keys.push((owner, key));
        }
    }
    if !ds.is_empty() {
        return Ok(Anchors::Ds(ds));
    }
    let mut anchors = TrustAnchors::empty();
    let mut trusted = 0;
    for (owner, key) in keys {
        // A revoked key (RFC 5011) or one that is no zone key is no anchor.
        if key.revoke() || !key.zone_key() {
            continue;
        }
        trust(&mut anchors, &owner, &key);
        trusted += 1;
    }
    if trusted == 0 {
        return Err("neither DS nor DNSKEY records (of zone keys that are not revoked)".into());
    }
    Ok(Anchors::Keys(anchors))
}

/// The DS and DNSKEY records of zone-file `text`: (line, owner, type, rdata).
fn records(text: &str) -> Result<Vec<(usize, String, RecordType, String)>, String> {
    let mut out = Vec::new();
    let mut owner = String::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let no = i + 1;
        let mut record = strip_comment(line).to_string();
        // A record in parentheses goes on until they close.
        while record.matches('(').count() > record.matches(')').count() {
            let Some((_, more)) = lines.next() else {
                return Err(format!("line {no}: \"(\" is never closed"));
            };
            record.push(' ');
            record.push_str(strip_comment(more));
        }
        let record = record.replace(['(', ')'], " ");
        if record.trim().is_empty() {
            continue;
        }
        if record.trim_start().starts_with('$') {
            return Err(format!(
                "line {no}: directives such as $ORIGIN or $TTL are not read here; write each record whole"
            ));
        }
        let mut tokens: Vec<&str> = record.split_whitespace().collect();
        if !record.starts_with(char::is_whitespace) {
            owner = tokens.remove(0).to_string();
        } else if owner.is_empty() {
            return Err(format!("line {no}: the first record has no owner"));
        }
        // TTL and class, in either order, before the type.
        let mut rest = tokens.as_slice();
        while let Some((t, after)) = rest.split_first()
            && (t.bytes().all(|b| b.is_ascii_digit())
                || ["IN", "CH", "HS"].iter().any(|c| t.eq_ignore_ascii_case(c)))
        {
            rest = after;
        }
        let Some((t, rdata)) = rest.split_first() else {
            return Err(format!("line {no}: a record without a type"));
        };
        let rtype = match t.to_ascii_uppercase().as_str() {
            "DS" => RecordType::DS,
            "DNSKEY" => RecordType::DNSKEY,
            other => {
                return Err(format!(
                    "line {no}: a {other} record; a trust anchor is a DS or DNSKEY record"
                ));
            }
        };
        out.push((no, owner.clone(), rtype, rdata.join(" ")));
    }
    Ok(out)
}

/// DNSKEY record data in presentation form: flags, protocol 3, algorithm, and the
/// key in base64 (which may hold blanks).
fn dnskey(rdata: &str) -> Option<DNSKEY> {
    use base64::Engine;
    let mut t = rdata.split_whitespace();
    let flags: u16 = t.next()?.parse().ok()?;
    (t.next()? == "3").then_some(())?;
    let algorithm = Algorithm::from_u8(t.next()?.parse().ok()?);
    let b64: String = t.collect();
    let key = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (!key.is_empty()).then_some(())?;
    Some(DNSKEY::with_flags(flags, PublicKeyBuf::new(key, algorithm)))
}

/// `line` without its comment (`;` to the end).
fn strip_comment(line: &str) -> &str {
    line.split(';').next().unwrap_or("")
}

/// Trust `key` for `zone`.
fn trust(anchors: &mut TrustAnchors, zone: &Name, key: &DNSKEY) {
    let public = key.public_key();
    if zone.is_root() {
        anchors.insert(public);
    } else {
        anchors.insert_with_name(public, zone.into());
    }
}

/// Trust the keys in `dnskeys` (the DNSKEY set of `zone`) that a DS of `ds` for
/// that zone matches: key tag, algorithm and digest all (RFC 4035 §5.2), as a
/// validator matches a DS; how many were added.
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
        if key.revoke() {
            continue;
        }
        let Ok(tag) = key.calculate_key_tag() else {
            continue;
        };
        let matches = |(owner, d): &(Name, DS)| {
            owner == zone
                && d.key_tag() == tag
                && d.algorithm() == key.public_key().algorithm()
                && d.covers(zone, key).unwrap_or(false)
        };
        if ds.iter().any(matches) {
            trust(anchors, zone, key);
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

    use hickory_proto::dnssec::crypto::Ed25519SigningKey;
    use hickory_proto::dnssec::{DigestType, SigningKey};

    /// A fresh zone key and its DNSKEY record data.
    fn key() -> DNSKEY {
        let pkcs8 = Ed25519SigningKey::generate_pkcs8().unwrap();
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.secret_pkcs8_der().to_vec());
        let signing = Ed25519SigningKey::from_pkcs8(&der).unwrap();
        DNSKEY::from_key(&signing.to_public_key().unwrap())
    }

    #[test]
    fn zone_file_syntax_is_read_without_class_in_parentheses_and_with_a_comment() {
        let k = key();
        // "257 3 15 BASE64": split the key over two lines inside parentheses.
        let text = k.to_string();
        let (head, b64) = text.rsplit_once(' ').unwrap();
        let (b1, b2) = b64.split_at(b64.len() / 2);
        for file in [
            format!(". DNSKEY {head} {b64}\n"),
            format!(". 3600 DNSKEY {head} {b64}\n"),
            format!(". IN 3600 DNSKEY {head} {b64} ; KSK\n"),
            format!("; anchors\n. DNSKEY {head} (\n  {b1} ; first half\n  {b2} )\n"),
        ] {
            let got = parse(&file);
            assert!(
                matches!(&got, Ok(Anchors::Keys(a)) if a.len() == 1),
                "{file}: {:?}",
                got.as_ref().err()
            );
        }
        // A key for another zone than the root.
        assert!(parse(&format!("example. DNSKEY {head} ( {b64} )\n")).is_ok());
        // DS records the same way.
        let ds = "example. DS ( 12345 15 2\n 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF )\n";
        assert!(matches!(parse(ds), Ok(Anchors::Ds(d)) if d[0].1.key_tag() == 12345));
        // What is not an anchor is named with its line.
        let Err(e) = parse("example. DNSKEY 257 3 15 (\n").map(|_| ()) else {
            panic!("an unclosed parenthesis is refused")
        };
        assert!(e.contains("line 1"), "{e}");
        let Err(e) = parse("\n\nexample. A 192.0.2.1\n").map(|_| ()) else {
            panic!("an A record is refused")
        };
        assert!(e.starts_with("line 3:"), "{e}");
    }

    #[test]
    fn a_revoked_key_is_no_anchor() {
        let k = key();
        let revoked = DNSKEY::with_flags(k.flags() | 0x0080, k.public_key().clone());
        let Err(e) = parse(&format!("example. DNSKEY {revoked}\n")).map(|_| ()) else {
            panic!("a revoked key alone is refused")
        };
        assert!(e.contains("revoked"), "{e}");
    }

    #[test]
    fn a_ds_anchor_matches_a_key_by_tag_algorithm_and_digest() {
        let zone = Name::from_str("example.").unwrap();
        let k = key();
        let good = DS::from_key(k.public_key(), &zone, DigestType::SHA256).unwrap();
        let rec = Record::from_rdata(zone.clone(), 3600, RData::DNSSEC(DNSSECRData::DNSKEY(k)));
        let with = |d: DS| {
            let mut a = TrustAnchors::empty();
            add_matching(
                &mut a,
                &[(zone.clone(), d)],
                &zone,
                std::slice::from_ref(&rec),
            )
        };
        let digest = good.digest().to_vec();
        assert_eq!(with(good.clone()), 1);
        let wrong_tag = good.key_tag().wrapping_add(1);
        assert_eq!(
            with(DS::new(
                wrong_tag,
                good.algorithm(),
                DigestType::SHA256,
                digest.clone()
            )),
            0,
            "a wrong key tag"
        );
        assert_eq!(
            with(DS::new(
                good.key_tag(),
                Algorithm::RSASHA256,
                DigestType::SHA256,
                digest
            )),
            0,
            "a wrong algorithm"
        );
    }
}
