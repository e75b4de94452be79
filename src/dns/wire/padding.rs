//! EDNS(0) padding (RFC 7830) on encrypted transports, with the block-length strategy
//! of RFC 8467: a response to a query that carried the Padding option is padded to a
//! multiple of 468 octets, so that its size says little about the name.

/// The Padding option's code.
const PADDING: u16 = 12;
/// OPT's record type.
const OPT: u16 = 41;
/// RFC 8467's block for responses.
pub const RESPONSE_BLOCK: usize = 468;

fn u16_at(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]))
}

/// The offset after the name at `at` (labels, then a zero or a pointer).
fn skip_name(p: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *p.get(at)? as usize;
        match len {
            0 => return Some(at + 1),
            l if l & 0xC0 == 0xC0 => return (at + 2 <= p.len()).then_some(at + 2),
            l if l < 64 => at += 1 + l,
            _ => return None,
        }
    }
}

/// Where the OPT record's RDATA is (start, length), when OPT is the packet's last
/// record and the packet is well formed up to its end.
fn last_opt(p: &[u8]) -> Option<(usize, usize)> {
    let qd = u16_at(p, 4)? as usize;
    let rrs = u16_at(p, 6)? as usize + u16_at(p, 8)? as usize + u16_at(p, 10)? as usize;
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(p, at)? + 4;
    }
    let mut last = None;
    for _ in 0..rrs {
        let name_end = skip_name(p, at)?;
        let rtype = u16_at(p, name_end)?;
        let rdlen = u16_at(p, name_end + 8)? as usize;
        let rdata = name_end + 10;
        last = (rtype == OPT).then_some((rdata, rdlen));
        at = rdata + rdlen;
    }
    (at == p.len()).then_some(())?;
    last
}

/// Does `query` carry the Padding option?
pub fn asks_padding(query: &[u8]) -> bool {
    let Some((mut at, len)) = last_opt(query) else {
        return false;
    };
    let end = at + len;
    while at + 4 <= end {
        let (Some(code), Some(olen)) = (u16_at(query, at), u16_at(query, at + 2)) else {
            return false;
        };
        if code == PADDING {
            return true;
        }
        at += 4 + olen as usize;
    }
    false
}

/// Pad `resp` to a multiple of `block` octets with a Padding option appended to its
/// OPT record; false (and `resp` unchanged) when OPT is not its last record, or the
/// result would not fit a DNS message.
pub fn pad(resp: &mut Vec<u8>, block: usize) -> bool {
    let Some((rdata, rdlen)) = last_opt(resp) else {
        return false;
    };
    let pad_len = (block - (resp.len() + 4) % block) % block;
    let new_rdlen = rdlen + 4 + pad_len;
    if resp.len() + 4 + pad_len > usize::from(u16::MAX) || new_rdlen > usize::from(u16::MAX) {
        return false;
    }
    resp[rdata - 2..rdata].copy_from_slice(&(new_rdlen as u16).to_be_bytes());
    resp.extend_from_slice(&PADDING.to_be_bytes());
    resp.extend_from_slice(&(pad_len as u16).to_be_bytes());
    resp.resize(resp.len() + pad_len, 0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    fn message(edns: bool) -> Vec<u8> {
        let mut m = Message::new(1, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("www.example.test.").unwrap(),
            RecordType::A,
        ));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    /// `p` with a zero-length Padding option added to its OPT (rdlength 0, last).
    fn with_padding_option(mut p: Vec<u8>) -> Vec<u8> {
        let n = p.len();
        assert_eq!(&p[n - 2..], &[0, 0], "an empty OPT at the end");
        p[n - 2..].copy_from_slice(&4u16.to_be_bytes());
        p.extend_from_slice(&[0, 12, 0, 0]);
        p
    }

    #[test]
    fn padding_is_asked_only_by_the_option() {
        assert!(!asks_padding(&message(false)));
        assert!(!asks_padding(&message(true)));
        assert!(asks_padding(&with_padding_option(message(true))));
        assert!(!asks_padding(&[0u8; 5]));
        let mut cut = with_padding_option(message(true));
        cut.pop();
        assert!(
            !asks_padding(&cut),
            "a packet cut short is not read past its end"
        );
    }

    #[test]
    fn responses_pad_to_the_block_and_still_parse() {
        let mut r = message(true);
        assert!(pad(&mut r, RESPONSE_BLOCK));
        assert_eq!(r.len() % RESPONSE_BLOCK, 0);
        let m = Message::from_vec(&r).expect("still a DNS message");
        assert_eq!(m.queries.len(), 1);
        assert!(asks_padding(&r), "it carries the option");
        // Without OPT there is nowhere to pad.
        let mut plain = message(false);
        let before = plain.clone();
        assert!(!pad(&mut plain, RESPONSE_BLOCK));
        assert_eq!(plain, before);
        // Already a multiple less four: a zero-length option is enough.
        let mut r = message(true);
        let block = r.len() + 4;
        assert!(pad(&mut r, block));
        assert_eq!(r.len(), block);
    }
}
