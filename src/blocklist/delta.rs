//! Deltas: the names a publish added, changed and removed since a compiled base,
//! laid over the mapped base instead of recompiling it.
//!
//! A delta carries, for each name it touches, the name's whole merged value as the
//! full compile of the new lists gives it, with its ids moved into the base's
//! tables, extended by the categories, lists and notes the base lacked; 0 removes
//! the name. The overlay of a chain of deltas on the base therefore answers every
//! name as the full compile would ([`diff`] makes them, [`Blocklist::with_deltas`]
//! applies them). The overlay is the interim index (a hash of names as written),
//! consulted for each suffix while the base's automaton is walked.
//!
//! Pure: lists and deltas in, a list or a delta out.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::interim::Interim;
use super::name;
use super::runs::Rec;
use super::set::{Blocklist, ListInfo, Matcher, Meta, expiries};
use super::value;

/// A delta file's format version.
pub const FORMAT: u32 = 1;

/// The lengths of a list's tables (categories, lists, notes) that a delta extends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tables {
    /// Category names.
    pub categories: usize,
    /// Source lists.
    pub lists: usize,
    /// Notes.
    pub notes: usize,
}

impl Tables {
    fn of(m: &Meta) -> Tables {
        Tables {
            categories: m.categories.len(),
            lists: m.lists.len(),
            notes: m.notes.len(),
        }
    }
}

/// The changes of one publish since the state before it (the base, or the base with
/// the earlier deltas of its chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// [`FORMAT`].
    pub format: u32,
    /// The serial of the compiled base the chain stands on.
    pub base_serial: u64,
    /// That base file's sha256 (hex), binding the delta to it.
    pub base_sha256: String,
    /// The serial this delta applies to: the base's, or the previous delta's.
    pub from_serial: u64,
    /// This delta's serial.
    pub serial: u64,
    /// RFC 3339 build time.
    pub built_at: String,
    /// Build time, seconds since the epoch.
    pub built_unix: u64,
    /// The table lengths this delta's additions start at.
    pub tables_from: Tables,
    /// Categories appended to the table.
    pub categories: Vec<String>,
    /// Source lists appended to the table.
    pub lists: Vec<ListInfo>,
    /// Notes appended to the table.
    pub notes: Vec<String>,
    /// Name (normalised, no trailing dot) → its merged value in the extended tables;
    /// 0 removes the name.
    pub set: Vec<(String, u64)>,
    /// The whole path-rule table after this publish, when it changed (path rules
    /// carry their tables' names, not ids, so they are replaced whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<super::paths::PathHost>>,
}

/// Why a delta cannot be laid over a list, or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The list is not a compiled base (an interim index).
    #[error("deltas apply to a compiled list, not to the interim index of a first compile")]
    NoBase,
    /// The deltas do not follow one another from the base.
    #[error(
        "delta {serial} applies to serial {from}, but the list it would go over is at {at}; fetch the chain again from its base"
    )]
    Chain {
        /// The delta's serial.
        serial: u64,
        /// The serial it applies to.
        from: u64,
        /// The serial of what it would go over.
        at: u64,
    },
    /// The delta extends tables of other lengths than the list's.
    #[error("delta {serial} extends tables of {expected:?}, the list has {got:?}")]
    Tables {
        /// The delta's serial.
        serial: u64,
        /// What the delta expects.
        expected: Tables,
        /// What the list has.
        got: Tables,
    },
    /// A name or value the compiler would never write.
    #[error("delta {serial}: {what}")]
    Bad {
        /// The delta's serial.
        serial: u64,
        /// What is wrong.
        what: String,
    },
    /// The tables would outgrow what a value can address.
    #[error("the changes need more {0} than a list can hold; publish a full list")]
    Full(&'static str),
}

const BLOCK: u64 = value::BLOCK_SELF | value::BLOCK_BELOW;
const ALLOW: u64 = value::ALLOW_SELF | value::ALLOW_BELOW;

/// `v` with the fields its flags do not use cleared, so that two values that decide
/// alike compare equal.
fn canonical(v: u64) -> u64 {
    let f = value::flags(v);
    let block = f & BLOCK != 0;
    let allow = f & ALLOW != 0;
    if f == 0 {
        return 0;
    }
    value::pack(
        f,
        if block { value::category(v) as u64 } else { 0 },
        if block {
            value::block_list(v) as u64
        } else {
            0
        },
        if allow {
            value::allow_list(v) as u64
        } else {
            0
        },
        value::note(v) as u64,
    )
}

/// Whether a value points only into tables of lengths `t`.
fn in_tables(v: u64, t: Tables) -> bool {
    let f = value::flags(v);
    (f & BLOCK == 0 || (value::category(v) < t.categories && value::block_list(v) < t.lists))
        && (f & ALLOW == 0 || value::allow_list(v) < t.lists)
        && value::note(v) <= t.notes
}

