//! Compile source lists into one fst file: discover files, parse, apply guardrails,
//! merge, write atomically, and report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::interim::Interim;
use super::parse::{Header, Item, Parser, PathItem, Polarity, Rule, Scope, bare_name};
use super::paths::{self, PathHost, PathRule};
use super::runs::Runs;
use super::set::{Action, Blocklist, ListInfo, Meta, write_list};
use super::value;

/// How a list's plain entries match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// The name and every name below it (default).
    #[default]
    Subtree,
    /// Only the name itself.
    Exact,
}

/// Per-file settings from the config (`[[lists]]`), overriding the file's headers.
#[derive(Debug, Clone, Default)]
pub struct ListOverride {
    /// The file, as given in the config (compared after canonicalisation).
    pub path: PathBuf,
    /// Category of its rules.
    pub category: Option<String>,
    /// Answer for its rules.
    pub action: Option<Action>,
    /// Match mode of its plain entries.
    pub match_mode: Option<MatchMode>,
    /// What its exception (`@@`) rules may do.
    pub exceptions: Exceptions,
    /// Whether an RPZ file's own actions (`CNAME .`, `rpz-drop.`, local data…)
    /// answer for its rules (`[[lists]] rpz_actions`, on by default); off, its
    /// rules take the category's action as any list's.
    pub rpz_actions: Option<bool>,
    /// A URL with a path blocks its whole host, as before path rules
    /// (`[[lists]] url_paths = "host"`).
    pub url_paths_host: Option<bool>,
}

/// What a list's exception rules (`@@||name^`, allow rules in a block list) may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Exceptions {
    /// Allow the name against every list: a local list, written by the operator.
    #[default]
    Keep,
    /// Dropped, each counted and named (`source-exception`): a fetched third-party
    /// list may not unblock what the district's lists block.
    Drop,
    /// Cancel the list's own rules only (`[[sources]] allow_exceptions = true`): an
    /// exception removes the list's rules for that name and below; it never reaches
    /// another list's rule.
    Own,
}

/// A list's own exceptions, read before its rules (for [`Exceptions::Own`]).
#[derive(Default)]
struct OwnExceptions {
    /// Name → what the exception covers.
    allows: std::collections::HashMap<String, Scope>,
    /// Every name strictly above an excepted one.
    above: std::collections::HashSet<String>,
}

impl OwnExceptions {
    /// Read the exceptions of `path` (a first pass over the file).
    fn read(path: &Path) -> std::io::Result<OwnExceptions> {
        let mut own = OwnExceptions::default();
        let mut parser = Parser::new();
        for_each_line(
            BufReader::with_capacity(256 * 1024, File::open(path)?),
            super::parse::MAX_LINE_LEN,
            |_, bytes| {
                // A bare name is a block rule.
                if !parser.in_record() && bare_name(bytes).is_some() {
                    return;
                }
                parser.parse_bytes(bytes, &mut |item| {
                    if let Item::Rule(r) = item
                        && r.polarity == Polarity::Allow
                    {
                        let mut n = r.name.as_str();
                        while let Some((_, up)) = n.split_once('.') {
                            own.above.insert(up.to_string());
                            n = up;
                        }
                        own.allows.insert(r.name, r.scope);
                    }
                })
            },
        )?;
        Ok(own)
    }

    /// What is left of a block rule at `name` over `scope` once the list's own
    /// exceptions are taken out: `None` when nothing is.
    fn narrow(&self, name: &str, scope: Scope) -> Option<Scope> {
        // An exception above the name covers it and everything below.
        let mut n = name;
        while let Some((_, up)) = n.split_once('.') {
            if matches!(self.allows.get(up), Some(Scope::Below | Scope::Subtree)) {
                return None;
            }
            n = up;
        }
        let (self_ok, below_ok) = match self.allows.get(name) {
            None => (true, true),
            Some(Scope::Subtree) => (false, false),
            Some(Scope::Exact) => (false, true),
            Some(Scope::Below) => (true, false),
        };
        match scope {
            Scope::Subtree if self_ok && below_ok => Some(Scope::Subtree),
            Scope::Subtree | Scope::Exact if self_ok => Some(Scope::Exact),
            Scope::Subtree | Scope::Below if below_ok => Some(Scope::Below),
            _ => None,
        }
    }

    /// Whether an exception lies strictly below `name`: a rule over the names below
    /// it cannot leave that one out without an allow that would reach other lists.
    fn carves(&self, name: &str, scope: Scope) -> bool {
        scope != Scope::Exact && self.above.contains(name)
    }
}

/// Everything a compile needs.
#[derive(Debug, Clone)]
pub struct CompileSpec {
    /// Directories of block lists (each must exist).
    pub dirs: Vec<PathBuf>,
    /// Directories of allow lists (missing ones are skipped with a warning).
    pub allow_dirs: Vec<PathBuf>,
    /// Per-file overrides.
    pub overrides: Vec<ListOverride>,
    /// Normalised names no list may block (nor any name below them).
    pub never_block: Vec<String>,
    /// Refuse when the entry count drops by more than this share against `previous_entries`.
    pub max_drop: f64,
    /// Entry count of the list currently serving, if any.
    pub previous_entries: Option<u64>,
    /// Ignore the drop guard.
    pub force: bool,
    /// How many skipped lines per file to keep as examples (and log).
    pub examples_per_file: usize,
    /// Category for files that name none.
    pub default_category: String,
    /// Bytes of rules held in memory while sorting; beyond it sorted runs go to
    /// temporary files beside the output (see `runs`).
    pub memory_budget: usize,
}

/// Default [`CompileSpec::memory_budget`]: 10M names compile in about 400 MB
/// without it, within ~200 MB with it; 1M names stay in memory.
pub const DEFAULT_MEMORY_BUDGET: usize = 128 << 20;

