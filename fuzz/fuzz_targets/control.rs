//! What arrives on fanzha's two control channels: a `fanzha ctl` request line (JSON)
//! and a Frame Streams control frame from a dnstap collector. Neither may panic, and
//! a control frame that parses names only the fields it holds.
#![no_main]

use fanzha::ctl::Request;
use fanzha::dnstap::fstrm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<Request>(data) {
        let again = serde_json::to_vec(&req).unwrap();
        assert_eq!(serde_json::from_slice::<Request>(&again).unwrap(), req);
    }
    if let Some(p) = fstrm::parse_control(data) {
        let fields: usize = p.content_types.iter().map(|t| 8 + t.len()).sum();
        assert!(4 + fields <= data.len());
    }
});
