//! The compiled blocklist file: layout, loading by mmap, and the suffix matcher.
//!
//! # File layout (all integers little-endian)
//!
//! ```text
//! 0   8  magic  b"FANZHAFS"
//! 8   4  format version (1)
//! 12  4  reserved (0)
//! 16  8  meta length M
//! 24  8  fst length F
//! 32  8  xxh3-64 of the meta bytes
//! 40  8  xxh3-64 of the fst bytes
//! 48  M  meta: JSON (build time, counts, category / list / note tables)
//! ..     zero padding to a multiple of 8
//! ..  F  fst map: reversed-label key → packed value (see `value`)
//! ```
//! The file length must be exactly the sum, so a truncated copy is refused. Files are
//! only ever produced by writing a temporary file, fsyncing it and renaming it over
//! the target: a mapped file is never modified in place.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use fst::raw::Output;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

pub use super::action::Action;
use super::interim::Interim;
use super::paths::{PathHost, PathIndex};
use super::value;

/// First bytes of every compiled list.
pub const MAGIC: &[u8; 8] = b"FANZHAFS";
/// Layout version written by this build.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 48;

/// One source list as recorded in the compiled file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListInfo {
    /// File name relative to its list directory (`fraud-loan.txt`).
    pub name: String,
    /// Category of its block rules.
    pub category: String,
    /// Answer for its block rules.
    pub action: Action,
    /// True for files under an allowlist directory.
    pub allowlist: bool,
    /// Rules taken from it (before de-duplication across lists).
    pub rules: u64,
}

/// The JSON part of the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Same as the binary header's version.
    pub format_version: u32,
    /// RFC 3339 build time.
    pub built_at: String,
    /// Build time, seconds since the epoch.
    pub built_unix: u64,
    /// `fanzha <version>`.
    pub builder: String,
    /// Distinct names (keys) in the map.
    pub entries: u64,
    /// Keys carrying a block rule.
    pub block_entries: u64,
    /// Keys carrying an allow rule.
    pub allow_entries: u64,
    /// Category names; ids index this table.
    pub categories: Vec<String>,
    /// Source lists; ids index this table.
    pub lists: Vec<ListInfo>,
    /// Per-rule notes (inline comments such as a case id); note id `n` is `notes[n-1]`.
    pub notes: Vec<String>,
    /// Path rules, by host (a page on a shared host; see `paths`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathHost>,
}

impl Meta {
    /// Meta of a list with no entries.
    pub fn empty() -> Meta {
        let now = SystemTime::now();
        Meta {
            format_version: FORMAT_VERSION,
            built_at: humantime::format_rfc3339_seconds(now).to_string(),
            built_unix: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            builder: concat!("fanzha ", env!("CARGO_PKG_VERSION")).to_string(),
            entries: 0,
            block_entries: 0,
            allow_entries: 0,
            categories: vec![],
            lists: vec![],
            notes: vec![],
            paths: vec![],
        }
    }
}

/// Why a compiled file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Cannot open or map the file.
    #[error("cannot read compiled list {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Not a fanzha list, or cut short.
    #[error("{path} is not a fanzha compiled list ({why}); rebuild it with `fanzha compile`")]
    NotAList {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// A list written by a different layout version.
    #[error(
        "{path} has format version {got}, this fanzha reads version {expected}; rebuild it with this version's `fanzha compile`"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// What this build reads.
        expected: u32,
        /// What the file says.
        got: u32,
    },
    /// Length does not match the header: truncated or padded.
    #[error(
        "{path} is {got} bytes but its header says {expected}: truncated or still being copied; copy it again (write to a temporary name, then rename)"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Length from the header.
        expected: u64,
        /// Actual length.
        got: u64,
    },
    /// Checksum mismatch.
    #[error("{path}: {what} checksum mismatch, the file is corrupt; rebuild or copy it again")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// `meta` or `fst`.
        what: &'static str,
    },
    /// The JSON meta does not parse.
    #[error("{path}: header table is unreadable ({source}); rebuild it with `fanzha compile`")]
    Meta {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The fst part is malformed.
    #[error("{path}: the name index is malformed ({source}); rebuild it with `fanzha compile`")]
    Fst {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: fst::Error,
    },
}