impl Blocklist {
    /// This list's compiled base with `deltas` laid over it, in order: the first
    /// applies to the base's serial, each next one to the one before. Any deltas
    /// already over this list are replaced (the chain is applied whole, from the
    /// base). The base's mapping is shared, not copied.
    pub fn with_deltas(&self, deltas: &[Delta]) -> Result<Blocklist, DeltaError> {
        let (base, base_meta) = match &self.map {
            Matcher::Fst(m) => (m.clone(), Arc::new(self.meta.clone())),
            Matcher::Overlay {
                base, base_meta, ..
            } => (base.clone(), base_meta.clone()),
            Matcher::Interim(_) => return Err(DeltaError::NoBase),
        };
        let mut meta = (*base_meta).clone();
        let mut set: HashMap<&str, u64> = HashMap::new();
        let mut at = deltas.first().map_or(0, |d| d.base_serial);
        for d in deltas {
            if d.from_serial != at || d.base_serial != deltas[0].base_serial {
                return Err(DeltaError::Chain {
                    serial: d.serial,
                    from: d.from_serial,
                    at,
                });
            }
            extend(&mut meta, d)?;
            if let Some(p) = &d.paths {
                meta.paths.clone_from(p);
            }
            let t = Tables::of(&meta);
            for (n, v) in &d.set {
                let bad = |what: String| DeltaError::Bad {
                    serial: d.serial,
                    what,
                };
                if n.is_empty() || n.len() > 253 || name::normalize(n).ok().as_deref() != Some(n) {
                    return Err(bad(format!("{n:?} is not a normalised name")));
                }
                if !in_tables(*v, t) {
                    return Err(bad(format!("the value of {n} points outside the tables")));
                }
                set.insert(n, *v);
            }
            at = d.serial;
            meta.built_at.clone_from(&d.built_at);
            meta.built_unix = d.built_unix;
        }
        // Counts: the base's, moved by each name the deltas decide anew.
        let (mut entries, mut blocks, mut allows) = (
            base_meta.entries as i64,
            base_meta.block_entries as i64,
            base_meta.allow_entries as i64,
        );
        let mut keys = Vec::new();
        let mut recs = Vec::with_capacity(set.len());
        for (n, v) in set {
            let was = base.get(name::reversed_key(n));
            let flags = |x: Option<u64>| x.map_or(0, value::flags);
            let present = |x: Option<u64>| i64::from(x.is_some_and(|x| x != 0));
            let now = Some(v);
            entries += present(now) - present(was);
            blocks += i64::from(flags(now) & BLOCK != 0) - i64::from(flags(was) & BLOCK != 0);
            allows += i64::from(flags(now) & ALLOW != 0) - i64::from(flags(was) & ALLOW != 0);
            recs.push(Rec {
                off: keys.len() as u32,
                len: n.len() as u8,
                value: v,
            });
            keys.extend_from_slice(n.as_bytes());
        }
        let over =
            Interim::build(Arc::new(keys), Arc::new(recs)).ok_or(DeltaError::Full("names"))?;
        meta.entries = entries.max(0) as u64;
        meta.block_entries = blocks.max(0) as u64;
        meta.allow_entries = allows.max(0) as u64;
        let paths = if meta.paths == self.meta.paths {
            self.paths.clone()
        } else {
            Arc::new(super::paths::PathIndex::new(&meta.paths))
        };
        Ok(Blocklist {
            map: Matcher::Overlay {
                base,
                over,
                base_meta,
            },
            expiries: expiries(&meta),
            meta,
            path: self.path.clone(),
            file_len: self.file_len,
            fst_sum: self.fst_sum,
            paths,
        })
    }
}

/// Append `d`'s table additions to `meta`, which must have the lengths `d` starts at.
fn extend(meta: &mut Meta, d: &Delta) -> Result<(), DeltaError> {
    let got = Tables::of(meta);
    if got != d.tables_from {
        return Err(DeltaError::Tables {
            serial: d.serial,
            expected: d.tables_from,
            got,
        });
    }
    meta.categories.extend(d.categories.iter().cloned());
    meta.lists.extend(d.lists.iter().cloned());
    meta.notes.extend(d.notes.iter().cloned());
    let t = Tables::of(meta);
    if t.categories as u64 > value::MAX_CATEGORY + 1 || t.lists as u64 > value::MAX_LIST + 1 {
        return Err(DeltaError::Bad {
            serial: d.serial,
            what: "its tables outgrow what a value can address".into(),
        });
    }
    Ok(())
}

