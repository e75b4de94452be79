//! Line parser for every list format fanzha reads, detected line by line.
//!
//! Pure code: it sees one line at a time (plus a little state for RPZ zone files) and
//! emits [`Item`]s. Nothing here touches the file system.
//!
//! | format | example | meaning |
//! |---|---|---|
//! | plain | `evil.top` | the name and everything below it (or only the name when the list says `match: exact`) |
//! | wildcard | `*.evil.top` | every name below `evil.top`, not `evil.top` itself |
//! | hosts | `0.0.0.0 evil.top www.evil.top` | each name, as a plain entry |
//! | adblock | `\|\|evil.top^`, `@@\|\|ok.top^` | the name and everything below (block / allow) |
//! | URL | `https://evil.top/`, `evil.top:8080` | the host, as a plain entry |
//! | URL with a path | `http://sites.example/shop-1/pay`, `https://h.example/kit/*` | that page (or pages) of the host: a path rule (see `paths`) |
//! | adblock with a path | `\|\|sites.example/shop-1^` | those pages of the host and its subdomains |
//! | uBlacklist | `*://*.evil.top/*` | the name and everything below |
//! | dnsmasq | `server=/evil.top/`, `address=/evil.top/0.0.0.0` | the name and everything below |
//! | RPZ | `evil.top CNAME .`, `*.evil.top CNAME .`, `ok.top CNAME rpz-passthru.` | exactly that owner name (RPZ semantics) |
//! | comments | `# …`, `! …`, `; …`, `[Adblock Plus 2.0]`, blank lines | ignored |
//!
//! Headers in comments set file-wide properties from that line on: `# category: loan`,
//! `# match: exact`, `# action: nxdomain` (or shadow, off; also with `!`).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::name::{self, NameError};

/// Lines longer than this are skipped without being parsed.
pub const MAX_LINE_LEN: usize = 4096;

/// Which names below (or at) the rule's own name the rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Only the name itself.
    Exact,
    /// The name and every name below it.
    Subtree,
    /// Every name strictly below the name (`*.evil.top`).
    Below,
}

/// Block or allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Polarity {
    /// The rule blocks.
    Block,
    /// The rule is an exception.
    Allow,
}

/// One rule found on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Normalised name.
    pub name: String,
    /// What the rule covers.
    pub scope: Scope,
    /// Block or allow.
    pub polarity: Polarity,
    /// Whether the syntax fixed the scope (`||`, `*.`, RPZ) so that a list's
    /// `match: exact` does not change it.
    pub explicit_scope: bool,
    /// An inline comment (`evil.top # case 2026-17`), kept for the warning page and
    /// the hit reports.
    pub note: Option<String>,
}

/// Why a line (or one name on it) was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Not a usable name.
    Name(NameErrorKey),
    /// A `/regex/` rule.
    Regex,
    /// An adblock pattern with wildcards inside labels, a path, or a prefix match.
    AdblockPattern,
    /// An adblock rule with a modifier fanzha cannot honour (`$dnstype`, `$client` …).
    AdblockModifier,
    /// An RPZ record that is not a policy fanzha can apply (local data, rpz-ip …).
    RpzUnsupported,
    /// Zone structure (SOA, NS, `$TTL`) in an RPZ file.
    ZoneRecord,
    /// `localhost`, `broadcasthost` and friends in a hosts file.
    HostsLocal,
    /// A dnsmasq line that forwards rather than blocks.
    DnsmasqForward,
    /// A line no format recognises.
    UnknownFormat,
    /// A line longer than [`MAX_LINE_LEN`].
    LineTooLong,
    /// Bytes that are not UTF-8 (binary junk).
    NotUtf8,
    /// An `expires=` that is not an RFC 3339 time (`2026-12-03T00:00:00Z`).
    BadExpiry,
}

/// [`NameError`] as an ordered key for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameErrorKey(pub &'static str);

