//! The configuration reference, made from the config structs themselves: each key of
//! `raw.rs` (and `[[local_records]]` of `local.rs`) with its type, its default, its
//! meaning (the field's doc comment) and whether SIGHUP applies it
//! ([`super::diff::APPLIED_ON_RELOAD`]).
//!
//! `docs/configuration.md` and the man page `fanzha.toml(5)` are written from it
//! (`fanzha reference`, `fanzha man`), and a test holds the committed copies equal
//! to it: a key added, renamed or re-documented in the structs shows up in both, or
//! the test fails. The doc comments are read from the source, as clap reads a
//! command's: they are the one place a key is explained.

use std::fmt::Write as _;

use serde::{Serialize, de::DeserializeOwned};

use super::RawRecordSpec;
use super::diff::{APPLIED_WHILE_REPORTING, applies_on_reload};
use super::raw::*;

/// The source files holding the config structs.
const SOURCES: [&str; 2] = [include_str!("raw.rs"), include_str!("local.rs")];

/// One section of the file: `[server]`, `[[lists]]`, `[categories.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// As written in the file, brackets included.
    pub header: String,
    /// What the section is for (the struct's doc comment).
    pub doc: String,
    /// Its keys, in the order of the struct.
    pub keys: Vec<Key>,
}

/// One key.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// Its name in the file.
    pub name: String,
    /// Its TOML type, said for people ("string", "list of strings", "duration …").
    pub ty: String,
    /// Its default as TOML, "required", or "unset".
    pub default: String,
    /// What it means.
    pub doc: String,
    /// Whether SIGHUP applies a change of it (otherwise a restart does).
    pub reload: bool,
    /// SIGHUP applies it only while reporting runs (`[report] url` set).
    pub reload_while_reporting: bool,
}

/// A struct of the sources: its doc, whether serde fills missing keys, its fields.
struct Struct {
    doc: String,
    container_default: bool,
    fields: Vec<Field>,
}

/// A field: its name in the file, its Rust type, doc and serde attributes.
struct Field {
    name: String,
    ty: String,
    doc: String,
    attrs: String,
}

/// Every section of the file, in the order of [`RawConfig`].
pub fn sections() -> Vec<Section> {
    let structs = parse_structs();
    let mut out = Vec::new();
    let root = &structs["RawConfig"];
    let defaults = toml::Value::try_from(RawConfig::default()).expect("defaults serialise");
    for f in &root.fields {
        let (kind, inner) = section_kind(&f.ty);
        let header = match kind {
            Kind::Table => format!("[{}]", f.name),
            Kind::Array => format!("[[{}]]", f.name),
            Kind::Map => format!("[{}.NAME]", f.name),
            Kind::Key => continue,
        };
        let table_defaults = match kind {
            Kind::Table => defaults.get(&f.name).cloned(),
            _ => element_defaults(inner),
        };
        walk(&structs, inner, &f.name, header, table_defaults, &mut out);
    }
    out
}

/// Adds the section of struct `name` (at dotted `path`) and its sub-sections.
fn walk(
    structs: &std::collections::HashMap<String, Struct>,
    name: &str,
    path: &str,
    header: String,
    defaults: Option<toml::Value>,
    out: &mut Vec<Section>,
) {
    let s = &structs[name];
    let mut section = Section {
        header,
        doc: s.doc.clone(),
        keys: Vec::new(),
    };
    let mut subs = Vec::new();
    for f in &s.fields {
        let (kind, inner) = section_kind(&f.ty);
        let sub_path = format!("{path}.{}", f.name);
        match kind {
            Kind::Key => section.keys.push(Key {
                name: f.name.clone(),
                ty: type_name(&f.ty, &f.attrs),
                default: default_of(f, s.container_default, defaults.as_ref()),
                doc: f.doc.clone(),
                reload: applies_on_reload(&sub_path),
                reload_while_reporting: APPLIED_WHILE_REPORTING.contains(&sub_path.as_str()),
            }),
            Kind::Array => subs.push((format!("[[{sub_path}]]"), inner, sub_path)),
            Kind::Table | Kind::Map => subs.push((format!("[{sub_path}]"), inner, sub_path)),
        }
    }
    out.push(section);
    for (header, inner, sub_path) in subs {
        let sub_defaults = element_defaults(inner);
        walk(structs, inner, &sub_path, header, sub_defaults, out);
    }
}

/// How a field's type shows in the file.
enum Kind {
    /// A plain key.
    Key,
    /// `[name]` (a struct, or an optional one).
    Table,
    /// `[[name]]`.
    Array,
    /// `[name.NAME]`.
    Map,
}

/// The kind of a field of type `ty`, and the struct it holds.
fn section_kind(ty: &str) -> (Kind, &str) {
    fn raw(t: &str) -> Option<&str> {
        let t = t.trim_start_matches("super::");
        t.starts_with("Raw").then_some(t)
    }
    if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>'))
        && let Some(s) = raw(inner)
    {
        return (Kind::Array, s);
    }
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>'))
        && let Some(s) = raw(inner)
    {
        return (Kind::Table, s);
    }
    if let Some(inner) = ty
        .strip_prefix("BTreeMap<String, ")
        .and_then(|t| t.strip_suffix('>'))
        && let Some(s) = raw(inner)
    {
        return (Kind::Map, s);
    }
    match raw(ty) {
        Some(s) => (Kind::Table, s),
        None => (Kind::Key, ty),
    }
}

