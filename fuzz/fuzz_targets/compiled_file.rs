//! The compiled-list loader on mutated files: never a panic, never a read out of
//! bounds (the mapped file is whatever the disk holds). Every file is opened twice:
//! as is, and with its checksums recomputed over the mutated bytes (a crafted file
//! that passes them). A file that loads and passes the automaton check that foreign
//! files get (`check_automaton`) answers lookups. (fanzha opens without the body
//! checksum only files it has just written itself.)
#![no_main]

use fanzha::blocklist::Blocklist;
use libfuzzer_sys::fuzz_target;

/// `data` with the header's checksums made to match its bytes (when it is long
/// enough to have a header): what a crafted file would look like.
fn with_checksums(data: &[u8]) -> Option<Vec<u8>> {
    const HEADER: usize = 48;
    let mut b = data.to_vec();
    if b.len() < HEADER {
        return None;
    }
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let meta_len = usize::try_from(u64_at(&b, 16)).ok()?;
    let meta_end = HEADER.checked_add(meta_len)?;
    let fst_off = meta_end.checked_add((8 - meta_len % 8) % 8)?;
    if fst_off > b.len() {
        return None;
    }
    let meta = xxhash_rust::xxh3::xxh3_64(&b[HEADER..meta_end]);
    let body = xxhash_rust::xxh3::xxh3_64(&b[fst_off..]);
    b[32..40].copy_from_slice(&meta.to_le_bytes());
    b[40..48].copy_from_slice(&body.to_le_bytes());
    Some(b)
}

fuzz_target!(|data: &[u8]| {
    // `check_automaton` catches the panics of the `fst` crate on a bad node, as it
    // does in fanzha; libFuzzer's hook would abort on those too. A panic that is not
    // caught still reaches libFuzzer and fails the run.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.fst");
    for bytes in [Some(data.to_vec()), with_checksums(data)]
        .into_iter()
        .flatten()
    {
        std::fs::write(&path, &bytes).unwrap();
        let _ = Blocklist::open(&path, false);
        if let Ok(l) = Blocklist::open(&path, true)
            && l.check_automaton().is_ok()
        {
            for name in ["evil.top", "a.b.evil.top", "example.com", "", "top", "x"] {
                let _ = l.lookup(name);
            }
        }
    }
});