impl From<NameError> for Skip {
    fn from(e: NameError) -> Self {
        Skip::Name(NameErrorKey(e.reason()))
    }
}

impl Skip {
    /// Stable short reason for counters, logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::Name(k) => k.0,
            Skip::Regex => "regex",
            Skip::AdblockPattern => "adblock-pattern",
            Skip::AdblockModifier => "adblock-modifier",
            Skip::RpzUnsupported => "rpz-unsupported",
            Skip::ZoneRecord => "zone-record",
            Skip::HostsLocal => "hosts-local",
            Skip::DnsmasqForward => "dnsmasq-forward",
            Skip::UnknownFormat => "unknown-format",
            Skip::LineTooLong => "line-too-long",
            Skip::NotUtf8 => "not-utf8",
            Skip::BadExpiry => "bad-expiry",
        }
    }
}

/// Something kept, but worth counting (`$important` ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Warn {
    /// An adblock modifier that does not change DNS blocking was ignored.
    ModifierIgnored,
}

impl Warn {
    /// Stable short reason.
    pub fn reason(self) -> &'static str {
        match self {
            Warn::ModifierIgnored => "modifier-ignored",
        }
    }
}

/// A file-wide header (`# category: loan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// The category of the rules that follow.
    Category(String),
    /// `exact` or `subtree` for plain entries that follow.
    Match(String),
    /// `sinkhole`, `nxdomain` or `refused` for the rules that follow.
    Action(String),
    /// The time (RFC 3339) after which the rules that follow stop applying:
    /// emergency entries that lapse without a new publish.
    Expires(String),
}

/// What a line yields; one line may yield several items (a hosts line with three names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A rule.
    Rule(Rule),
    /// A skipped line or name.
    Skip(Skip),
    /// A kept rule with a warning.
    Warn(Warn),
    /// A header.
    Header(Header),
    /// A rule for pages of a host, not the host.
    Path(PathItem),
}

/// How a rule's path covers a request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathMatch {
    /// The path itself; with any query unless the rule names one, then that query.
    Exact,
    /// Every path (and query) that starts with the rule's (`…/path*`, adblock
    /// `||host/path`).
    Prefix,
    /// The rule's path followed by the end or a separator (adblock `^`: not a
    /// letter, digit or one of `_-.%`), so `/pay^` covers `/pay`, `/pay/x`,
    /// `/pay?id=1`, not `/payment`.
    Separator,
}

/// Which schemes a rule was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schemes {
    /// `http://…`
    Http,
    /// `https://…`
    Https,
    /// Adblock `||…`, `*://…`, or no scheme: both.
    Both,
}

impl Schemes {
    /// Whether a request over TLS (`tls`) or plain HTTP is covered.
    pub fn covers(self, tls: bool) -> bool {
        match self {
            Schemes::Http => !tls,
            Schemes::Https => tls,
            Schemes::Both => true,
        }
    }
    /// Whether the rule can be met over HTTPS (needs a managed device to enforce).
    pub fn https(self) -> bool {
        self != Schemes::Http
    }
}

/// A rule for pages of a host (`http://host/path`, `||host/path^`): see `paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathItem {
    /// The host (normalised).
    pub host: String,
    /// Whether it covers the names below the host too.
    pub subtree: bool,
    /// The path and query as written (normalised by the compile).
    pub path: String,
    /// How the path covers a request's.
    pub how: PathMatch,
    /// The schemes it was written for.
    pub schemes: Schemes,
    /// The inline comment.
    pub note: Option<String>,
}

/// Per-file state of the parser.
#[derive(Debug, Default, Clone)]
pub struct Parser {
    /// Inside an RPZ record continued over several lines with `( … )`.
    in_parens: bool,
    /// RPZ `$ORIGIN`, lower-case, without trailing dot.
    origin: Option<String>,
    /// Last RPZ owner name seen (for lines that start with blanks).
    seen_zone: bool,
}