impl Default for CompileSpec {
    fn default() -> Self {
        CompileSpec {
            dirs: vec![],
            allow_dirs: vec![],
            overrides: vec![],
            never_block: vec![],
            max_drop: 0.5,
            previous_entries: None,
            force: false,
            examples_per_file: 5,
            default_category: "fraud".into(),
            memory_budget: DEFAULT_MEMORY_BUDGET,
        }
    }
}

/// A compile that could not produce a list. The serving list stays in place.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A configured list directory does not exist.
    #[error("list directory {0} does not exist; create it or fix [blocklist] dirs")]
    MissingDir(PathBuf),
    /// A path given as a directory is something else.
    #[error("{0} is not a directory; [blocklist] dirs takes directories of list files")]
    NotADir(PathBuf),
    /// A list file cannot be read.
    #[error("cannot read list file {path}: {source}; fix its permissions or remove it")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Too many list files for the value packing.
    #[error("{0} list files: at most {max} are supported; merge some lists", max = value::MAX_LIST + 1)]
    TooManyLists(usize),
    /// Too many categories for the value packing.
    #[error("{0} categories: at most {max} are supported", max = value::MAX_CATEGORY + 1)]
    TooManyCategories(usize),
    /// Too many per-rule notes for the value packing.
    #[error("more than {max} rules carry an inline note", max = value::MAX_NOTE)]
    TooManyNotes,
    /// The new list is much smaller than the serving one.
    #[error("the new list has {new} entries against {old} serving, a drop of more than {pct:.0} %; keeping the old list (use --force, or raise [blocklist] max_drop, if this is intended)", pct = max_drop * 100.0)]
    DropTooLarge {
        /// Serving entries.
        old: u64,
        /// New entries.
        new: u64,
        /// Configured share.
        max_drop: f64,
    },
    /// The output cannot be written.
    #[error("cannot write compiled list {path}: {source}")]
    Write {
        /// The output path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// A skipped line kept as an example.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedLine {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// Skip reason.
    pub reason: &'static str,
    /// The start of the line.
    pub text: String,
}

/// A rule refused by a guardrail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refusal {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// The rule's name.
    pub name: String,
    /// `public-suffix`, `never-block` or `root-wildcard`.
    pub reason: &'static str,
    /// What it would have covered (the protected name) or the suffix.
    pub detail: String,
}

/// Per-file figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListReport {
    /// List name (relative path).
    pub name: String,
    /// Category.
    pub category: String,
    /// Allowlist or not.
    pub allowlist: bool,
    /// Rules taken.
    pub rules: u64,
    /// Lines read.
    pub lines: u64,
    /// Skipped lines by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Warnings by reason.
    pub warnings: BTreeMap<&'static str, u64>,
    /// Rules refused by guardrails.
    pub refused: u64,
    /// Path rules taken (pages of a host, for the URL proxy).
    pub path_rules: u64,
}

impl ListReport {
    fn new(name: &str, allowlist: bool) -> ListReport {
        ListReport {
            name: name.to_string(),
            category: String::new(),
            allowlist,
            rules: 0,
            lines: 0,
            skipped: BTreeMap::new(),
            warnings: BTreeMap::new(),
            refused: 0,
            path_rules: 0,
        }
    }
}