/// Bytes behind a map: a file mapping or an owned buffer (tests, empty lists).
pub(super) enum Backing {
    Mmap(Mmap, usize, usize),
    Bytes(Vec<u8>, usize, usize),
}

impl AsRef<[u8]> for Backing {
    fn as_ref(&self) -> &[u8] {
        match self {
            Backing::Mmap(m, off, len) => &m[*off..*off + *len],
            Backing::Bytes(b, off, len) => &b[*off..*off + *len],
        }
    }
}

/// The result of matching one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No entry covers the name.
    Pass,
    /// The most specific covering entry is an allow rule.
    Allow(Hit),
    /// The most specific covering entry is a block rule.
    Block(Hit),
}

impl Verdict {
    /// True for [`Verdict::Block`].
    pub fn is_block(&self) -> bool {
        matches!(self, Verdict::Block(_))
    }
}

/// The entry that decided a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Packed value of the entry (see `value`).
    pub value: u64,
    /// Number of labels of the entry's name: the rule is the query's last `depth` labels.
    pub depth: u8,
}

impl Hit {
    /// The rule's name: the last `depth` labels of `query` (as the query spelled it).
    pub fn rule<'a>(&self, query: &'a str) -> &'a str {
        if self.depth == 0 {
            // An RPZ root wildcard: the root's rule.
            return ".";
        }
        let q = query.strip_suffix('.').unwrap_or(query);
        let mut seen = 0;
        for (i, b) in q.bytes().enumerate().rev() {
            if b == b'.' {
                seen += 1;
                if seen == self.depth as usize {
                    return &q[i + 1..];
                }
            }
        }
        q
    }
}

/// The compiled, mapped name index.
pub(super) type FstMap = fst::Map<Backing>;

/// What answers lookups: the compiled fst, the interim index of a first compile, or
/// a compiled base with the names of signed deltas laid over it (see `delta`).
pub(super) enum Matcher {
    Fst(Arc<FstMap>),
    Interim(Interim),
    /// `over` holds every name the deltas set, as written, with its value in the
    /// base's tables extended by the deltas (0: removed); a name it holds hides the
    /// base's. `base_meta` is the base file's own header, from which a new chain of
    /// deltas starts again.
    Overlay {
        base: Arc<FstMap>,
        over: Interim,
        base_meta: Arc<Meta>,
    },
}

/// A loaded, immutable blocklist snapshot.
pub struct Blocklist {
    pub(super) map: Matcher,
    pub(super) meta: Meta,
    pub(super) path: Option<PathBuf>,
    pub(super) file_len: u64,
    /// When each note's rule stops applying (`expires=` in the note; 0: never),
    /// by note id − 1; empty when no rule expires.
    pub(super) expiries: Vec<u64>,
    /// The header's checksum of the compiled base's fst (0 for an interim index):
    /// tells which base a list, or the overlay on it, stands on.
    pub(super) fst_sum: u64,
    /// The path rules of `meta.paths`, indexed by host.
    pub(super) paths: Arc<PathIndex>,
}

/// The expiry of each note (0: none); empty when none has one.
pub(super) fn expiries(meta: &Meta) -> Vec<u64> {
    let e: Vec<u64> = meta
        .notes
        .iter()
        .map(|n| match super::parse::expiry_in(n) {
            Some(Some(ts)) => super::parse::expiry_unix(ts).unwrap_or(0),
            _ => 0,
        })
        .collect();
    if e.iter().all(|&x| x == 0) {
        Vec::new()
    } else {
        e
    }
}