/// The type of a key, said for people.
fn type_name(ty: &str, attrs: &str) -> String {
    if attrs.contains("dur::secs") {
        return "duration (a number of seconds, or \"10s\", \"5m\", \"1d\")".into();
    }
    if attrs.contains("dur::millis") {
        return "duration (a number of milliseconds, or \"300ms\", \"2s\")".into();
    }
    let ty = ty.trim_start_matches("std::collections::");
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        return type_name(inner, attrs);
    }
    match ty {
        "String" => "string".into(),
        "bool" => "boolean".into(),
        "f64" => "number".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "integer".into(),
        "Vec<String>" => "list of strings".into(),
        "BTreeMap<String, String>" => "table of strings".into(),
        other => other.to_lowercase(),
    }
}

/// A key's default, as TOML: from the defaults serialised, else "required" for a
/// key serde does not fill, else "unset".
fn default_of(f: &Field, container_default: bool, defaults: Option<&toml::Value>) -> String {
    if let Some(v) = defaults.and_then(|d| d.get(&f.name)) {
        return v.to_string();
    }
    if container_default || f.attrs.contains("default") {
        // Not written when it has its type's default (skip_serializing_if).
        match f.ty.as_str() {
            "bool" => "false".into(),
            "String" => "\"\"".into(),
            t if t.starts_with("Vec<") => "[]".into(),
            _ => "unset".into(),
        }
    } else {
        "required".into()
    }
}

/// The defaults of an entry of an array or map section: the entry with only its
/// required keys (strings "", lists and numbers empty or 0) read and written back.
fn element_defaults(name: &str) -> Option<toml::Value> {
    fn round<T: DeserializeOwned + Serialize>(
        required: &[(&str, toml::Value)],
    ) -> Option<toml::Value> {
        let table: toml::Table = required
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let t: T = toml::Value::Table(table).try_into().ok()?;
        let mut v = toml::Value::try_from(t).ok()?;
        // The required keys' placeholders are not defaults.
        if let Some(t) = v.as_table_mut() {
            for (k, _) in required {
                t.remove(*k);
            }
        }
        Some(v)
    }
    let s = |k: &'static str| (k, toml::Value::String(String::new()));
    let list = |k: &'static str| (k, toml::Value::Array(Vec::new()));
    match name {
        "RawList" => round::<RawList>(&[s("path")]),
        "RawSource" => round::<RawSource>(&[s("url")]),
        "RawCategory" => round::<RawCategory>(&[]),
        "RawPlace" => round::<RawPlace>(&[s("cidr"), s("district")]),
        "RawAlert" => round::<RawAlert>(&[s("kind"), s("url")]),
        "RawPolicy" => round::<RawPolicy>(&[s("name")]),
        "RawForwardZone" => round::<RawForwardZone>(&[s("name"), list("upstreams")]),
        "RawPortMap" => round::<RawPortMap>(&[s("cidr"), ("port", toml::Value::Integer(0))]),
        "RawRecordSpec" => round::<RawRecordSpec>(&[s("name"), s("type"), s("data")]),
        _ => None,
    }
}

/// The `pub struct Raw…` of the sources, by name.
fn parse_structs() -> std::collections::HashMap<String, Struct> {
    let mut out = std::collections::HashMap::new();
    for src in SOURCES {
        let mut doc = Vec::<&str>::new();
        let mut attrs = String::new();
        let mut current: Option<(String, Struct)> = None;
        for line in src.lines() {
            let t = line.trim();
            if let Some(d) = t.strip_prefix("///") {
                doc.push(d.strip_prefix(' ').unwrap_or(d));
            } else if t.starts_with("#[") || (!attrs.is_empty() && !attrs.ends_with(']')) {
                attrs.push_str(t);
            } else if let Some(rest) = line.strip_prefix("pub struct Raw") {
                let name = format!("Raw{}", rest.split([' ', '{']).next().unwrap_or(""));
                let s = Struct {
                    doc: doc.join(" "),
                    container_default: attrs.contains("default"),
                    fields: Vec::new(),
                };
                current = Some((name, s));
                (doc, attrs) = (Vec::new(), String::new());
            } else if line == "}" {
                if let Some((name, s)) = current.take() {
                    out.insert(name, s);
                }
                (doc, attrs) = (Vec::new(), String::new());
            } else if let (Some((_, s)), Some(field)) = (current.as_mut(), t.strip_prefix("pub ")) {
                if let Some((name, ty)) = field.split_once(": ") {
                    let renamed = rename_of(&attrs).unwrap_or(name);
                    s.fields.push(Field {
                        name: renamed.to_string(),
                        ty: ty.trim_end_matches(',').to_string(),
                        doc: doc.join(" "),
                        attrs: std::mem::take(&mut attrs),
                    });
                }
                doc.clear();
            } else if !t.is_empty() {
                (doc, attrs) = (Vec::new(), String::new());
            }
        }
    }
    out
}

