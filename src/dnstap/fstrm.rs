//! Frame Streams (the transport under dnstap), bidirectional mode as on a Unix or TCP
//! socket: the writer sends READY with its content type, the reader answers ACCEPT,
//! the writer sends START and then data frames (a 32-bit big-endian length and the
//! payload); at the end STOP, answered by FINISH.
//!
//! A control frame is an escape (a zero length), its own length, its type, and
//! fields (type, length, value); the one field is the content type.

/// The dnstap content type.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Control frame types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Control {
    /// Reader → writer: the content type is taken.
    Accept = 1,
    /// Writer → reader: data frames follow.
    Start = 2,
    /// Writer → reader: no more data frames.
    Stop = 3,
    /// Writer → reader: the content types it can send.
    Ready = 4,
    /// Reader → writer: done after STOP.
    Finish = 5,
}

impl Control {
    fn from_u32(v: u32) -> Option<Control> {
        Some(match v {
            1 => Control::Accept,
            2 => Control::Start,
            3 => Control::Stop,
            4 => Control::Ready,
            5 => Control::Finish,
            _ => return None,
        })
    }
}

/// The content-type field's type.
const FIELD_CONTENT_TYPE: u32 = 1;
/// Longest control frame read (the reference library's limit).
pub const MAX_CONTROL: usize = 512;

/// A control frame of `kind`, carrying the dnstap content type (STOP and FINISH carry
/// none).
pub fn control(kind: Control) -> Vec<u8> {
    let with_type = matches!(kind, Control::Accept | Control::Start | Control::Ready);
    let body_len = 4 + if with_type { 8 + CONTENT_TYPE.len() } else { 0 };
    let mut out = Vec::with_capacity(8 + body_len);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&(kind as u32).to_be_bytes());
    if with_type {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        out.extend_from_slice(CONTENT_TYPE);
    }
    out
}

/// A control frame as read: its type and the content types it names.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Its type.
    pub kind: Control,
    /// Content types in its fields.
    pub content_types: Vec<Vec<u8>>,
}

/// Parse a control frame's body (what follows the escape and the length).
pub fn parse_control(body: &[u8]) -> Option<Parsed> {
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?))
    };
    let kind = Control::from_u32(word(0)?)?;
    let mut content_types = Vec::new();
    let mut at = 4;
    while at < body.len() {
        let (field, len) = (word(at)?, word(at + 4)? as usize);
        let value = body.get(at + 8..at + 8 + len)?;
        if field == FIELD_CONTENT_TYPE {
            content_types.push(value.to_vec());
        }
        at += 8 + len;
    }
    Some(Parsed {
        kind,
        content_types,
    })
}

/// Append a data frame holding `payload` to `out`.
pub fn data(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_round_trip_and_carry_the_content_type_where_due() {
        for kind in [
            Control::Accept,
            Control::Start,
            Control::Stop,
            Control::Ready,
            Control::Finish,
        ] {
            let f = control(kind);
            assert_eq!(&f[..4], &[0, 0, 0, 0], "escape");
            let len = u32::from_be_bytes(f[4..8].try_into().unwrap()) as usize;
            assert_eq!(len, f.len() - 8);
            let p = parse_control(&f[8..]).unwrap();
            assert_eq!(p.kind, kind);
            let typed = matches!(kind, Control::Accept | Control::Start | Control::Ready);
            assert_eq!(p.content_types.len(), usize::from(typed));
            if typed {
                assert_eq!(p.content_types[0], CONTENT_TYPE);
            }
        }
        // READY as the reference library writes it, byte for byte.
        let mut ready = vec![0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 22];
        ready.extend_from_slice(b"protobuf:dnstap.Dnstap");
        assert_eq!(control(Control::Ready), ready);
    }

    #[test]
    fn broken_control_frames_are_refused() {
        assert_eq!(parse_control(&[]), None);
        assert_eq!(parse_control(&[0, 0, 0, 9]), None, "unknown type");
        // A field longer than the frame.
        assert_eq!(
            parse_control(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 50, b'x']),
            None
        );
        // ACCEPT with two content types (a reader may offer several).
        let mut two = vec![0, 0, 0, 1];
        for t in [&b"a"[..], b"protobuf:dnstap.Dnstap"] {
            two.extend_from_slice(&1u32.to_be_bytes());
            two.extend_from_slice(&(t.len() as u32).to_be_bytes());
            two.extend_from_slice(t);
        }
        assert_eq!(parse_control(&two).unwrap().content_types.len(), 2);
    }
}