impl std::fmt::Debug for Blocklist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocklist")
            .field("path", &self.path)
            .field("entries", &self.meta.entries)
            .finish()
    }
}

/// Whether every key of `map` can be read: the whole automaton is walked once, so
/// that each node any lookup can reach has been decoded. The `fst` crate trusts its
/// input and panics on a node pointing outside the data; the walk catches that.
fn walks_cleanly(map: &fst::Map<Backing>) -> bool {
    use fst::Streamer;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut keys = map.stream();
        let mut n = 0u64;
        while keys.next().is_some() {
            n += 1;
        }
        n == map.len() as u64
    }))
    .unwrap_or(false)
}

/// The fst checksum in the header of the compiled list at `path` (see
/// [`Blocklist::fst_sum`]), read without mapping the file.
pub fn header_fst_sum(path: &Path) -> io::Result<u64> {
    use std::io::Read;
    let mut h = [0u8; HEADER_LEN];
    File::open(path)?.read_exact(&mut h)?;
    if &h[0..8] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a compiled list",
        ));
    }
    Ok(u64_at(&h, 40))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

fn pad8(n: usize) -> usize {
    (8 - n % 8) % 8
}

/// Write a complete list file to `out` from meta and fst bytes produced by `fst_writer`.
/// `fst_writer` receives a writer and must write the whole fst; the header is computed
/// from what it wrote. Used by the compiler; the writer must support seeking back.
pub fn write_list<W: Write + io::Seek>(
    out: &mut W,
    meta: &Meta,
    fst_writer: impl FnOnce(&mut HashingWriter<&mut W>) -> io::Result<()>,
) -> io::Result<()> {
    let meta_bytes = serde_json::to_vec(meta).map_err(io::Error::other)?;
    out.seek(io::SeekFrom::Start(0))?;
    out.write_all(&[0u8; HEADER_LEN])?;
    out.write_all(&meta_bytes)?;
    out.write_all(&[0u8; 8][..pad8(meta_bytes.len())])?;
    let mut hw = HashingWriter::new(&mut *out);
    fst_writer(&mut hw)?;
    let (fst_len, fst_hash) = (hw.len, hw.hasher.digest());
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&(meta_bytes.len() as u64).to_le_bytes());
    header.extend_from_slice(&fst_len.to_le_bytes());
    header.extend_from_slice(&xxh3_64(&meta_bytes).to_le_bytes());
    header.extend_from_slice(&fst_hash.to_le_bytes());
    out.seek(io::SeekFrom::Start(0))?;
    out.write_all(&header)?;
    out.seek(io::SeekFrom::End(0))?;
    Ok(())
}

