//! What a name server sends, as the iterator takes it: decode, scrub against the
//! server's zone, the step made of it (with proofs, as when validating) and the
//! cache entry, read back. Name servers are as untrusted as clients: whatever the
//! reply, no panic, and what is kept stays inside the caps and the server's zone.
//! The first input byte picks the server's zone among the question's suffixes; the
//! rest is the reply.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fanzha::dns::resolve::iterate::cache::{
    Delegation, Expiring, NameKey, aged, delegation_weight, step_weight, ttl_of,
};
use fanzha::dns::resolve::iterate::scrub::{self, Kind, MAX_GLUE_PER_NS, MAX_NS, MAX_RRSET};
use fanzha::dns::resolve::iterate::transport::decode;
use fanzha::dns::resolve::iterate::{Step, step_from_reply};
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, wire)) = data.split_first() else {
        return;
    };
    // The iterator's own decoder: whole for an ordinary reply, capped for a huge one.
    let Ok(msg) = decode(wire) else {
        return;
    };
    let Some(q) = msg.queries.first() else {
        return;
    };
    let qname = q.name().to_lowercase();
    let qtype = q.query_type();
    // The server's zone: a suffix of the question (or the root), as the iterator
    // only asks a zone about names inside it.
    let keep = usize::from(pick & 0x7f) % (usize::from(qname.num_labels()) + 1);
    let zone = if keep == 0 {
        Name::root()
    } else {
        qname.trim_to(keep)
    };
    let kind = scrub::classify(&msg, &zone, &qname, qtype);
    let now = Instant::now();
    match &kind {
        Kind::Referral {
            zone: child,
            ns,
            glue,
            ..
        } => {
            assert!(ns.len() <= MAX_NS, "{} name servers kept", ns.len());
            assert!(glue.len() <= MAX_NS * MAX_GLUE_PER_NS);
            assert!(glue.iter().all(|(n, _)| ns.contains(n) && zone.zone_of(n)));
            assert!(zone.zone_of(child) && *child != zone && child.zone_of(&qname));
            let zones: Expiring<NameKey, Delegation> =
                Expiring::new(16, 1 << 20, delegation_weight);
            let d = Arc::new(Delegation {
                zone: child.clone(),
                ns: ns.clone(),
                addrs: glue.clone(),
            });
            zones.put_shared(NameKey::new(child), d, Duration::from_secs(60), now);
            let _ = zones.get(&NameKey::new(child), now);
            return;
        }
        Kind::Answer { chain, records } => {
            assert!(!records.is_empty() && records.len() <= MAX_RRSET);
            assert!(chain.len() <= 2 * 12, "{} chain records", chain.len());
            assert!(chain.iter().all(|r| zone.zone_of(&r.name)));
            let end = &records[0].name;
            assert!(records.iter().all(|r| r.name == *end));
        }
        Kind::Lame | Kind::Error(_) => return,
        _ => {}
    }
    let step = step_from_reply(kind, &msg, &zone);
    if let Step::Answer(rs, _) | Step::Alias(rs, _, _) = &step {
        assert!(rs.len() <= 5 * (MAX_RRSET + 24), "{} records", rs.len());
    }
    let answers: Expiring<(NameKey, RecordType), Step> = Expiring::new(16, 1 << 20, step_weight);
    let key = (NameKey::new(&qname), qtype);
    let ttl = ttl_of(&step);
    answers.put(key.clone(), step, ttl, now);
    if let Some((s, left)) = answers.get(&key, now) {
        let _ = aged(&s, left);
    }
});