/// What a compile did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompileReport {
    /// Per list.
    pub lists: Vec<ListReport>,
    /// Block keys per category.
    pub per_category: BTreeMap<String, u64>,
    /// Skipped lines by reason, all files.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Every refused rule.
    pub refused: Vec<Refusal>,
    /// The first skipped lines of each file.
    pub examples: Vec<SkippedLine>,
    /// Distinct names.
    pub entries: u64,
    /// Names with a block rule.
    pub block_entries: u64,
    /// Names with an allow rule.
    pub allow_entries: u64,
    /// Path rules per host (the hosts DNS sends to the URL proxy).
    pub path_hosts: BTreeMap<String, u64>,
    /// Path rules in all.
    pub path_rules: u64,
    /// Path rules by the scheme they were written for: `http` (enforced for every
    /// place the proxy serves), `https` and `both` (over HTTPS, for managed places
    /// only).
    pub path_schemes: BTreeMap<&'static str, u64>,
    /// Output size.
    pub file_bytes: u64,
    /// Sorted runs written to disk because the rules outgrew the memory budget.
    pub spilled_runs: usize,
    /// Wall time.
    #[serde(serialize_with = "ser_secs")]
    pub elapsed: Duration,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl CompileReport {
    /// Total skipped lines.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Files of a directory tree that are lists: regular files, recursively, sorted, except
/// hidden files, backups, and documentation (`*.md`, `README*`, `LICENSE*`).
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>, CompileError> {
    let meta = fs::metadata(dir).map_err(|_| CompileError::MissingDir(dir.to_path_buf()))?;
    if !meta.is_dir() {
        return Err(CompileError::NotADir(dir.to_path_buf()));
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = fs::read_dir(&d).map_err(|source| CompileError::ReadFile {
            path: d.clone(),
            source,
        })?;
        for e in rd.flatten() {
            let p = e.path();
            let fname = e.file_name().to_string_lossy().to_string();
            if !is_list_name(&fname) {
                continue;
            }
            match fs::metadata(&p) {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) if m.is_file() => out.push(p),
                Ok(_) => tracing::warn!(path = %p.display(), "not a regular file; ignored"),
                Err(source) => return Err(CompileError::ReadFile { path: p, source }),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A digest of everything a compile reads: fanzha's version, the settings that shape
/// the output, and the path, size, inode and change times of every list file. Equal
/// fingerprints mean a compile would produce the same list, so a snapshot compiled
/// under one can serve under the other without compiling again.
pub fn fingerprint(spec: &CompileSpec) -> Result<u64, CompileError> {
    use std::os::unix::fs::MetadataExt;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(&RULES_EDITION.to_le_bytes());
    h.update(
        format!(
            "{:?}|{:?}|{:?}|{:?}|{}",
            spec.dirs, spec.allow_dirs, spec.overrides, spec.never_block, spec.default_category
        )
        .as_bytes(),
    );
    let allow = spec.allow_dirs.iter().map(|d| (d, true));
    for (dir, is_allow) in spec.dirs.iter().map(|d| (d, false)).chain(allow) {
        let files = match list_files(dir) {
            Ok(f) => f,
            Err(CompileError::MissingDir(_)) if is_allow => {
                h.update(b"\0missing");
                continue;
            }
            Err(e) => return Err(e),
        };
        for f in files {
            let m = fs::metadata(&f).map_err(|source| CompileError::ReadFile {
                path: f.clone(),
                source,
            })?;
            h.update(f.as_os_str().as_encoded_bytes());
            for v in [
                m.len(),
                m.ino(),
                m.dev(),
                m.mtime() as u64,
                m.mtime_nsec() as u64,
                m.ctime() as u64,
                m.ctime_nsec() as u64,
            ] {
                h.update(&v.to_le_bytes());
            }
        }
    }
    Ok(h.digest())
}

/// Whether a file name is taken as a list (see [`list_files`]).
pub fn is_list_name(fname: &str) -> bool {
    let lower = fname.to_ascii_lowercase();
    !(fname.starts_with('.')
        || fname.ends_with('~')
        || lower.ends_with(".md")
        || lower.ends_with(".swp")
        || lower.ends_with(".tmp")
        || lower.ends_with(".bak")
        || lower.starts_with("readme")
        || lower.starts_with("license")
        || lower.starts_with("sources"))
}

/// Read `reader` line by line, handing each line (without `\n`, at most `cap + 1`
/// bytes: longer lines are cut there so the caller can tell) to `f`. Lines that lie
/// whole in the reader's buffer are handed over in place, without a copy.
pub fn for_each_line(
    mut reader: impl BufRead,
    cap: usize,
    mut f: impl FnMut(u64, &[u8]),
) -> io::Result<()> {
    let mut line = Vec::with_capacity(256);
    let mut no = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            if !line.is_empty() {
                no += 1;
                f(no, &line);
            }
            return Ok(());
        }
        if line.is_empty() {
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', buf) {
                let l = &buf[start..end];
                no += 1;
                f(no, &l[..l.len().min(cap + 1)]);
                start = end + 1;
            }
            if start > 0 {
                reader.consume(start);
                continue;
            }
        }
        // A line that continues past the buffer: gather it.
        let (chunk, done, used) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], true, i + 1),
            None => (buf, false, buf.len()),
        };
        let room = (cap + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if done {
            no += 1;
            f(no, &line);
            line.clear();
        }
    }
}

struct Guard {
    protected: HashSet<String>,
    ancestors: HashMap<String, String>,
}

impl Guard {
    fn new(never: &[String]) -> Guard {
        let mut ancestors = HashMap::new();
        for n in never {
            let mut rest = n.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                ancestors
                    .entry(parent.to_string())
                    .or_insert_with(|| n.clone());
                rest = parent;
            }
        }
        Guard {
            protected: never.iter().cloned().collect(),
            ancestors,
        }
    }

    fn check(&self, name: &str, scope: Scope) -> Option<(&'static str, String)> {
        if !name.bytes().any(|b| b == b'.') {
            return Some(("public-suffix", name.to_string()));
        }
        if let Some(s) = psl::suffix(name.as_bytes())
            && s.is_known()
            && s.as_bytes() == name.as_bytes()
        {
            return Some(("public-suffix", name.to_string()));
        }
        if self.protected.is_empty() {
            return None;
        }
        let mut rest = name;
        loop {
            if self.protected.contains(rest) {
                return Some(("never-block", rest.to_string()));
            }
            match rest.split_once('.') {
                Some((_, p)) => rest = p,
                None => break,
            }
        }
        if scope != Scope::Exact
            && let Some(p) = self.ancestors.get(name)
        {
            return Some(("never-block", p.clone()));
        }
        None
    }
}

/// Where the rules of one list file go: guardrails, category and note tables, the
/// run arena. Shared by the parser's rules and the bare-name fast path.
struct RuleSink<'a> {
    spec: &'a CompileSpec,
    out: &'a Path,
    guard: &'a Guard,
    categories: &'a mut Vec<String>,
    notes: &'a mut Vec<String>,
    refused: &'a mut Vec<Refusal>,
    runs: &'a mut Runs,
    list_id: usize,
    lname: &'a str,
    allowlist: bool,
    mode: MatchMode,
    exceptions: Exceptions,
    rpz_actions: bool,
    /// The name and note of the last RPZ local-data rule: the records of one owner
    /// are written on consecutive lines and answered together.
    last_data: Option<(String, usize)>,
    /// The list's own exceptions, for [`Exceptions::Own`].
    own: Option<OwnExceptions>,
    /// What the last rule came to, when it was not kept as written: a skip reason
    /// (counted and named as a skipped line) or a warning.
    outcome: Option<Outcome>,
    /// Category from the config or the file's header so far.
    category: Option<String>,
    /// Id of `category` (or the default) in `categories`, once a rule used it.
    cat_id: Option<usize>,
    rules: u64,
    refused_rules: u64,
    /// Reused buffer for lower-casing bare names.
    lower: String,
}