const HOSTS_LOCAL: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

const RR_TYPES: &[&str] = &[
    "A", "AAAA", "CNAME", "NS", "SOA", "TXT", "MX", "PTR", "SRV", "DNAME", "HTTPS", "SVCB",
];

fn is_rr_type(t: &str) -> bool {
    RR_TYPES.iter().any(|r| r.eq_ignore_ascii_case(t))
}

fn is_class(t: &str) -> bool {
    t.eq_ignore_ascii_case("IN") || t.eq_ignore_ascii_case("CH") || t.eq_ignore_ascii_case("HS")
}

impl Parser {
    /// A parser for a new file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inside a zone record continued over lines (`SOA ( …`): the next lines belong to
    /// it, whatever they look like.
    pub fn in_record(&self) -> bool {
        self.in_parens
    }

    /// Parse one raw line (bytes, as read). Calls `emit` for each item.
    pub fn parse_bytes(&mut self, raw: &[u8], emit: &mut impl FnMut(Item)) {
        if raw.len() > MAX_LINE_LEN {
            emit(Item::Skip(Skip::LineTooLong));
            return;
        }
        match std::str::from_utf8(raw) {
            Ok(s) => self.parse_line(s, emit),
            Err(_) => emit(Item::Skip(Skip::NotUtf8)),
        }
    }

    /// Parse one line of text. Calls `emit` for each item.
    pub fn parse_line(&mut self, line: &str, emit: &mut impl FnMut(Item)) {
        let line = line.trim_matches(|c: char| c == '\u{feff}' || c.is_whitespace());
        if line.contains('\0') {
            emit(Item::Skip(Skip::NotUtf8));
            return;
        }
        if self.in_parens {
            if strip_zone_comment(line).contains(')') {
                self.in_parens = false;
            }
            return;
        }
        if line.is_empty() {
            return;
        }
        match line.as_bytes()[0] {
            b'#' | b'!' => {
                if let Some(h) = parse_header(&line[1..]) {
                    emit(Item::Header(h));
                }
                return;
            }
            b';' => return,
            b'[' if line.ends_with(']') => return,
            b'$' => {
                self.directive(line, emit);
                return;
            }
            _ => {}
        }
        // Inline comment: whitespace then `#`.
        let (body, note) = split_inline_comment(line);
        if let Some(rest) = body.strip_prefix("@@") {
            adblock(rest, Polarity::Allow, note, emit);
        } else if let Some(rest) = body.strip_prefix("||") {
            adblock(rest, Polarity::Block, note, emit);
        } else if body.starts_with('/') && (body.ends_with('/') || body.contains("/$")) {
            emit(Item::Skip(Skip::Regex));
        } else if let Some(rest) = body
            .strip_prefix("server=/")
            .or_else(|| body.strip_prefix("local=/"))
        {
            dnsmasq(rest, true, note, emit);
        } else if let Some(rest) = body.strip_prefix("address=/") {
            dnsmasq(rest, false, note, emit);
        } else if body.contains("://") {
            url(body, note, emit);
        } else {
            self.tokens(body, note, emit);
        }
    }

    fn directive(&mut self, line: &str, emit: &mut impl FnMut(Item)) {
        let line = strip_zone_comment(line);
        let mut it = line.split_whitespace();
        let d = it.next().unwrap_or("");
        if d.eq_ignore_ascii_case("$ORIGIN") {
            self.seen_zone = true;
            self.origin = it
                .next()
                .map(|o| o.trim_end_matches('.').to_ascii_lowercase());
        } else if d.eq_ignore_ascii_case("$TTL") {
            self.seen_zone = true;
        } else {
            // $INCLUDE and friends: cannot be honoured.
            emit(Item::Skip(Skip::RpzUnsupported));
        }
    }