/// A writer that counts and hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: xxhash_rust::xxh3::Xxh3,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            len: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Blocklist {
    /// An empty list (nothing blocked).
    pub fn empty() -> Blocklist {
        let map = fst::MapBuilder::memory().into_map();
        let bytes = map.into_fst().into_inner();
        let len = bytes.len();
        Blocklist {
            map: Matcher::Fst(Arc::new(
                fst::Map::new(Backing::Bytes(bytes, 0, len)).expect("an empty fst is valid"),
            )),
            meta: Meta::empty(),
            path: None,
            file_len: 0,
            expiries: Vec::new(),
            fst_sum: 0,
            paths: Arc::default(),
        }
    }

    /// Open a compiled list by mmap. With `verify`, the fst checksum is checked too
    /// (reads the whole file once); the small header checksum is always checked.
    pub fn open(path: &Path, verify: bool) -> Result<Blocklist, LoadError> {
        let io_err = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        // SAFETY: fanzha maps only files it will never modify in place: compiled lists
        // are written to a temporary name and renamed, and lists given by an operator
        // are first copied into fanzha's own state directory (see `watch`). A file
        // truncated by someone else while mapped would raise SIGBUS; the copy rule is
        // what prevents that.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err)?;
        Self::from_backing(
            path.to_path_buf(),
            mmap.len(),
            |off, len| Backing::Mmap(mmap, off, len),
            verify,
        )
    }

    /// Check a list that fanzha did not write itself (an operator's precompiled
    /// file): a checksum that matches its own bytes does not make it what our
    /// compiler writes, and the `fst` crate trusts its input. The automaton is walked
    /// once here, where a node pointing outside the file is an error instead of a
    /// panic at the first lookup that reaches it.
    pub fn check_automaton(&self) -> Result<(), LoadError> {
        match &self.map {
            Matcher::Fst(map) | Matcher::Overlay { base: map, .. } if !walks_cleanly(map) => {
                Err(LoadError::NotAList {
                    path: self.path.clone().unwrap_or_default(),
                    why: "the automaton has a node that points outside the file".into(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Load a list from bytes already in memory (tests, tools).
    pub fn from_bytes(bytes: Vec<u8>, verify: bool) -> Result<Blocklist, LoadError> {
        let n = bytes.len();
        Self::from_backing(
            PathBuf::from("<memory>"),
            n,
            |off, len| Backing::Bytes(bytes, off, len),
            verify,
        )
    }

    fn from_backing(
        path: PathBuf,
        total: usize,
        make: impl FnOnce(usize, usize) -> Backing,
        verify: bool,
    ) -> Result<Blocklist, LoadError> {
        let whole = make(0, total);
        let b: &[u8] = whole.as_ref();
        let not = |why: &str| LoadError::NotAList {
            path: path.clone(),
            why: why.to_string(),
        };
        if b.len() < HEADER_LEN {
            return Err(not("shorter than the header"));
        }
        if &b[0..8] != MAGIC {
            return Err(not("wrong magic bytes"));
        }
        let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(LoadError::Version {
                path,
                expected: FORMAT_VERSION,
                got: version,
            });
        }
        let meta_len = u64_at(b, 16);
        let fst_len = u64_at(b, 24);
        let expected = (HEADER_LEN as u64)
            .checked_add(meta_len)
            .and_then(|v| v.checked_add(pad8((meta_len % 8) as usize) as u64))
            .and_then(|v| v.checked_add(fst_len));
        if expected != Some(b.len() as u64) {
            return Err(LoadError::Truncated {
                path,
                expected: expected.unwrap_or(u64::MAX),
                got: b.len() as u64,
            });
        }
        let meta_bytes = &b[HEADER_LEN..HEADER_LEN + meta_len as usize];
        if xxh3_64(meta_bytes) != u64_at(b, 32) {
            return Err(LoadError::Checksum { path, what: "meta" });
        }
        let fst_off = HEADER_LEN + meta_len as usize + pad8(meta_len as usize);
        if verify && xxh3_64(&b[fst_off..]) != u64_at(b, 40) {
            return Err(LoadError::Checksum { path, what: "fst" });
        }
        let fst_sum = u64_at(b, 40);
        let meta: Meta = serde_json::from_slice(meta_bytes).map_err(|source| LoadError::Meta {
            path: path.clone(),
            source,
        })?;
        let backing = match whole {
            Backing::Mmap(m, _, _) => Backing::Mmap(m, fst_off, fst_len as usize),
            Backing::Bytes(v, _, _) => Backing::Bytes(v, fst_off, fst_len as usize),
        };
        let map = fst::Map::new(backing).map_err(|source| LoadError::Fst {
            path: path.clone(),
            source,
        })?;
        if map.len() as u64 != meta.entries {
            return Err(not("entry count differs from the header"));
        }
        Ok(Blocklist {
            map: Matcher::Fst(Arc::new(map)),
            expiries: expiries(&meta),
            paths: Arc::new(PathIndex::new(&meta.paths)),
            meta,
            path: Some(path),
            file_len: total as u64,
            fst_sum,
        })
    }

    /// A list served from the interim index of a first compile (see `interim`), with
    /// the tables the compiled file will carry.
    pub fn interim(index: Interim, mut meta: Meta) -> Blocklist {
        meta.entries = index.len() as u64;
        (meta.block_entries, meta.allow_entries) = index.counts();
        Blocklist {
            map: Matcher::Interim(index),
            expiries: expiries(&meta),
            paths: Arc::new(PathIndex::new(&meta.paths)),
            meta,
            path: None,
            file_len: 0,
            fst_sum: 0,
        }
    }

    /// True while the interim index of a first compile serves.
    pub fn is_interim(&self) -> bool {
        matches!(self.map, Matcher::Interim(_))
    }

    /// Header tables and counts.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The file this snapshot was mapped from.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Size of the compiled file in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The header's checksum of the compiled base this list stands on (0: none, an
    /// interim index or an empty list).
    pub fn fst_sum(&self) -> u64 {
        self.fst_sum
    }

    /// Names the deltas over the base set or removed (0 without deltas).
    pub fn overlay_len(&self) -> usize {
        match &self.map {
            Matcher::Overlay { over, .. } => over.len(),
            _ => 0,
        }
    }

    /// Distinct names in the list.
    pub fn len(&self) -> usize {
        match &self.map {
            Matcher::Fst(m) => m.len(),
            Matcher::Interim(ix) => ix.len(),
            Matcher::Overlay { .. } => self.meta.entries as usize,
        }
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The path rules (pages of shared hosts), by host.
    pub fn paths(&self) -> &PathIndex {
        &self.paths
    }

    /// Category name of a hit's block rule.
    pub fn category(&self, hit: &Hit) -> &str {
        self.meta
            .categories
            .get(value::category(hit.value))
            .map(String::as_str)
            .unwrap_or("unknown")
    }

    /// The list that decided a verdict.
    pub fn list(&self, verdict: &Verdict) -> Option<&ListInfo> {
        match verdict {
            Verdict::Pass => None,
            Verdict::Block(h) => self.meta.lists.get(value::block_list(h.value)),
            Verdict::Allow(h) => self.meta.lists.get(value::allow_list(h.value)),
        }
    }

    /// Note of a hit's rule (inline comment in the list), if any.
    pub fn note(&self, hit: &Hit) -> Option<&str> {
        match value::note(hit.value) {
            0 => None,
            n => self.meta.notes.get(n - 1).map(String::as_str),
        }
    }

    /// Action of a hit's block rule as set by its list.
    pub fn action(&self, hit: &Hit) -> Action {
        self.meta
            .lists
            .get(value::block_list(hit.value))
            .map(|l| l.action)
            .unwrap_or_default()
    }

    /// Match a presentation-format name (`A.Evil.Top.` works; case and one trailing
    /// dot are ignored). No allocation.
    pub fn lookup(&self, name: &str) -> Verdict {
        let q = name.strip_suffix('.').unwrap_or(name);
        if q.is_empty() {
            return Verdict::Pass;
        }
        let total = q.bytes().filter(|&b| b == b'.').count() + 1;
        self.lookup_labels(q.as_bytes().rsplit(|&b| b == b'.'), total)
    }

    /// Match a name given as its labels from the top-level label down (`top`, `evil`,
    /// `a`), with `total` labels in all. Labels are compared case-insensitively.
    /// One walk through the automaton; the deepest covering entry wins, and at equal
    /// depth an allow rule beats a block rule.
    pub fn lookup_labels<'a>(
        &self,
        labels_from_top: impl Iterator<Item = &'a [u8]>,
        total: usize,
    ) -> Verdict {
        let (map, over) = match &self.map {
            Matcher::Fst(m) => (m, None),
            Matcher::Interim(ix) => {
                return lookup_interim(ix, labels_from_top, total, |v| self.lapsed(v));
            }
            Matcher::Overlay { base, over, .. } => (base, Some(over)),
        };
        if let Some(over) = over {
            return lookup_overlay(map, over, labels_from_top, total, |v| self.lapsed(v));
        }
        let fst = map.as_fst();
        let mut node = fst.root();
        let mut out = Output::zero();
        let mut best = Verdict::Pass;
        // An RPZ root wildcard is the empty key.
        if node.is_final() {
            best = consider(best, node.final_output().value(), 0, total, |v| {
                self.lapsed(v)
            });
        }
        for (i, label) in labels_from_top.enumerate() {
            if label.is_empty() {
                return best;
            }
            if i > 0 {
                match node.find_input(b'.') {
                    Some(ti) => {
                        let t = node.transition(ti);
                        out = out.cat(t.out);
                        node = fst.node(t.addr);
                    }
                    None => return best,
                }
            }
            for &b in label {
                if b == b'.' {
                    return best;
                }
                match node.find_input(b.to_ascii_lowercase()) {
                    Some(ti) => {
                        let t = node.transition(ti);
                        out = out.cat(t.out);
                        node = fst.node(t.addr);
                    }
                    None => return best,
                }
            }
            if node.is_final() {
                let v = out.cat(node.final_output()).value();
                best = consider(best, v, i + 1, total, |v| self.lapsed(v));
            }
        }
        best
    }

    /// When the block rule of value `v` stops applying (`None`: never).
    pub fn expires(&self, v: u64) -> Option<u64> {
        let n = value::note(v);
        self.expiries
            .get(n.checked_sub(1)?)
            .copied()
            .filter(|&e| e != 0)
    }

    /// Whether the block rule of value `v` has expired (the clock is read only for
    /// a rule that has an expiry).
    fn lapsed(&self, v: u64) -> bool {
        if self.expiries.is_empty() {
            return false;
        }
        self.expires(v).is_some_and(|e| {
            e <= SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
    }

    /// Every name and value, in key order (for tools, tests and `fanzha publish`).
    pub fn entries(&self) -> Vec<(String, u64)> {
        match &self.map {
            Matcher::Fst(m) => fst_entries(m),
            Matcher::Interim(ix) => ix.entries(),
            Matcher::Overlay { base, over, .. } => {
                let mut set: std::collections::HashMap<String, u64> =
                    over.entries().into_iter().collect();
                let mut v: Vec<(String, u64)> = fst_entries(base)
                    .into_iter()
                    .filter_map(|(n, val)| match set.remove(&n) {
                        Some(0) => None,
                        Some(d) => Some((n, d)),
                        None => Some((n, val)),
                    })
                    .collect();
                v.extend(set.into_iter().filter(|&(_, d)| d != 0));
                v.sort_by_cached_key(|(n, _)| super::name::reversed_key(n));
                v
            }
        }
    }

    /// The value of `name` itself (normalised, no trailing dot), if it is listed.
    pub fn get(&self, name: &str) -> Option<u64> {
        match &self.map {
            Matcher::Fst(m) => m.get(super::name::reversed_key(name)),
            Matcher::Interim(ix) => ix.get(name.as_bytes()),
            Matcher::Overlay { base, over, .. } => match over.get(name.as_bytes()) {
                Some(0) => None,
                Some(v) => Some(v),
                None => base.get(super::name::reversed_key(name)),
            },
        }
    }
}

fn fst_entries(m: &FstMap) -> Vec<(String, u64)> {
    use fst::Streamer;
    let mut s = m.stream();
    let mut v = Vec::new();
    while let Some((k, val)) = s.next() {
        v.push((super::name::name_from_key(k), val));
    }
    v
}

/// Fold the value of a covering entry `depth` labels deep into the verdict so far:
/// walking from the top, the deepest covering entry wins, and at equal depth an
/// allow rule beats a block rule.
/// A block rule past its expiry (`lapsed`) is passed over: the broader rule found
/// above it, if any, still decides.
fn consider(
    best: Verdict,
    v: u64,
    depth: usize,
    total: usize,
    lapsed: impl Fn(u64) -> bool,
) -> Verdict {
    let f = value::flags(v);
    let (allow, block) = if depth == total {
        (f & value::ALLOW_SELF != 0, f & value::BLOCK_SELF != 0)
    } else {
        (f & value::ALLOW_BELOW != 0, f & value::BLOCK_BELOW != 0)
    };
    let hit = Hit {
        value: v,
        depth: depth.min(255) as u8,
    };
    if allow {
        Verdict::Allow(hit)
    } else if block && !lapsed(v) {
        Verdict::Block(hit)
    } else {
        best
    }
}

/// [`Blocklist::lookup_labels`] on the interim index, which holds names as written:
/// each suffix of the query grows leftwards, label by label, at the end of a stack
/// buffer, and is looked up.
fn lookup_interim<'a>(
    ix: &Interim,
    labels_from_top: impl Iterator<Item = &'a [u8]>,
    total: usize,
    lapsed: impl Fn(u64) -> bool,
) -> Verdict {
    let mut buf = [0u8; 256];
    let mut start = buf.len();
    let mut best = Verdict::Pass;
    if let Some(v) = ix.get(b"") {
        best = consider(best, v, 0, total, &lapsed);
    }
    for (i, label) in labels_from_top.enumerate() {
        if label.is_empty() || label.len() + 1 > start {
            return best;
        }
        if i > 0 {
            start -= 1;
            buf[start] = b'.';
        }
        start -= label.len();
        for (d, &b) in buf[start..].iter_mut().zip(label) {
            if b == b'.' {
                return best;
            }
            *d = b.to_ascii_lowercase();
        }
        if let Some(v) = ix.get(&buf[start..]) {
            best = consider(best, v, i + 1, total, &lapsed);
        }
    }
    best
}

/// [`Blocklist::lookup_labels`] on a base with deltas over it: the automaton is
/// walked as for a compiled list while each suffix of the query also grows, as in
/// [`lookup_interim`], and is looked up in the overlay, whose value (0: removed)
/// hides the base's. The walk of the base may end before the overlay's lookups do.
fn lookup_overlay<'a>(
    map: &FstMap,
    over: &Interim,
    labels_from_top: impl Iterator<Item = &'a [u8]>,
    total: usize,
    lapsed: impl Fn(u64) -> bool,
) -> Verdict {
    let fst = map.as_fst();
    let mut node = Some(fst.root());
    let mut out = Output::zero();
    let mut buf = [0u8; 256];
    let mut start = buf.len();
    let mut best = Verdict::Pass;
    fn step<'f>(
        fst: &'f fst::raw::Fst<Backing>,
        node: &mut Option<fst::raw::Node<'f>>,
        out: &mut Output,
        b: u8,
    ) {
        *node = node.and_then(|n| {
            n.find_input(b).map(|ti| {
                let t = n.transition(ti);
                *out = out.cat(t.out);
                fst.node(t.addr)
            })
        });
    }
    let root = node
        .filter(|n| n.is_final())
        .map(|n| n.final_output().value());
    if let Some(v) = over.get(b"").or(root) {
        best = consider(best, v, 0, total, &lapsed);
    }
    for (i, label) in labels_from_top.enumerate() {
        if label.is_empty() || label.len() + 1 > start {
            return best;
        }
        if i > 0 {
            step(fst, &mut node, &mut out, b'.');
            start -= 1;
            buf[start] = b'.';
        }
        start -= label.len();
        for (d, &b) in buf[start..].iter_mut().zip(label) {
            if b == b'.' {
                return best;
            }
            let b = b.to_ascii_lowercase();
            *d = b;
            step(fst, &mut node, &mut out, b);
        }
        let base = node
            .filter(|n| n.is_final())
            .map(|n| out.cat(n.final_output()).value());
        if let Some(v) = over.get(&buf[start..]).or(base) {
            best = consider(best, v, i + 1, total, &lapsed);
        }
    }
    best
}
