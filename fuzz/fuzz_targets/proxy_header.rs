//! The PROXY v2 header a load balancer puts before each datagram: whatever the
//! bytes, no panic; a header that parses lies inside the buffer, and the addresses
//! it names are of one family.
#![no_main]

use fanzha::dns::listen::proxy::{self, FIXED, ProxyError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match proxy::parse(data) {
        Ok(h) => {
            assert!(h.len >= FIXED && h.len <= data.len(), "length {}", h.len);
            if let Some((client, server)) = h.addresses {
                assert_eq!(client.is_ipv4(), server.is_ipv4());
            }
            // The same header with more after it parses the same.
            let mut more = data.to_vec();
            more.extend_from_slice(b"\x12\x34 dns");
            assert_eq!(proxy::parse(&more), Ok(h));
        }
        // Cut short: a longer buffer may hold it; never for a buffer that holds
        // the whole declared length.
        Err(ProxyError::Short) => {
            if data.len() >= FIXED {
                let body = u16::from_be_bytes([data[14], data[15]]) as usize;
                assert!(data.len() < FIXED + body);
            }
        }
        Err(_) => {}
    }
});