    fn tokens(&mut self, body: &str, note: Option<&str>, emit: &mut impl FnMut(Item)) {
        let body = if self.seen_zone {
            strip_zone_comment(body)
        } else {
            body
        };
        let mut toks = body.split_whitespace();
        let first = toks.next().unwrap_or("");
        let second = toks.clone().next();
        let Some(second) = second else {
            single(first, note, emit);
            return;
        };
        // hosts: an address then names.
        if first.parse::<IpAddr>().is_ok()
            || first
                .split('%')
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some()
        {
            for host in toks {
                if HOSTS_LOCAL.iter().any(|l| l.eq_ignore_ascii_case(host)) {
                    emit(Item::Skip(Skip::HostsLocal));
                    continue;
                }
                plain(host, note, emit);
            }
            return;
        }
        // RPZ / zone record.
        let all: Vec<&str> = body.split_whitespace().collect();
        if let Some(tpos) = all.iter().position(|t| is_rr_type(t)) {
            self.seen_zone = true;
            self.rpz(&all, tpos, note, body, emit);
            return;
        }
        let _ = second;
        emit(Item::Skip(Skip::UnknownFormat));
    }

    fn rpz(
        &mut self,
        all: &[&str],
        tpos: usize,
        _comment: Option<&str>,
        body: &str,
        emit: &mut impl FnMut(Item),
    ) {
        let rtype = all[tpos].to_ascii_uppercase();
        if rtype == "SOA" || rtype == "NS" {
            if body.contains('(') && !body.contains(')') {
                self.in_parens = true;
            }
            emit(Item::Skip(Skip::ZoneRecord));
            return;
        }
        // Owner is the first token unless the line starts with TTL/class/type.
        let owner = all[0];
        if tpos == 0 || is_class(owner) || owner.bytes().all(|b| b.is_ascii_digit()) || owner == "@"
        {
            emit(Item::Skip(Skip::ZoneRecord));
            return;
        }
        for t in &all[1..tpos] {
            if !(is_class(t) || t.bytes().all(|b| b.is_ascii_digit())) {
                emit(Item::Skip(Skip::UnknownFormat));
                return;
            }
        }
        let rdata = all.get(tpos + 1).copied().unwrap_or("");
        // The RPZ action, kept as the rule's note (see [`rpz_action`]): it travels
        // with the rule through the compiled list to the answer.
        let lower_rdata = rdata.to_ascii_lowercase();
        let (polarity, action): (Polarity, String) = match (rtype.as_str(), lower_rdata.as_str()) {
            ("CNAME", ".") => (Polarity::Block, "rpz=nxdomain".into()),
            ("CNAME", "*.") => (Polarity::Block, "rpz=nodata".into()),
            ("CNAME", "rpz-drop.") => (Polarity::Block, "rpz=drop".into()),
            ("CNAME", "rpz-tcp-only.") => (Polarity::Block, "rpz=tcp-only".into()),
            ("CNAME", "rpz-passthru.") => (Polarity::Allow, String::new()),
            // Local data: a CNAME to a name, addresses, text.
            ("CNAME", t) if name::normalize(t.trim_end_matches('.')).is_ok() => (
                Polarity::Block,
                format!("rpz=data CNAME {}", t.trim_end_matches('.')),
            ),
            ("A", a) if a.parse::<std::net::Ipv4Addr>().is_ok() => {
                (Polarity::Block, format!("rpz=data A {a}"))
            }
            ("AAAA", a) if a.parse::<std::net::Ipv6Addr>().is_ok() => {
                (Polarity::Block, format!("rpz=data AAAA {a}"))
            }
            ("TXT", _) if !rdata.is_empty() => {
                let text = all[tpos + 1..].join(" ");
                (
                    Polarity::Block,
                    format!("rpz=data TXT {}", text.replace('|', " ")),
                )
            }
            _ => {
                emit(Item::Skip(Skip::RpzUnsupported));
                return;
            }
        };
        let note = (!action.is_empty()).then_some(action.as_str());
        let lower = owner.to_ascii_lowercase();
        let mut owner_name = lower.as_str();
        if let Some(abs) = owner_name.strip_suffix('.') {
            owner_name = abs;
            if let Some(origin) = &self.origin
                && let Some(rel) = owner_name.strip_suffix(origin.as_str())
            {
                owner_name = rel.strip_suffix('.').unwrap_or(rel);
            }
        }
        if owner_name == "*" {
            // The root wildcard: every name (a walled garden, whose passthru rules
            // say what stays reachable). The root's own rule; the compiler takes
            // it from the operator's own lists only.
            return push_named(Ok(String::new()), Scope::Below, polarity, true, note, emit);
        }
        if owner_name.split('.').any(|l| l.starts_with("rpz-")) {
            // rpz-ip, rpz-nsdname, rpz-client-ip triggers.
            emit(Item::Skip(Skip::RpzUnsupported));
            return;
        }
        let (scope, n) = match owner_name.strip_prefix("*.") {
            Some(rest) => (Scope::Below, rest),
            None => (Scope::Exact, owner_name),
        };
        push_rule(n, scope, polarity, true, note, emit);
    }
}

