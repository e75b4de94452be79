//! The report spool on mutated segments: reading a segment and opening a spool that
//! holds it never panic; every record read back is one whose checksum matched.
#![no_main]

use fanzha::outbox::spool::{Spool, encode, read_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg-0000000000000001.log");
    std::fs::write(&seg, data).unwrap();
    let (good, _bad) = read_segment(&seg).unwrap();
    // Each record read back is in the file behind a checksum of its bytes (the hex
    // in either case).
    for j in &good {
        let line = encode(j);
        let found = data
            .windows(line.len())
            .any(|w| w[..8].eq_ignore_ascii_case(&line[..8]) && w[8..] == line[8..]);
        assert!(found, "a record that is not in the file");
    }
    let (mut spool, rec) = Spool::open(dir.path(), 1 << 20, 1 << 16, false).unwrap();
    assert_eq!(rec.events, good.len() as u64);
    spool.append(&[b"{\"id\":\"x\"}".to_vec()]).unwrap();
});
