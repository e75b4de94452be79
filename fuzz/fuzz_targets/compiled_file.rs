//! The compiled-list loader on mutated files: never a panic, never a read out of
//! bounds (the mapped file is whatever the disk holds), with and without the
//! checksum verification; a file that loads answers lookups.
#![no_main]

use fanzha::blocklist::Blocklist;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.fst");
    std::fs::write(&path, data).unwrap();
    for verify in [true, false] {
        if let Ok(l) = Blocklist::open(&path, verify) {
            for name in ["evil.top", "a.b.evil.top", "example.com", "", "top", "x"] {
                let _ = l.lookup(name);
            }
        }
    }
});