/// A line that is only a host name (`evil.top`, `Evil-Shop.top\r`), as most lines of
/// big lists are. For such a line [`Parser::parse_bytes`] yields exactly one plain
/// block rule for the name, lower-cased (unless the parser is [`Parser::in_record`]);
/// the compiler takes it directly, without the parser's general path. Returns the
/// name as written; `None` for anything else (which then goes through the parser).
pub fn bare_name(line: &[u8]) -> Option<&str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > name::MAX_NAME_LEN || line.first()? == &b'.' || line.last()? == &b'.' {
        return None;
    }
    // Cheap checks that do not depend on where the labels end (their lengths would
    // mispredict a branch per label): the classes seen, and no two dots in a row.
    let seen = line.iter().fold(0u8, |s, &b| s | BYTE_CLASS[b as usize]);
    // Any other byte refers the line to the parser; so do digits and dots only,
    // which might be an IPv4 address.
    if seen & OTHER != 0 || seen & NAME == 0 || line.windows(2).any(|w| w == b"..") {
        return None;
    }
    if line.len() > name::MAX_LABEL_LEN
        && line
            .split(|&b| b == b'.')
            .any(|l| l.len() > name::MAX_LABEL_LEN)
    {
        return None;
    }
    // SAFETY: every byte is ASCII (its class is DOT, DIGIT or NAME), so valid UTF-8.
    // (The checked conversion costs a tenth of a big list's parse.)
    Some(unsafe { std::str::from_utf8_unchecked(line) })
}

const DOT: u8 = 1;
const DIGIT: u8 = 2;
const NAME: u8 = 4;
const OTHER: u8 = 8;

/// Class of each byte for [`bare_name`]: a dot, a digit, another host-name byte
/// (letter, `-`, `_`) or anything else.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b == b'.' {
            DOT
        } else if b.is_ascii_digit() {
            DIGIT
        } else if b.is_ascii_alphabetic() || b == b'-' || b == b'_' {
            NAME
        } else {
            OTHER
        };
        i += 1;
    }
    t
};

fn strip_zone_comment(s: &str) -> &str {
    match s.find(';') {
        Some(i) => s[..i].trim_end(),
        None => s,
    }
}

fn parse_header(text: &str) -> Option<Header> {
    let text = text.trim_start_matches(['#', '!']).trim();
    let (k, v) = text.split_once(':')?;
    let v = v.trim();
    if v.is_empty() || v.contains(char::is_whitespace) {
        return None;
    }
    match k.trim().to_ascii_lowercase().as_str() {
        "category" => Some(Header::Category(v.to_ascii_lowercase())),
        "match" => Some(Header::Match(v.to_ascii_lowercase())),
        "action" => Some(Header::Action(v.to_ascii_lowercase())),
        "expires" => Some(Header::Expires(v.to_string())),
        _ => None,
    }
}

