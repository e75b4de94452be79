//! DNSSEC validation against a signed local hierarchy (Ed25519 keys made by the test,
//! the root key given to fanzha as its trust anchor).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use hickory_proto::op::{Edns, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

#[test]
fn secure_answers_carry_ad_and_bogus_ones_fail() {
    let keys = keys();
    let h = Hierarchy::start_signed(keys.clone());
    let (_d, f) = validating(&h, &(keys.root.anchor_line() + "\n"));
    let ask = |n: &str, cd: bool| ask_do(&f, n, RecordType::A, cd);
    let m = ask("www.example.test.", false);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{m:?}\n{}",
        f.log_text()
    );
    assert!(m.answers.iter().any(|r| matches!(r.data, RData::A(a) if IpAddr::V4(a.0) == IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))));
    assert!(m.metadata.authentic_data, "secure answer without AD: {m:?}");
    // the DS for bogus.test. does not match its key: SERVFAIL, with EDE 6 (DNSSEC
    // Bogus, RFC 8914) saying why
    let m = ask("www.bogus.test.", false);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    let ede = m.edns.as_ref().map(|e| format!("{:?}", e.options()));
    assert!(
        ede.unwrap_or_default().contains("Unknown(15, [0, 6,"),
        "{m:?}"
    );
    // with CD=1 the client takes the data unvalidated
    let m = ask("www.bogus.test.", true);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(!m.metadata.authentic_data);
    // ... and that unvalidated answer is never served from the cache to a CD=0 client
    let m = ask("www.bogus.test.", false);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    // secure answers from the cache keep AD
    let m = ask("www.example.test.", false);
    assert!(m.metadata.authentic_data);
    // blocking still comes first
    let m = ask("blocked.example.test.", false);
    assert!(m.metadata.authoritative);
}

fn keys() -> Arc<Keys> {
    Arc::new(Keys {
        root: ZoneKey::new(),
        test: ZoneKey::new(),
        example: ZoneKey::new(),
        bogus: ZoneKey::new(),
        bogus_ds: ZoneKey::new(),
    })
}

/// A validating fanzha on a signed hierarchy, with `anchor` as its trust-anchor file.
fn validating(h: &Hierarchy, anchor: &str) -> (tempfile::TempDir, Fanzha) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.key"), anchor).unwrap();
    let resolver = h.resolver_toml().replace(
        "[resolver]\n",
        "[resolver]\ndnssec = true\ntrust_anchor = \"root.key\"\n",
    );
    let toml = format!("{}{}", lists_toml(dir.path()), resolver);
    let f = Fanzha::start(dir.path(), &toml);
    (dir, f)
}

/// A query with DO set (and CD as given), over UDP.
fn ask_do(f: &Fanzha, n: &str, t: RecordType, cd: bool) -> hickory_proto::op::Message {
    let mut q = make_query(n, t, false);
    q.metadata.checking_disabled = cd;
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(true);
    q.set_edns(e);
    ask(f.dns, &q)
}

#[test]
fn denials_and_insecure_zones_are_answered_not_failed() {
    let keys = keys();
    let h = Hierarchy::start_signed(keys.clone());
    let (_d, f) = validating(&h, &(keys.root.anchor_line() + "\n"));
    let ask = |n: &str, t: RecordType| ask_do(&f, n, t, false);
    // A name that does not exist in a signed zone: NXDOMAIN, proven.
    let m = ask("nothere.example.test.", RecordType::A);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "{m:?}\n{}",
        f.log_text()
    );
    // A type the name lacks: NODATA.
    let m = ask("www.example.test.", RecordType::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(m.answers.iter().all(|r| r.record_type() != RecordType::A));
    // An unsigned zone below a signed parent (no DS): answered, without AD.
    let m = ask("www.half.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(!m.metadata.authentic_data, "{m:?}");
    // A CNAME chain inside the signed zone is answered whole, and secure.
    let m = ask("alias.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(
        m.answers
            .iter()
            .any(|r| r.record_type() == RecordType::CNAME),
        "{m:?}"
    );
    assert!(
        m.answers.iter().any(|r| r.record_type() == RecordType::A),
        "{m:?}"
    );
}

#[test]
fn a_trust_anchor_given_as_ds_records_validates_like_a_key() {
    let keys = keys();
    let h = Hierarchy::start_signed(keys.clone());
    let (_d, f) = validating(
        &h,
        &format!("; the lab's root\n. 3600 IN DS {}\n", keys.root.ds(".")),
    );
    let m = ask_do(&f, "www.example.test.", RecordType::A, false);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{m:?}\n{}",
        f.log_text()
    );
    assert!(m.metadata.authentic_data, "{m:?}");
    let m = ask_do(&f, "www.bogus.test.", RecordType::A, false);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    // A DS that matches no key of the root: nothing validates.
    let other = keys.test.ds(".");
    let (_d2, g) = validating(&h, &format!(". IN DS {other}\n"));
    let m = ask_do(&g, "www.example.test.", RecordType::A, false);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
}