/// The tables of `prev`, extended as `new`'s values need: ids of `new` are moved
/// into them.
struct Translate<'a> {
    meta: Meta,
    from: Tables,
    new: &'a Meta,
    categories: HashMap<String, usize>,
    lists: HashMap<(String, String, &'static str, bool), usize>,
    notes: HashMap<String, usize>,
}

fn list_key(l: &ListInfo) -> (String, String, &'static str, bool) {
    (
        l.name.clone(),
        l.category.clone(),
        l.action.as_str(),
        l.allowlist,
    )
}

impl<'a> Translate<'a> {
    fn new(prev: &Meta, new: &'a Meta) -> Translate<'a> {
        Translate {
            from: Tables::of(prev),
            categories: prev
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i))
                .collect(),
            lists: prev
                .lists
                .iter()
                .enumerate()
                .map(|(i, l)| (list_key(l), i))
                .collect(),
            notes: prev
                .notes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            meta: prev.clone(),
            new,
        }
    }

    fn category(&mut self, id: usize) -> Result<u64, DeltaError> {
        let name = self.new.categories.get(id).cloned().unwrap_or_default();
        if let Some(&i) = self.categories.get(&name) {
            return Ok(i as u64);
        }
        let i = self.meta.categories.len();
        if i as u64 > value::MAX_CATEGORY {
            return Err(DeltaError::Full("categories"));
        }
        self.meta.categories.push(name.clone());
        self.categories.insert(name, i);
        Ok(i as u64)
    }

    fn list(&mut self, id: usize) -> Result<u64, DeltaError> {
        let Some(l) = self.new.lists.get(id) else {
            return Ok(0);
        };
        let key = list_key(l);
        if let Some(&i) = self.lists.get(&key) {
            return Ok(i as u64);
        }
        let i = self.meta.lists.len();
        if i as u64 > value::MAX_LIST {
            return Err(DeltaError::Full("source lists"));
        }
        self.meta.lists.push(l.clone());
        self.lists.insert(key, i);
        Ok(i as u64)
    }

    fn note(&mut self, id: usize) -> Result<u64, DeltaError> {
        if id == 0 {
            return Ok(0);
        }
        let text = self.new.notes.get(id - 1).cloned().unwrap_or_default();
        if let Some(&i) = self.notes.get(&text) {
            return Ok(i as u64 + 1);
        }
        let i = self.meta.notes.len();
        if i as u64 >= value::MAX_NOTE {
            return Err(DeltaError::Full("notes"));
        }
        self.meta.notes.push(text.clone());
        self.notes.insert(text, i);
        Ok(i as u64 + 1)
    }

    /// `new`'s value `v` in the extended tables (canonical).
    fn value(&mut self, v: u64) -> Result<u64, DeltaError> {
        let f = value::flags(v);
        if f == 0 {
            return Ok(0);
        }
        let block = f & BLOCK != 0;
        let allow = f & ALLOW != 0;
        Ok(value::pack(
            f,
            if block {
                self.category(value::category(v))?
            } else {
                0
            },
            if block {
                self.list(value::block_list(v))?
            } else {
                0
            },
            if allow {
                self.list(value::allow_list(v))?
            } else {
                0
            },
            self.note(value::note(v))?,
        ))
    }
}

/// The delta that takes `prev` (a base, or a base with deltas) to `new` (the full
/// compile of the new lists). Its serials, base checksum and build time are the
/// caller's to fill in.
pub fn diff(prev: &Blocklist, new: &Blocklist) -> Result<Delta, DeltaError> {
    let mut old: HashMap<String, u64> = prev.entries().into_iter().collect();
    let mut tr = Translate::new(prev.meta(), new.meta());
    let mut set = Vec::new();
    for (n, v) in new.entries() {
        let t = tr.value(v)?;
        let was = old.remove(&n).map_or(0, canonical);
        if was != t {
            set.push((n, t));
        }
    }
    let mut removed: Vec<(String, u64)> = old
        .into_iter()
        .filter(|&(_, v)| canonical(v) != 0)
        .map(|(n, _)| (n, 0))
        .collect();
    removed.sort_unstable();
    set.extend(removed);
    let from = tr.from;
    Ok(Delta {
        format: FORMAT,
        base_serial: 0,
        base_sha256: String::new(),
        from_serial: 0,
        serial: 0,
        built_at: new.meta().built_at.clone(),
        built_unix: new.meta().built_unix,
        tables_from: from,
        categories: tr.meta.categories[from.categories..].to_vec(),
        lists: tr.meta.lists[from.lists..].to_vec(),
        notes: tr.meta.notes[from.notes..].to_vec(),
        set,
        paths: (new.meta().paths != prev.meta().paths).then(|| new.meta().paths.clone()),
    })
}