fn split_inline_comment(line: &str) -> (&str, Option<&str>) {
    let b = line.as_bytes();
    for i in 1..b.len() {
        if b[i] == b'#' && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
            let note = line[i + 1..].trim();
            return (line[..i].trim_end(), (!note.is_empty()).then_some(note));
        }
    }
    (line, None)
}

fn push_rule(
    n: &str,
    scope: Scope,
    polarity: Polarity,
    explicit: bool,
    note: Option<&str>,
    emit: &mut impl FnMut(Item),
) {
    push_named(name::normalize(n), scope, polarity, explicit, note, emit);
}

/// [`push_rule`] for a name already normalised (or refused).
fn push_named(
    name: Result<String, name::NameError>,
    scope: Scope,
    polarity: Polarity,
    explicit: bool,
    note: Option<&str>,
    emit: &mut impl FnMut(Item),
) {
    let Ok(note) = note.map(with_expiry_first).transpose() else {
        return emit(Item::Skip(Skip::BadExpiry));
    };
    match name {
        Ok(name) => emit(Item::Rule(Rule {
            name,
            scope,
            polarity,
            explicit_scope: explicit,
            note,
        })),
        Err(e) => emit(Item::Skip(e.into())),
    }
}

/// A note with its `expires=TIME` (if any) checked and moved to the front, so that
/// clipping a long note never cuts it off.
fn with_expiry_first(note: &str) -> Result<String, ()> {
    let Some(at) = expiry_in(note) else {
        return Ok(crate::text::clip(note, 200).to_string());
    };
    let ts = at.ok_or(())?;
    let rest: Vec<&str> = note
        .split_whitespace()
        .filter(|w| !w.starts_with("expires="))
        .collect();
    let rest = crate::text::clip(&rest.join(" "), 160).to_string();
    Ok(if rest.is_empty() {
        format!("expires={ts}")
    } else {
        format!("expires={ts} {rest}")
    })
}

/// The `expires=TIME` of a note: `None` without one, `Some(None)` when TIME is not
/// RFC 3339, else the time as written.
pub fn expiry_in(note: &str) -> Option<Option<&str>> {
    let w = note
        .split_whitespace()
        .find_map(|w| w.strip_prefix("expires="))?;
    Some(expiry_unix(w).map(|_| w))
}

/// Seconds since the epoch of an RFC 3339 time (`None`: not one, or before 1970).
/// Any offset: `2030-12-03T08:00:00+08:00` is the same instant as
/// `2030-12-03T00:00:00Z`. A time without an offset (`2030-12-03T08:00:00`, or a
/// date alone, its midnight) is taken as UTC, as before offsets were read.
pub fn expiry_unix(ts: &str) -> Option<u64> {
    let t = match ts.parse::<jiff::Timestamp>() {
        Ok(t) => t,
        Err(_) => {
            // No offset at all; `Timestamp` refuses those, `DateTime` ignores one.
            if ts.contains(['+', 'Z', 'z']) || ts.rfind('-').is_some_and(|i| i > 10) {
                return None;
            }
            let dt = ts.parse::<jiff::civil::DateTime>().ok()?;
            jiff::tz::Offset::UTC.to_timestamp(dt).ok()?
        }
    };
    u64::try_from(t.as_second()).ok()
}

/// A plain name, possibly written `*.name` or `name:port`.
fn plain(tok: &str, note: Option<&str>, emit: &mut impl FnMut(Item)) {
    if let Some(rest) = tok.strip_prefix("*.") {
        push_rule(rest, Scope::Below, Polarity::Block, true, note, emit);
        return;
    }
    if tok.contains(['*', '^', '|']) || tok.starts_with('.') {
        emit(Item::Skip(Skip::AdblockPattern));
        return;
    }
    push_rule(tok, Scope::Subtree, Polarity::Block, false, note, emit);
}