#[test]
fn answers_made_from_a_signed_wildcard_keep_their_proof_and_validate() {
    let keys = keys();
    let h = Hierarchy::start_signed(keys.clone());
    let (_d, f) = validating(&h, &(keys.root.anchor_line() + "\n"));
    let wild = Ipv4Addr::new(192, 0, 2, 42);
    let has_wild = |m: &hickory_proto::op::Message| {
        m.answers
            .iter()
            .any(|r| matches!(r.data, RData::A(a) if a.0 == wild))
    };
    // The wildcard's address, secure (AD), in an answer to `name`.
    let secure_wild = |name: &str, round: u8| {
        let m = ask_do(&f, name, RecordType::A, false);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name}, round {round}: {m:?}\n{}",
            f.log_text()
        );
        assert!(has_wild(&m), "{name}, round {round}: {m:?}");
        assert!(m.metadata.authentic_data, "{name}, round {round}: {m:?}");
        m
    };
    // Twice: the second answer comes from the cache, and must keep its proof too.
    for round in 0..2 {
        // A name the wildcard covers: the signature is the wildcard's (fewer labels
        // than the name), so only the NSEC proving that no closer name exists makes
        // the answer secure. Without it the validator calls it bogus. The proof
        // travels with the answer, in the authority section.
        let m = secure_wild("foo.wild.example.test.", round);
        assert!(
            m.authorities
                .iter()
                .any(|r| r.record_type() == RecordType::NSEC),
            "round {round}: {m:?}"
        );
        // An alias, from another zone, to a name the wildcard covers: the proof of the
        // expanded record at the end of the chain is carried to the client's answer.
        secure_wild("to-wild.test.", round);
    }
    // A client that did not set DO gets the answer without the proof.
    let mut q = make_query("bar.wild.example.test.", RecordType::A, false);
    q.set_edns(Edns::new());
    let m = udp_from(
        "127.0.0.1".parse().unwrap(),
        f.dns,
        &q,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(has_wild(&m), "{m:?}");
    assert!(
        m.all_sections().all(|r| !matches!(
            r.record_type(),
            RecordType::NSEC | RecordType::NSEC3 | RecordType::RRSIG
        )),
        "{m:?}"
    );
}

#[test]
fn names_learnt_while_minimising_validate_when_asked_for_themselves() {
    // A deep question walks down one label at a time: `v4only` and `host.ent` (A
    // records) and `ent` (an empty non-terminal) are learnt on the way. Asked for
    // themselves afterwards, they must be answered as a fresh resolver answers
    // them (the A records with AD), not fail as unsigned.
    let keys = keys();
    let h = Hierarchy::start_signed(keys.clone());
    let anchor = keys.root.anchor_line() + "\n";
    let (_d, f) = validating(&h, &anchor);
    for deep in [
        "_25._tcp.v4only.example.test.",
        "x.y.host.ent.example.test.",
    ] {
        let m = ask_do(&f, deep, RecordType::TXT, false);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{deep}: {m:?}"
        );
    }
    let (_d2, fresh) = validating(&h, &anchor);
    let seen = |m: &hickory_proto::op::Message| {
        (
            m.metadata.response_code,
            m.metadata.authentic_data,
            m.answers.len(),
        )
    };
    for n in [
        "v4only.example.test.",
        "host.ent.example.test.",
        "ent.example.test.",
    ] {
        let want = seen(&ask_do(&fresh, n, RecordType::A, false));
        let got = ask_do(&f, n, RecordType::A, false);
        assert_eq!(seen(&got), want, "{n}: {got:?}\n{}", f.log_text());
    }
    for n in ["v4only.example.test.", "host.ent.example.test."] {
        assert!(
            ask_do(&f, n, RecordType::A, false).metadata.authentic_data,
            "{n}"
        );
    }
}