/// `rename = "x"` in a field's serde attributes.
fn rename_of(attrs: &str) -> Option<&str> {
    let rest = &attrs[attrs.find("rename = \"")? + "rename = \"".len()..];
    Some(&rest[..rest.find('"')?])
}

/// The text written before the keys, in both the Markdown and the man page.
const INTRO: &[&str] = &[
    "fanzha reads one TOML file: `/etc/fanzha/fanzha.toml` when it exists and no `--config` is given, else the embedded defaults (`config/fanzha.toml` of the source shows them in full). Every key is optional unless marked *required*; a misspelt key or a wrong value is refused at start, with the key, the value and the fix (`fanzha check-config FILE`).",
    "Relative paths are taken relative to the directory of the config file (with the embedded defaults: relative to the working directory). Durations are a number in the key's own unit or a text with its unit (\"300ms\", \"10s\", \"5m\", \"1d\").",
    "*SIGHUP* says whether `systemctl reload fanzha` (or `fanzha ctl reload`) applies a change of the key; the others need a restart, and `fanzha ctl reload` names every such key it did not apply.",
    "Without `--config`, `serve`, `lookup`, `compile`, `check-config` and `ctl` take `/etc/fanzha/fanzha.toml` when it exists, else the embedded defaults, and say which. `fanzha check-config` checks every key, then what `serve` would trip over (a list directory that does not exist, an address this machine does not have, a secret file it cannot read); the systemd unit runs it before every start. `fanzha ctl dump-config` prints the config the daemon runs with, every default filled in. Older spellings still read: `[report] ca` (now `tls_ca`), `[sinkhole] ipv6 = \"\"` (now `\"none\"`, with a warning).",
];

/// `docs/configuration.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration reference: fanzha.toml\n\n\
         <!-- Written by `fanzha reference` from src/config/raw.rs; a test holds it equal. Edit the doc comments there, then run `cargo run -q -- reference > docs/configuration.md`. -->\n\n",
    );
    for p in INTRO {
        let _ = writeln!(out, "{p}\n");
    }
    for s in sections() {
        let _ = writeln!(out, "## `{}`\n", s.header);
        if !s.doc.is_empty() && s.doc.trim_matches('`') != s.header {
            let _ = writeln!(out, "{}\n", s.doc);
        }
        out.push_str("| key | type | default | SIGHUP | meaning |\n|---|---|---|---|---|\n");
        for k in &s.keys {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                k.name,
                k.ty,
                md_default(&k.default),
                reload_word(k, "applied", "restart", "applied while reporting runs"),
                k.doc.replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    out
}

/// What SIGHUP does with key `k`, in the given words.
fn reload_word<'a>(k: &Key, applied: &'a str, restart: &'a str, reporting: &'a str) -> &'a str {
    match (k.reload, k.reload_while_reporting) {
        (true, _) => applied,
        (false, true) => reporting,
        (false, false) => restart,
    }
}

fn md_default(d: &str) -> String {
    match d {
        "required" => "*required*".into(),
        "unset" => "unset".into(),
        d => format!("`{}`", d.replace('|', "\\|")),
    }
}

/// `fanzha.toml(5)`, in roff.
pub fn man_page(version: &str) -> String {
    let mut out = format!(
        ".TH FANZHA.TOML 5 \"\" \"fanzha {version}\" \"File Formats\"\n.SH NAME\nfanzha.toml \\- configuration of the fanzha DNS resolver appliance\n.SH SYNOPSIS\n/etc/fanzha/fanzha.toml\n.SH DESCRIPTION\n"
    );
    for p in INTRO {
        let _ = writeln!(out, "{}\n.PP", roff(p));
    }
    out.push_str(".SH SECTIONS\n");
    for s in sections() {
        let _ = writeln!(out, ".SS {}", roff(&s.header));
        if !s.doc.is_empty() && s.doc.trim_matches('`') != s.header {
            let _ = writeln!(out, "{}", roff(&s.doc));
        }
        for k in &s.keys {
            let _ = writeln!(
                out,
                ".TP\n.B {}\n{}; default {}; {}.\n.br\n{}",
                roff(&k.name),
                roff(&k.ty),
                roff(&k.default),
                reload_word(
                    k,
                    "applied on SIGHUP",
                    "needs a restart",
                    "applied on SIGHUP while reporting runs"
                ),
                roff(&k.doc)
            );
        }
    }
    out.push_str(".SH SEE ALSO\n.BR fanzha (8),\n.BR fanzha-ctl (8)\n");
    out
}

/// Text made safe for roff (the man pages): backslashes and hyphens escaped,
/// Markdown's code ticks and emphasis dropped, a blank line a new paragraph, and no
/// line starting with a control character.
pub fn roff(text: &str) -> String {
    let text = text
        .replace('\\', "\\e")
        .replace(['`', '*'], "")
        .replace('-', "\\-");
    text.lines()
        .map(|l| match l.trim() {
            "" => ".PP".to_string(),
            t if t.starts_with(['.', '\'']) => format!("\\&{t}"),
            t => t.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