impl RuleSink<'_> {
    fn set_category(&mut self, c: String) {
        self.category = Some(c);
        self.cat_id = None;
    }

    fn cat_id(&mut self) -> Result<usize, CompileError> {
        if let Some(id) = self.cat_id {
            return Ok(id);
        }
        let cat = self
            .category
            .as_deref()
            .unwrap_or(&self.spec.default_category);
        let id = match self.categories.iter().position(|c| c == cat) {
            Some(i) => i,
            None => {
                self.categories.push(cat.to_string());
                self.categories.len() - 1
            }
        };
        if id > value::MAX_CATEGORY as usize {
            return Err(CompileError::TooManyCategories(id + 1));
        }
        self.cat_id = Some(id);
        Ok(id)
    }

    /// A rule from the parser.
    fn add(&mut self, r: Rule, line: u64) -> Result<(), CompileError> {
        let (scope, polarity) = self.effective(r.scope, r.polarity, r.explicit_scope);
        self.insert(&r.name, scope, polarity, r.note, line)
    }

    /// A rule's scope and polarity in this file: everything in an allowlist allows,
    /// and `match: exact` narrows rules whose syntax did not fix their scope.
    fn effective(&self, scope: Scope, polarity: Polarity, explicit: bool) -> (Scope, Polarity) {
        let polarity = if self.allowlist {
            Polarity::Allow
        } else {
            polarity
        };
        let scope = if !explicit && self.mode == MatchMode::Exact {
            Scope::Exact
        } else {
            scope
        };
        (scope, polarity)
    }

    /// A line that is a bare name (see [`bare_name`]): a plain rule.
    fn add_bare(&mut self, name: &str, line: u64) -> Result<(), CompileError> {
        // What the parser makes of such a line: a plain block rule.
        let (scope, polarity) = self.effective(Scope::Subtree, Polarity::Block, false);
        if !name.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.insert(name, scope, polarity, None, line);
        }
        let mut lower = std::mem::take(&mut self.lower);
        lower.clear();
        lower.push_str(name);
        lower.make_ascii_lowercase();
        let r = self.insert(&lower, scope, polarity, None, line);
        self.lower = lower;
        r
    }

    fn insert(
        &mut self,
        name: &str,
        mut scope: Scope,
        polarity: Polarity,
        note: Option<String>,
        line: u64,
    ) -> Result<(), CompileError> {
        if polarity == Polarity::Allow && !self.allowlist {
            match self.exceptions {
                Exceptions::Keep => {}
                Exceptions::Drop => {
                    self.outcome = Some(Outcome::Skipped("source-exception"));
                    return Ok(());
                }
                // Already taken out of the list's own rules.
                Exceptions::Own => return Ok(()),
            }
        }
        if polarity == Polarity::Block
            && let Some(own) = &self.own
        {
            if own.carves(name, scope) {
                self.outcome = Some(Outcome::Warned("exception-inside-rule"));
            }
            match own.narrow(name, scope) {
                Some(s) => scope = s,
                None => return Ok(()),
            }
        }
        let refusal = if name.is_empty() {
            self.root_wildcard(polarity, scope, line)
        } else if polarity == Polarity::Block {
            self.guard.check(name, scope)
        } else {
            None
        };
        if let Some((reason, detail)) = refusal {
            self.refused_rules += 1;
            self.refused.push(Refusal {
                file: self.lname.to_string(),
                line,
                name: name.to_string(),
                reason,
                detail,
            });
            return Ok(());
        }
        let cat_id = self.cat_id()?;
        // An RPZ action rides in the note; off for this list, the category decides.
        let note = note.filter(|n| self.rpz_actions || !n.starts_with("rpz="));
        let data = note.as_deref().and_then(|n| n.strip_prefix("rpz=data "));
        if let (Some(d), Some((last, id))) = (data, &self.last_data)
            && last == name
            && polarity == Polarity::Block
        {
            // Another record of the same owner: answered with the ones before it.
            let joined = &mut self.notes[*id - 1];
            joined.push('|');
            joined.push_str(d);
            return Ok(());
        }
        let is_data = data.is_some() && polarity == Polarity::Block;
        let note = match note {
            Some(n) if polarity == Polarity::Block => {
                self.notes.push(n);
                self.notes.len() as u64
            }
            _ => 0,
        };
        self.last_data = is_data.then(|| (name.to_string(), note as usize));
        let flags = match (polarity, scope) {
            (Polarity::Block, Scope::Exact) => value::BLOCK_SELF,
            (Polarity::Block, Scope::Below) => value::BLOCK_BELOW,
            (Polarity::Block, Scope::Subtree) => value::BLOCK_SELF | value::BLOCK_BELOW,
            (Polarity::Allow, Scope::Exact) => value::ALLOW_SELF,
            (Polarity::Allow, Scope::Below) => value::ALLOW_BELOW,
            (Polarity::Allow, Scope::Subtree) => value::ALLOW_SELF | value::ALLOW_BELOW,
        };
        self.rules += 1;
        let v = if polarity == Polarity::Block {
            value::pack(flags, cat_id as u64, self.list_id as u64, 0, note)
        } else {
            value::pack(flags, 0, 0, self.list_id as u64, 0)
        };
        self.runs
            .push_name(name, v)
            .map_err(|source| CompileError::Write {
                path: self.out.to_path_buf(),
                source,
            })
    }
}

impl RuleSink<'_> {
    /// An RPZ root wildcard (`*.rpz.zone.`): every name below the root, so every
    /// name a deeper rule does not decide. Blocking is taken from the operator's
    /// own block lists only (said at each compile), never from a fetched source or
    /// the guardrails' usual scopes; why not, else.
    fn root_wildcard(
        &mut self,
        polarity: Polarity,
        scope: Scope,
        line: u64,
    ) -> Option<(&'static str, String)> {
        if scope != Scope::Below {
            return Some(("root-wildcard", "a rule for the root itself".into()));
        }
        if polarity == Polarity::Allow {
            return None;
        }
        if self.allowlist || self.exceptions != Exceptions::Keep {
            return Some((
                "root-wildcard",
                "a rule for every name is taken from the operator's own block lists only".into(),
            ));
        }
        self.outcome = Some(Outcome::Warned("root-wildcard"));
        tracing::warn!(file = %self.lname, line, "RPZ root wildcard: every name that no deeper rule of the lists allows or decides is blocked");
        None
    }
}