fn single(tok: &str, note: Option<&str>, emit: &mut impl FnMut(Item)) {
    if tok.parse::<IpAddr>().is_ok() {
        emit(Item::Skip(Skip::Name(NameErrorKey(
            NameError::IpAddress.reason(),
        ))));
        return;
    }
    if tok.contains('/') || host_port(tok).is_some() {
        url(tok, note, emit);
        return;
    }
    plain(tok, note, emit);
}

/// `host:port` → host, when the part after the colon is a port number.
fn host_port(tok: &str) -> Option<&str> {
    let (h, p) = tok.rsplit_once(':')?;
    (!h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then_some(h)
}

fn url(text: &str, note: Option<&str>, emit: &mut impl FnMut(Item)) {
    let (scheme, after_scheme) = match text.find("://") {
        Some(i) => (&text[..i], &text[i + 3..]),
        None => ("", text),
    };
    let end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let mut authority = &after_scheme[..end];
    let rest = &after_scheme[end..];
    if let Some(i) = authority.rfind('@') {
        authority = &authority[i + 1..];
    }
    if authority.starts_with('[') {
        emit(Item::Skip(NameError::IpAddress.into()));
        return;
    }
    let host = host_port(authority).unwrap_or(authority);
    let (host, subtree) = match host.strip_prefix("*.") {
        // uBlacklist `*://*.d/*` means d and every subdomain.
        Some(h) => (h, true),
        None => (host, false),
    };
    if host.contains('*') {
        emit(Item::Skip(Skip::AdblockPattern));
        return;
    }
    let rest = rest.split('#').next().unwrap_or("");
    if rest.is_empty() || rest == "/" || rest == "/*" {
        push_rule(host, Scope::Subtree, Polarity::Block, subtree, note, emit);
        return;
    }
    let (path, how) = match rest.strip_suffix('*') {
        Some(p) => (p, PathMatch::Prefix),
        None => (rest, PathMatch::Exact),
    };
    if path.contains('*') {
        emit(Item::Skip(Skip::AdblockPattern));
        return;
    }
    let schemes = match scheme.to_ascii_lowercase().as_str() {
        "http" => Schemes::Http,
        "https" => Schemes::Https,
        _ => Schemes::Both,
    };
    push_path(host, subtree, path, how, schemes, note, emit);
}

/// A path rule of `host`, once the host is a name and the note's expiry reads.
fn push_path(
    host: &str,
    subtree: bool,
    path: &str,
    how: PathMatch,
    schemes: Schemes,
    note: Option<&str>,
    emit: &mut impl FnMut(Item),
) {
    let Ok(note) = note.map(with_expiry_first).transpose() else {
        return emit(Item::Skip(Skip::BadExpiry));
    };
    match name::normalize(host) {
        Ok(host) => emit(Item::Path(PathItem {
            host,
            subtree,
            path: if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            },
            how,
            schemes,
            note,
        })),
        Err(e) => emit(Item::Skip(e.into())),
    }
}

fn adblock(rest: &str, polarity: Polarity, note: Option<&str>, emit: &mut impl FnMut(Item)) {
    let (pattern, modifiers) = match rest.split_once('$') {
        Some((p, m)) => (p, Some(m)),
        None => (rest, None),
    };
    let mut warn = false;
    if let Some(mods) = modifiers {
        for m in mods.split(',') {
            match m.trim().trim_start_matches('~') {
                "important" | "all" | "document" | "doc" | "third-party" | "3p" | "first-party"
                | "1p" | "popup" => {
                    warn = true;
                }
                _ => {
                    emit(Item::Skip(Skip::AdblockModifier));
                    return;
                }
            }
        }
    }
    let pattern = pattern.strip_prefix("||").unwrap_or(pattern);
    if let Some(slash) = pattern.find('/')
        && polarity == Polarity::Block
    {
        return adblock_path(&pattern[..slash], &pattern[slash..], warn, note, emit);
    }
    let p = pattern
        .strip_suffix("^|")
        .or_else(|| pattern.strip_suffix('^'))
        .unwrap_or(pattern);
    let p = p.strip_prefix("*.").unwrap_or(p);
    if p.is_empty()
        || p.contains(['*', '^', '|', '/', ':'])
        || p.ends_with('.')
        || p.starts_with('.')
    {
        emit(Item::Skip(Skip::AdblockPattern));
        return;
    }
    if warn {
        emit(Item::Warn(Warn::ModifierIgnored));
    }
    push_rule(p, Scope::Subtree, polarity, true, note, emit);
}

