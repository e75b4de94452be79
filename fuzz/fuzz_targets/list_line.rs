//! The list-line parser (hosts, adblock, plain, RPZ and zone lines, headers): no
//! panic on any bytes, line after line with the parser's state carried over, and
//! every name it emits is one the compiler can index.
#![no_main]

use fanzha::blocklist::parse::{Item, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = Parser::new();
    for line in data.split(|&b| b == b'\n') {
        p.parse_bytes(line, &mut |item| {
            if let Item::Rule(r) = item {
                assert!(!r.name.is_empty() && r.name.len() <= 253, "{:?}", r.name);
            }
        });
    }
});