/// A rule not kept as written (see [`RuleSink::outcome`]).
#[derive(Clone, Copy)]
enum Outcome {
    Skipped(&'static str),
    Warned(&'static str),
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// What the same lines compile to, numbered: a build that reads lines otherwise
/// (2: a URL with a path is a path rule, not its host) makes the snapshot of an
/// earlier one stale, so that a restart compiles the lists again.
const RULES_EDITION: u32 = 2;

/// Compile the lists of `spec` into `out` (written to a temporary file in the same
/// directory, fsynced, renamed).
pub fn compile(spec: &CompileSpec, out: &Path) -> Result<CompileReport, CompileError> {
    compile_with(spec, out, None)
}

/// A list file found in the configured directories.
struct ListFile {
    path: PathBuf,
    /// Its name relative to its directory (reports, logs, [`ListInfo`]).
    name: String,
    allowlist: bool,
    /// The `[[lists]]` settings that name it, if any.
    setting: Option<ListOverride>,
}

/// What the parse of every file gathers, for the header and the report.
#[derive(Default)]
struct Gathered {
    categories: Vec<String>,
    lists: Vec<ListInfo>,
    notes: Vec<String>,
    reports: Vec<ListReport>,
    refused: Vec<Refusal>,
    examples: Vec<SkippedLine>,
    skipped: BTreeMap<&'static str, u64>,
    /// Path rules by host.
    paths: BTreeMap<String, PathHost>,
}

/// [`compile`], handing `early` a list that can serve as soon as the lists are read:
/// an [`Interim`] index of the parsed rules, matching exactly as the compiled file
/// will (a first start serves it while the sort and the fst are built). Offered only
/// when no list serves (`previous_entries` is `None`: the drop guard needs the final
/// count) and the rules fit the memory budget.
///
/// The phases: discover the files → parse each into the rule runs → offer the
/// interim index → sort and count → refuse a large drop → write.
pub fn compile_with(
    spec: &CompileSpec,
    out: &Path,
    early: Option<&mut dyn FnMut(Blocklist)>,
) -> Result<CompileReport, CompileError> {
    let start = Instant::now();
    let files = discover(spec)?;
    let guard = Guard::new(&spec.never_block);
    let (out_dir, out_stem) = dir_and_name(out);
    let mut runs = Runs::new(&out_dir, &out_stem, spec.memory_budget);
    let werr = |source| CompileError::Write {
        path: out.to_path_buf(),
        source,
    };
    runs.reserve_for(
        files
            .iter()
            .filter_map(|f| fs::metadata(&f.path).ok())
            .map(|m| m.len())
            .sum(),
    );
    let mut g = Gathered::default();
    for (list_id, file) in files.iter().enumerate() {
        parse_file(spec, out, &guard, &mut runs, &mut g, list_id, file)?;
    }
    let parsed_at = start.elapsed();
    if let Some(early) = early
        && spec.previous_entries.is_none()
    {
        offer_interim(early, &mut runs, &g);
    }
    let indexed_at = start.elapsed();
    // Sort and merge rules per name (see `runs`), then count what the file will hold:
    // the counts go into the header, before the fst is written in a second pass.
    runs.finish().map_err(werr)?;
    let sorted_at = start.elapsed();
    let mut meta = Meta::empty();
    let per_category = count(&mut runs, &g.categories, &mut meta).map_err(werr)?;
    if let Some(old) = spec.previous_entries
        && !spec.force
        && old > 0
        && (meta.entries as f64) < old as f64 * (1.0 - spec.max_drop)
    {
        return Err(CompileError::DropTooLarge {
            old,
            new: meta.entries,
            max_drop: spec.max_drop,
        });
    }
    let (entries, block_entries, allow_entries) =
        (meta.entries, meta.block_entries, meta.allow_entries);
    meta.categories = g.categories;
    meta.lists = g.lists;
    meta.notes = g.notes;
    meta.paths = g.paths.into_values().collect();
    let path_hosts: BTreeMap<String, u64> = meta
        .paths
        .iter()
        .map(|h| (h.host.clone(), h.rules.len() as u64))
        .collect();
    let path_rules = path_hosts.values().sum();
    let mut path_schemes = BTreeMap::new();
    for r in meta.paths.iter().flat_map(|h| &h.rules) {
        let k = match r.schemes {
            paths::Schemes::Http => "http",
            paths::Schemes::Https => "https",
            paths::Schemes::Both => "both",
        };
        *path_schemes.entry(k).or_default() += 1;
    }
    let counted_at = start.elapsed();
    let file_bytes = write_atomically(out, &meta, |insert| runs.each(insert))?;
    tracing::debug!(
        parse = ?parsed_at,
        interim = ?(indexed_at - parsed_at),
        sort = ?(sorted_at - indexed_at),
        count = ?(counted_at - sorted_at),
        write = ?(start.elapsed() - counted_at),
        "compile phases"
    );
    Ok(CompileReport {
        lists: g.reports,
        per_category,
        skipped: g.skipped,
        refused: g.refused,
        examples: g.examples,
        entries,
        block_entries,
        allow_entries,
        path_hosts,
        path_rules,
        path_schemes,
        file_bytes,
        spilled_runs: runs.spilled(),
        elapsed: start.elapsed(),
    })
}

/// The list files of the block and allow directories, in order, with the
/// `[[lists]]` settings that name them.
fn discover(spec: &CompileSpec) -> Result<Vec<ListFile>, CompileError> {
    let mut found: Vec<(PathBuf, String, bool)> = Vec::new();
    for d in &spec.dirs {
        let fs = list_files(d)?;
        if fs.is_empty() {
            tracing::warn!(dir = %d.display(), "no list files in this directory");
        }
        found.extend(
            fs.into_iter()
                .map(|f| (rel_name(d, &f), f))
                .map(|(n, f)| (f, n, false)),
        );
    }
    for d in &spec.allow_dirs {
        match list_files(d) {
            Ok(fs) => found.extend(
                fs.into_iter()
                    .map(|f| (rel_name(d, &f), f))
                    .map(|(n, f)| (f, n, true)),
            ),
            Err(CompileError::MissingDir(p)) => {
                tracing::debug!(dir = %p.display(), "allowlist directory does not exist; no allow rules from it");
            }
            Err(e) => return Err(e),
        }
    }
    if found.len() > value::MAX_LIST as usize + 1 {
        return Err(CompileError::TooManyLists(found.len()));
    }
    let settings: Vec<(PathBuf, &ListOverride)> = spec
        .overrides
        .iter()
        .map(|o| {
            (
                fs::canonicalize(&o.path).unwrap_or_else(|_| o.path.clone()),
                o,
            )
        })
        .collect();
    Ok(found
        .into_iter()
        .map(|(path, name, allowlist)| {
            let canon = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            let setting = settings
                .iter()
                .find(|(p, _)| *p == canon)
                .map(|(_, o)| (*o).clone());
            ListFile {
                path,
                name,
                allowlist,
                setting,
            }
        })
        .collect())
}

/// What `file`'s exceptions may do, and its own exceptions read ahead when they
/// cancel its own rules only.
fn exceptions_of(file: &ListFile) -> Result<(Exceptions, Option<OwnExceptions>), CompileError> {
    let exceptions = file
        .setting
        .as_ref()
        .map(|o| o.exceptions)
        .unwrap_or_default();
    if exceptions != Exceptions::Own || file.allowlist {
        return Ok((exceptions, None));
    }
    let own = OwnExceptions::read(&file.path).map_err(|source| CompileError::ReadFile {
        path: file.path.clone(),
        source,
    })?;
    Ok((exceptions, Some(own)))
}

/// Parse one list file into `runs`, its report, header values and list info into `g`.
fn parse_file(
    spec: &CompileSpec,
    out: &Path,
    guard: &Guard,
    runs: &mut Runs,
    g: &mut Gathered,
    list_id: usize,
    file: &ListFile,
) -> Result<(), CompileError> {
    let ov = file.setting.as_ref();
    let lname = &file.name;
    let mut rep = ListReport::new(lname, file.allowlist);
    let f = File::open(&file.path).map_err(|source| CompileError::ReadFile {
        path: file.path.clone(),
        source,
    })?;
    let (exceptions, own) = exceptions_of(file)?;
    let mut lines = FileLines {
        sink: RuleSink {
            spec,
            out,
            guard,
            categories: &mut g.categories,
            notes: &mut g.notes,
            refused: &mut g.refused,
            runs,
            list_id,
            lname,
            allowlist: file.allowlist,
            mode: ov.and_then(|o| o.match_mode).unwrap_or_default(),
            exceptions,
            rpz_actions: ov.and_then(|o| o.rpz_actions).unwrap_or(true),
            last_data: None,
            own,
            outcome: None,
            category: ov.and_then(|o| o.category.clone()),
            cat_id: None,
            rules: 0,
            refused_rules: 0,
            lower: String::with_capacity(256),
        },
        cat_fixed: ov.is_some_and(|o| o.category.is_some()),
        action: ov.and_then(|o| o.action).unwrap_or_default(),
        action_fixed: ov.is_some_and(|o| o.action.is_some()),
        mode_fixed: ov.is_some_and(|o| o.match_mode.is_some()),
        expires: None,
        host_of_paths: ov.and_then(|o| o.url_paths_host).unwrap_or(false),
        rep: &mut rep,
        examples: &mut g.examples,
        logged: 0,
        err: None,
        paths: &mut g.paths,
    };
    let mut parser = Parser::new();
    let res = for_each_line(
        BufReader::with_capacity(256 * 1024, f),
        super::parse::MAX_LINE_LEN,
        |no, bytes| lines.line(&mut parser, no, bytes),
    );
    let FileLines {
        sink, action, err, ..
    } = lines;
    rep.rules = sink.rules;
    rep.refused = sink.refused_rules;
    let category = sink.category;
    if let Some(e) = err {
        return Err(e);
    }
    res.map_err(|source| CompileError::ReadFile {
        path: file.path.clone(),
        source,
    })?;
    if g.notes.len() > value::MAX_NOTE as usize {
        return Err(CompileError::TooManyNotes);
    }
    for (k, v) in &rep.skipped {
        *g.skipped.entry(k).or_default() += v;
    }
    let cat = category.unwrap_or_else(|| spec.default_category.clone());
    rep.category = cat.clone();
    g.lists.push(ListInfo {
        name: lname.clone(),
        category: cat,
        action,
        allowlist: file.allowlist,
        rules: rep.rules,
    });
    if rep.lines > 0 && rep.rules == 0 && !rep.skipped.is_empty() {
        tracing::warn!(file = %lname, lines = rep.lines, "no usable rule in this file");
    }
    g.reports.push(rep);
    Ok(())
}

/// One file's lines on their way into the rule sink, with the header values seen so
/// far and the first error (after which lines are only counted).
struct FileLines<'a, 'b> {
    sink: RuleSink<'a>,
    cat_fixed: bool,
    action: Action,
    action_fixed: bool,
    mode_fixed: bool,
    /// The file's `# expires:` from that line on.
    expires: Option<String>,
    /// `url_paths = "host"`: a URL's path is dropped, its host blocked.
    host_of_paths: bool,
    rep: &'b mut ListReport,
    examples: &'b mut Vec<SkippedLine>,
    /// Skipped lines logged so far (at most `examples_per_file`).
    logged: usize,
    err: Option<CompileError>,
    /// Path rules by host, all files.
    paths: &'b mut BTreeMap<String, PathHost>,
}

impl FileLines<'_, '_> {
    fn line(&mut self, parser: &mut Parser, no: u64, bytes: &[u8]) {
        self.rep.lines = no;
        if self.err.is_some() {
            return;
        }
        // Most lines of big lists are a bare name: taken without the parser
        // (same result, see `parse::bare_name`), and without allocating.
        if !parser.in_record()
            && self.expires.is_none()
            && let Some(name) = bare_name(bytes)
        {
            if let Err(e) = self.sink.add_bare(name, no) {
                self.err = Some(e);
            }
            self.outcome(no, bytes);
            return;
        }
        parser.parse_bytes(bytes, &mut |item| self.item(item, no, bytes));
    }

    fn item(&mut self, item: Item, no: u64, bytes: &[u8]) {
        if self.err.is_some() {
            return;
        }
        let lname = self.sink.lname;
        match item {
            Item::Header(Header::Category(c)) if !self.cat_fixed => self.sink.set_category(c),
            Item::Header(Header::Action(a)) if !self.action_fixed => match Action::parse(&a) {
                Some(a) => self.action = a,
                None => {
                    tracing::warn!(file = %lname, line = no, action = %a, "unknown action header ignored (sinkhole, nxdomain, refused, shadow or off)");
                    self.skipped("bad-header", no, bytes);
                }
            },
            Item::Header(Header::Expires(ts)) => {
                if super::parse::expiry_unix(&ts).is_some() {
                    self.expires = Some(ts);
                } else {
                    self.skipped("bad-expiry", no, bytes);
                }
            }
            Item::Header(Header::Match(m)) if !self.mode_fixed => match m.as_str() {
                "exact" => self.sink.mode = MatchMode::Exact,
                "subtree" => self.sink.mode = MatchMode::Subtree,
                _ => {
                    tracing::warn!(file = %lname, line = no, "unknown match header ignored (exact or subtree)");
                    self.skipped("bad-header", no, bytes);
                }
            },
            Item::Header(_) => {}
            Item::Warn(w) => *self.rep.warnings.entry(w.reason()).or_default() += 1,
            Item::Skip(s) => self.skipped(s.reason(), no, bytes),
            Item::Path(p) => self.path(p, no, bytes),
            Item::Rule(mut r) => {
                // A file's `# expires:` header, unless the rule names its own.
                if let Some(ts) = &self.expires
                    && !r.note.as_deref().is_some_and(|n| n.starts_with("expires="))
                {
                    r.note = Some(match r.note {
                        Some(n) => format!("expires={ts} {n}"),
                        None => format!("expires={ts}"),
                    });
                }
                if let Err(e) = self.sink.add(r, no) {
                    self.err = Some(e);
                }
                self.outcome(no, bytes);
            }
        }
    }

    /// A path rule: kept in the path table of its host, with this file's category,
    /// action and expiry. An allowlist has no path exceptions: skipped.
    fn path(&mut self, mut p: PathItem, no: u64, bytes: &[u8]) {
        if self.host_of_paths {
            // `url_paths = "host"`: the URL's host, as a plain entry.
            let rule = Rule {
                name: p.host,
                scope: Scope::Subtree,
                polarity: Polarity::Block,
                explicit_scope: p.subtree,
                note: p.note,
            };
            *self.rep.warnings.entry("url-path-as-host").or_default() += 1;
            return self.item(Item::Rule(rule), no, bytes);
        }
        if self.sink.allowlist {
            self.skipped("path-in-allowlist", no, bytes);
            return;
        }
        if let Some(ts) = &self.expires
            && !p.note.as_deref().is_some_and(|n| n.starts_with("expires="))
        {
            p.note = Some(match p.note {
                Some(n) => format!("expires={ts} {n}"),
                None => format!("expires={ts}"),
            });
        }
        let category = self
            .sink
            .category
            .clone()
            .unwrap_or_else(|| self.sink.spec.default_category.clone());
        let rule = PathRule {
            path: paths::normalize(&p.path),
            how: p.how,
            schemes: p.schemes,
            category,
            list: self.sink.lname.to_string(),
            line: no,
            action: self.action,
            note: p.note,
            subtree: p.subtree,
        };
        let host = self
            .paths
            .entry(p.host.clone())
            .or_insert_with(|| PathHost {
                host: p.host,
                subtree: false,
                rules: Vec::new(),
            });
        host.subtree |= rule.subtree;
        if !host.rules.iter().any(|r| {
            (&r.path, r.how, r.schemes, r.subtree)
                == (&rule.path, rule.how, rule.schemes, rule.subtree)
        }) {
            host.rules.push(rule);
        }
        self.rep.path_rules += 1;
    }

    /// Count what the last rule came to, when it was not kept as written.
    fn outcome(&mut self, no: u64, bytes: &[u8]) {
        match self.sink.outcome.take() {
            Some(Outcome::Skipped(reason)) => self.skipped(reason, no, bytes),
            Some(Outcome::Warned(reason)) => *self.rep.warnings.entry(reason).or_default() += 1,
            None => {}
        }
    }

    /// Count a skipped line; log and keep the first few as examples.
    fn skipped(&mut self, reason: &'static str, no: u64, bytes: &[u8]) {
        let n = self.rep.skipped.entry(reason).or_default();
        *n += 1;
        // A line with an expiry or a header was meant to block (an emergency rule,
        // a category): each is logged and reported (up to LOUD_PER_FILE a file),
        // not just the first few examples.
        let loud = LOUD.contains(&reason) && *n <= LOUD_PER_FILE;
        if !loud && self.logged >= self.sink.spec.examples_per_file {
            return;
        }
        if !loud {
            self.logged += 1;
        }
        let text: String = String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        let file = self.sink.lname;
        if loud && reason == "source-exception" {
            tracing::warn!(file = %file, line = no, reason, text = %text, "exception of a fetched list dropped: it may not unblock what other lists block (allow_exceptions = true lets it cancel its own rules)");
        } else if loud {
            tracing::error!(file = %file, line = no, reason, text = %text, "skipped list line: the rule or header it carries does not apply; fix the line (times are RFC 3339, e.g. 2030-12-03T08:00:00+08:00)");
        } else {
            tracing::warn!(file = %file, line = no, reason, text = %text, "skipped list line");
        }
        self.examples.push(SkippedLine {
            file: file.to_string(),
            line: no,
            reason,
            text,
        });
    }
}

/// Skip reasons for lines that were meant to apply: logged and reported each.
const LOUD: [&str; 4] = [
    "bad-expiry",
    "bad-header",
    "source-exception",
    "path-in-allowlist",
];
/// Most loud lines logged and reported per file and reason.
const LOUD_PER_FILE: u64 = 100;

/// Lend the parsed rules to an interim index and hand it to `early`, when they fit.
fn offer_interim(early: &mut dyn FnMut(Blocklist), runs: &mut Runs, g: &Gathered) {
    let Some((keys, recs)) = runs.lend() else {
        return;
    };
    let Some(index) = Interim::build(keys, recs) else {
        return;
    };
    let mut meta = Meta::empty();
    meta.categories = g.categories.clone();
    meta.lists = g.lists.clone();
    meta.notes = g.notes.clone();
    meta.paths = g.paths.values().cloned().collect();
    early(Blocklist::interim(index, meta));
}

/// Count the sorted entries into `meta` (entries, block, allow), and block entries
/// per category name.
fn count(
    runs: &mut Runs,
    categories: &[String],
    meta: &mut Meta,
) -> std::io::Result<BTreeMap<String, u64>> {
    let (mut entries, mut block_entries, mut allow_entries) = (0u64, 0u64, 0u64);
    let mut per_cat_id = vec![0u64; categories.len()];
    runs.each(&mut |_, v| {
        entries += 1;
        let f = value::flags(v);
        if f & (value::BLOCK_SELF | value::BLOCK_BELOW) != 0 {
            block_entries += 1;
            per_cat_id[value::category(v)] += 1;
        }
        if f & (value::ALLOW_SELF | value::ALLOW_BELOW) != 0 {
            allow_entries += 1;
        }
        Ok(())
    })?;
    meta.entries = entries;
    meta.block_entries = block_entries;
    meta.allow_entries = allow_entries;
    let mut per_category: BTreeMap<String, u64> = BTreeMap::new();
    for (id, n) in per_cat_id.into_iter().enumerate() {
        if n > 0 {
            *per_category.entry(categories[id].clone()).or_default() += n;
        }
    }
    Ok(per_category)
}

fn rel_name(dir: &Path, file: &Path) -> String {
    file.strip_prefix(dir)
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The directory of `out` (`.` for a bare file name) and its file name: temporary
/// files go beside the output, named after it.
fn dir_and_name(out: &Path) -> (PathBuf, String) {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fname = out
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| "list.fst".into());
    (dir, fname)
}

/// Write a list: temp file, fsync, rename, fsync the dir. `each` must call `insert`
/// with every key, sorted and distinct, and its value.
pub fn write_atomically(
    out: &Path,
    meta: &Meta,
    each: impl FnOnce(&mut dyn FnMut(&[u8], u64) -> io::Result<()>) -> io::Result<()>,
) -> Result<u64, CompileError> {
    let werr = |source| CompileError::Write {
        path: out.to_path_buf(),
        source,
    };
    let (dir, fname) = dir_and_name(out);
    let tmp = dir.join(format!(
        ".{fname}.tmp-{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> io::Result<u64> {
        let f = File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        write_list(&mut w, meta, |hw| {
            let mut b = fst::MapBuilder::new(BufWriter::with_capacity(1 << 16, hw))
                .map_err(io::Error::other)?;
            each(&mut |k, v| b.insert(k, v).map_err(io::Error::other))?;
            let mut inner = b.into_inner().map_err(io::Error::other)?;
            inner.flush()
        })?;
        w.flush()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        let len = f.metadata()?.len();
        fs::rename(&tmp, out)?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(len)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(werr)
}

#[cfg(test)]
mod own_exception_tests {
    use super::*;

    #[test]
    fn own_exceptions_take_out_what_they_cover() {
        let mut own = OwnExceptions::default();
        own.allows.insert("all.top".into(), Scope::Subtree);
        own.allows.insert("self.top".into(), Scope::Exact);
        own.allows.insert("below.top".into(), Scope::Below);
        own.above.insert("top".into());
        // Covered by an exception above: nothing left.
        assert_eq!(own.narrow("a.all.top", Scope::Subtree), None);
        assert_eq!(own.narrow("a.below.top", Scope::Exact), None);
        // At the name itself: what the exception does not cover is left.
        assert_eq!(own.narrow("all.top", Scope::Subtree), None);
        assert_eq!(own.narrow("self.top", Scope::Subtree), Some(Scope::Below));
        assert_eq!(own.narrow("self.top", Scope::Exact), None);
        assert_eq!(own.narrow("below.top", Scope::Subtree), Some(Scope::Exact));
        assert_eq!(own.narrow("below.top", Scope::Below), None);
        // Elsewhere: untouched.
        assert_eq!(
            own.narrow("other.top", Scope::Subtree),
            Some(Scope::Subtree)
        );
        // A rule over a name with an exception below it cannot leave that one out.
        assert!(own.carves("top", Scope::Subtree));
        assert!(!own.carves("top", Scope::Exact));
        assert!(!own.carves("other.top", Scope::Subtree));
    }
}
