//! DNS over HTTPS requests (RFC 8484): whatever the path, the `?dns=` parameter or
//! the POST body, no panic; a path names a place only as one DNS label; a message
//! read from a GET is what its base64url says, of a DNS message's size; and the
//! cache lifetime of any bytes taken as an answer is found or refused, never a
//! panic.
#![no_main]

use base64::Engine as _;
use fanzha::dns::listen::doh::{self, MAX_MESSAGE, Refusal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match how % 4 {
        // The path (and a place's name in it).
        0 => {
            if let Ok(Some(id)) = doh::route(&text) {
                assert!(!id.is_empty() && id.len() <= 63, "{id:?}");
                assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            }
        }
        // A GET's query string.
        1 => match doh::get_message(Some(&text)) {
            Ok(m) => {
                assert!((12..=MAX_MESSAGE).contains(&m.len()));
                // The same bytes, encoded again, read back the same.
                let again = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&m);
                assert_eq!(doh::get_message(Some(&format!("dns={again}"))), Ok(m));
            }
            Err(Refusal::BadRequest | Refusal::TooLarge) => {}
            Err(other) => panic!("a GET refused as {other:?}"),
        },
        // A POST's body.
        2 => match doh::post_message(rest.to_vec()) {
            Ok(m) => assert_eq!(m, rest),
            Err(r) => assert!(matches!(r, Refusal::BadRequest | Refusal::TooLarge)),
        },
        // Anything as an answer, for its Cache-Control; and as a Content-Type.
        _ => {
            if let Some(ttl) = doh::min_ttl(rest) {
                assert!(rest.len() >= 12 + 10, "a TTL from {} bytes", rest.len());
                let _ = ttl;
            }
            let _ = doh::post_type_ok(Some(rest));
        }
    }
});