/// `||host/path…`: the adblock path spellings (`^` a separator or the end, `|` the
/// end, `*` at the end or nothing: a prefix).
fn adblock_path(
    host: &str,
    path: &str,
    warn: bool,
    note: Option<&str>,
    emit: &mut impl FnMut(Item),
) {
    let host = host.strip_prefix("*.").unwrap_or(host);
    let (path, how) = if let Some(p) = path.strip_suffix("^|").or_else(|| path.strip_suffix('^')) {
        (p, PathMatch::Separator)
    } else if let Some(p) = path.strip_suffix('|') {
        (p, PathMatch::Exact)
    } else {
        (path.strip_suffix('*').unwrap_or(path), PathMatch::Prefix)
    };
    if host.is_empty() || host.contains(['*', '^', '|', ':']) || path.contains(['*', '^', '|']) {
        emit(Item::Skip(Skip::AdblockPattern));
        return;
    }
    if warn {
        emit(Item::Warn(Warn::ModifierIgnored));
    }
    push_path(host, true, path, how, Schemes::Both, note, emit);
}

fn dnsmasq(rest: &str, is_server: bool, note: Option<&str>, emit: &mut impl FnMut(Item)) {
    // `server=/a/b/UPSTREAM` and `address=/a/b/ADDR`: the last part is the target.
    let Some((domains, target)) = rest.rsplit_once('/') else {
        emit(Item::Skip(Skip::UnknownFormat));
        return;
    };
    let blocks = if is_server {
        target.is_empty()
    } else {
        matches!(target, "" | "0.0.0.0" | "::" | "127.0.0.1" | "::1" | "#")
    };
    if !blocks {
        emit(Item::Skip(Skip::DnsmasqForward));
        return;
    }
    for d in domains.split('/').filter(|d| !d.is_empty()) {
        let d = d
            .strip_prefix("*.")
            .or_else(|| d.strip_prefix('.'))
            .unwrap_or(d);
        push_rule(d, Scope::Subtree, Polarity::Block, true, note, emit);
    }
}

#[cfg(test)]
mod tests;

/// What an RPZ rule does (its note, written by the parser): `None` for any other note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpzAction<'a> {
    /// `CNAME .`: NXDOMAIN.
    Nxdomain,
    /// `CNAME *.`: NOERROR without records.
    Nodata,
    /// `CNAME rpz-drop.`: no answer at all.
    Drop,
    /// `CNAME rpz-tcp-only.`: TC over UDP; over TCP, resolved as usual.
    TcpOnly,
    /// Local data: `TYPE RDATA` records joined by `|` (`A 192.0.2.1|TXT "x"`).
    Data(&'a str),
}

/// The RPZ action a rule's note carries.
pub fn rpz_action(note: &str) -> Option<RpzAction<'_>> {
    let a = note.strip_prefix("rpz=")?;
    Some(match a {
        "nxdomain" => RpzAction::Nxdomain,
        "nodata" => RpzAction::Nodata,
        "drop" => RpzAction::Drop,
        "tcp-only" => RpzAction::TcpOnly,
        _ => RpzAction::Data(a.strip_prefix("data ")?),
    })
}