#[test]
fn do_clients_get_the_proofs_of_a_denial_and_others_only_the_soa() {
    let keys = keys();
    let h = Hierarchy::start_signed(keys.clone());
    let (_d, f) = validating(&h, &(keys.root.anchor_line() + "\n"));
    for (n, t, rcode) in [
        (
            "nothere.example.test.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        ("www.example.test.", RecordType::TXT, ResponseCode::NoError),
    ] {
        let m = ask_do(&f, n, t, false);
        assert_eq!(m.metadata.response_code, rcode, "{n}: {m:?}");
        assert!(m.metadata.authentic_data, "{n}: {m:?}");
        let types: Vec<RecordType> = m.authorities.iter().map(|r| r.record_type()).collect();
        assert_eq!(types.first(), Some(&RecordType::SOA), "{n}: {types:?}");
        assert!(
            types.contains(&RecordType::NSEC),
            "{n}: no NSEC in {types:?}"
        );
        assert!(
            types.contains(&RecordType::RRSIG),
            "{n}: no RRSIG in {types:?}"
        );
        // Asked again (from the cache), the same.
        let again = ask_do(&f, n, t, false);
        assert_eq!(
            again.authorities.len(),
            m.authorities.len(),
            "{n} from the cache"
        );
        // Without DO: the SOA alone.
        let mut q = make_query(n, t, true);
        q.metadata.id ^= 0x5a5a;
        let plain = ask(f.dns, &q);
        let types: Vec<RecordType> = plain.authorities.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, vec![RecordType::SOA], "{n} without DO");
    }
}

#[test]
fn the_root_ds_question_is_answered() {
    let keys = keys();
    let h = Hierarchy::start_signed(keys.clone());
    let (_d, f) = validating(&h, &(keys.root.anchor_line() + "\n"));
    let m = ask_do(&f, ".", RecordType::DS, false);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{m:?}\n{}",
        f.log_text()
    );
    assert!(m.answers.is_empty());
}

#[test]
fn without_validation_a_do_client_still_gets_what_the_servers_signed() {
    // As Unbound without its validator: fanzha asks with DO and passes the
    // signatures and proofs on to clients that set DO, and to them only.
    let keys = keys();
    let h = Hierarchy::start_signed(keys.clone());
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{}{}", lists_toml(dir.path()), h.resolver_toml());
    let f = Fanzha::start(dir.path(), &toml);
    let m = ask_do(&f, "alias.example.test.", RecordType::A, false);
    let sigs: Vec<RecordType> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(s)) => {
                Some(s.input().type_covered)
            }
            _ => None,
        })
        .collect();
    assert!(
        sigs.contains(&RecordType::CNAME) && sigs.contains(&RecordType::A),
        "{m:?}"
    );
    assert!(!m.metadata.authentic_data, "nothing was validated");
    let m = ask_do(&f, "nothere.example.test.", RecordType::A, false);
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NSEC),
        "{m:?}"
    );
    // A client without DO: the same answers, no DNSSEC records.
    for (n, rcode) in [
        ("alias.example.test.", ResponseCode::NoError),
        ("nothere.example.test.", ResponseCode::NXDomain),
    ] {
        let m = ask(f.dns, &make_query(n, RecordType::A, true));
        assert_eq!(m.metadata.response_code, rcode);
        assert!(
            m.all_sections().all(|r| !matches!(
                r.record_type(),
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            )),
            "{n}: {m:?}"
        );
    }
}
