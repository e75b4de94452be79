//! Sorting the compiled rules within a memory budget.
//!
//! Rules arrive in file order. Their names go into one arena with fixed-size records
//! beside them (about 16 bytes plus the name per rule, against ~80 for a boxed key per
//! rule). Sorting first turns each name into its key in place (labels reversed, see
//! [`name::reverse_labels`]): until then an interim index can look the names up as
//! written (see [`Runs::lend`]). When the arena outgrows the budget, the rules so far
//! are sorted, merged per key and written to a temporary run file next to the output;
//! at the end the runs are merged in order. Memory therefore stays near the budget
//! whatever the size of the lists, and a list that fits (1M names do) never touches
//! the disk.
//!
//! Merging rules of one name: the flags are or-ed; the first rule (in file order) that
//! blocks names the category, list and note; the first that allows names the allow
//! list. [`combine`] does this for two values, earlier first, so merging within a run
//! and across runs (run 0 holds the earliest rules) give the same result.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::name;
use super::value;

/// One rule: where its key sits in the arena, and its value.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    /// Offset of the key in the arena.
    pub off: u32,
    /// Length of the key.
    pub len: u8,
    /// Packed value (see `value`).
    pub value: u64,
}

const BLOCK: u64 = value::BLOCK_SELF | value::BLOCK_BELOW;
const ALLOW: u64 = value::ALLOW_SELF | value::ALLOW_BELOW;

/// Merge the value of a later rule (or run) into an earlier one.
pub fn combine(earlier: u64, later: u64) -> u64 {
    let (fa, fb) = (value::flags(earlier), value::flags(later));
    let block_from = if fa & BLOCK != 0 { earlier } else { later };
    let allow_from = if fa & ALLOW != 0 { earlier } else { later };
    value::pack(
        fa | fb,
        value::category(block_from) as u64,
        value::block_list(block_from) as u64,
        value::allow_list(allow_from) as u64,
        value::note(block_from) as u64,
    )
}

/// Rules lent to an interim index: the names, and the records pointing into them.
pub type Lent = (Arc<Vec<u8>>, Arc<Vec<Rec>>);

/// Rules being collected, sorted and merged within a memory budget.
pub struct Runs {
    /// Names; keys once sorted.
    arena: Vec<u8>,
    recs: Vec<Rec>,
    /// Names and records while lent to an interim index (see [`Runs::lend`]).
    lent: Option<Lent>,
    budget: usize,
    dir: PathBuf,
    stem: String,
    files: Vec<PathBuf>,
}

impl Runs {
    /// Collect rules, spilling sorted runs to `dir` (named after `stem`) whenever the
    /// keys and records in memory exceed `budget` bytes.
    pub fn new(dir: &Path, stem: &str, budget: usize) -> Runs {
        Runs {
            arena: Vec::new(),
            recs: Vec::new(),
            lent: None,
            budget: budget.max(4096),
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            files: Vec::new(),
        }
    }

    /// Reserve room for the rules of lists of `input_bytes` bytes in all (within the
    /// budget), so that the arena is not copied as it grows. Untouched room costs
    /// address space only.
    pub fn reserve_for(&mut self, input_bytes: u64) {
        let bytes = (input_bytes as usize).min(self.budget);
        // A line of a big list is about 20 bytes: one record per 16 bytes is ample.
        let recs = (input_bytes as usize / 16).min(self.budget / size_of::<Rec>());
        self.arena.reserve(bytes);
        self.recs.reserve(recs);
    }

    /// Add one rule for a normalised `name` (at most 253 bytes).
    pub fn push_name(&mut self, name: &str, value: u64) -> io::Result<()> {
        debug_assert!(name.len() <= u8::MAX as usize);
        debug_assert!(self.lent.is_none(), "no rule may be added once lent");
        if self.arena.len() + name.len() > u32::MAX as usize
            || self.arena.len() + self.recs.len() * size_of::<Rec>() > self.budget
        {
            self.spill()?;
        }
        self.recs.push(Rec {
            off: self.arena.len() as u32,
            len: name.len() as u8,
            value,
        });
        self.arena.extend_from_slice(name.as_bytes());
        Ok(())
    }

    /// Lend the rules collected so far, in file order: the names (as written, not yet
    /// keys) and the records, shared without a copy, for an index that serves before
    /// the sort. No rule may be added after; the sort copies what the index still
    /// holds. `None` when rules went to disk, or take more than half the budget (so
    /// that with the copies the compile stays within it).
    pub fn lend(&mut self) -> Option<Lent> {
        if !self.files.is_empty()
            || self.arena.len() + self.recs.len() * size_of::<Rec>() > self.budget / 2
        {
            return None;
        }
        let lent = (
            Arc::new(std::mem::take(&mut self.arena)),
            Arc::new(std::mem::take(&mut self.recs)),
        );
        self.lent = Some(lent.clone());
        Some(lent)
    }

    /// Temporary run files written so far.
    pub fn spilled(&self) -> usize {
        self.files.len()
    }

    fn key(&self, r: &Rec) -> &[u8] {
        &self.arena[r.off as usize..r.off as usize + r.len as usize]
    }

    fn sort(&mut self) {
        // Names become keys.
        for r in &self.recs {
            name::reverse_labels(&mut self.arena[r.off as usize..r.off as usize + r.len as usize]);
        }
        let arena = &self.arena;
        // Stable: rules of one name stay in file order.
        self.recs.sort_by(|a, b| {
            arena[a.off as usize..a.off as usize + a.len as usize]
                .cmp(&arena[b.off as usize..b.off as usize + b.len as usize])
        });
    }

    /// Call `f` with every distinct key of the sorted records and its merged value.
    fn each_in_memory(&self, f: &mut dyn FnMut(&[u8], u64) -> io::Result<()>) -> io::Result<()> {
        let mut i = 0;
        while i < self.recs.len() {
            let key = self.key(&self.recs[i]);
            let mut v = self.recs[i].value;
            let mut j = i + 1;
            while j < self.recs.len() && self.key(&self.recs[j]) == key {
                v = combine(v, self.recs[j].value);
                j += 1;
            }
            f(key, v)?;
            i = j;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.recs.is_empty() {
            return Ok(());
        }
        self.sort();
        let path = self.dir.join(format!(
            ".{}.run-{}-{}",
            self.stem,
            std::process::id(),
            self.files.len()
        ));
        self.files.push(path.clone());
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        self.each_in_memory(&mut |k, v| {
            w.write_all(&[k.len() as u8])?;
            w.write_all(k)?;
            w.write_all(&v.to_le_bytes())
        })?;
        w.flush()?;
        self.recs.clear();
        self.arena.clear();
        Ok(())
    }

    /// Finish collecting: sort what is in memory (and spill it if runs exist).
    pub fn finish(&mut self) -> io::Result<()> {
        // Take back what was lent, copying what the interim index still reads.
        if let Some((arena, recs)) = self.lent.take() {
            self.arena = Arc::try_unwrap(arena).unwrap_or_else(|shared| (*shared).clone());
            self.recs = Arc::try_unwrap(recs).unwrap_or_else(|shared| (*shared).clone());
        }
        if self.files.is_empty() {
            self.sort();
            Ok(())
        } else {
            self.spill()?;
            self.recs = Vec::new();
            self.arena = Vec::new();
            Ok(())
        }
    }

    /// Call `f` with every distinct key, in order, and its merged value. Call after
    /// [`Runs::finish`]; may be called more than once.
    pub fn each(&self, f: &mut dyn FnMut(&[u8], u64) -> io::Result<()>) -> io::Result<()> {
        if self.files.is_empty() {
            return self.each_in_memory(f);
        }
        let mut readers = self
            .files
            .iter()
            .map(|p| RunReader::open(p))
            .collect::<io::Result<Vec<_>>>()?;
        let mut key = Vec::with_capacity(256);
        loop {
            // Few runs: a linear scan for the smallest key beats a heap.
            let Some(min) = readers
                .iter()
                .filter(|r| !r.done)
                .map(|r| r.key.as_slice())
                .min()
            else {
                return Ok(());
            };
            key.clear();
            key.extend_from_slice(min);
            let mut v: Option<u64> = None;
            for r in readers.iter_mut() {
                if !r.done && r.key == key {
                    v = Some(match v {
                        None => r.value,
                        Some(e) => combine(e, r.value),
                    });
                    r.advance()?;
                }
            }
            if let Some(v) = v {
                f(&key, v)?;
            }
        }
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        for p in &self.files {
            let _ = fs::remove_file(p);
        }
    }
}

struct RunReader {
    r: BufReader<File>,
    key: Vec<u8>,
    value: u64,
    done: bool,
}

impl RunReader {
    fn open(p: &Path) -> io::Result<RunReader> {
        let mut r = RunReader {
            r: BufReader::with_capacity(1 << 18, File::open(p)?),
            key: Vec::with_capacity(256),
            value: 0,
            done: false,
        };
        r.advance()?;
        Ok(r)
    }

    fn advance(&mut self) -> io::Result<()> {
        let mut len = [0u8; 1];
        if self.r.read(&mut len)? == 0 {
            self.done = true;
            return Ok(());
        }
        self.key.resize(len[0] as usize, 0);
        self.r.read_exact(&mut self.key)?;
        let mut v = [0u8; 8];
        self.r.read_exact(&mut v)?;
        self.value = u64::from_le_bytes(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(cat: u64, list: u64, note: u64) -> u64 {
        value::pack(value::BLOCK_SELF | value::BLOCK_BELOW, cat, list, 0, note)
    }
    fn allow(list: u64) -> u64 {
        value::pack(value::ALLOW_SELF, 0, 0, list, 0)
    }

    #[test]
    fn combine_keeps_the_first_block_and_the_first_allow() {
        let v = combine(combine(allow(3), block(1, 4, 7)), block(2, 5, 9));
        assert_eq!(
            value::flags(v),
            value::BLOCK_SELF | value::BLOCK_BELOW | value::ALLOW_SELF
        );
        assert_eq!(
            (value::category(v), value::block_list(v), value::note(v)),
            (1, 4, 7)
        );
        assert_eq!(value::allow_list(v), 3);
        let w = combine(block(2, 5, 0), allow(6));
        assert_eq!((value::block_list(w), value::allow_list(w)), (5, 6));
    }

    fn collect(budget: usize, rules: &[(Vec<u8>, u64)]) -> (Vec<(Vec<u8>, u64)>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut runs = Runs::new(dir.path(), "t", budget);
        for (k, v) in rules {
            let mut name = k.clone();
            name::reverse_labels(&mut name);
            runs.push_name(std::str::from_utf8(&name).unwrap(), *v)
                .unwrap();
        }
        runs.finish().unwrap();
        let mut out = vec![];
        runs.each(&mut |k, v| {
            out.push((k.to_vec(), v));
            Ok(())
        })
        .unwrap();
        // A second pass sees the same (the compiler counts first, then writes).
        let mut again = 0;
        runs.each(&mut |_, _| {
            again += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(again, out.len());
        let spilled = runs.spilled();
        drop(runs);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "run files left behind"
        );
        (out, spilled)
    }

    #[test]
    fn rules_are_lent_only_within_half_the_budget_and_sort_the_same_after() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..100).map(|i| format!("n{i:03}.b.top")).collect();
        // 100 rules: 900 bytes of names and 1,600 of records.
        let fill = |budget| {
            let mut runs = Runs::new(dir.path(), "t", budget);
            for (i, n) in names.iter().enumerate().rev() {
                runs.push_name(n, i as u64).unwrap();
            }
            runs
        };
        assert!(fill(4_800).lend().is_none(), "lent past half the budget");
        let mut runs = fill(6_000);
        let (lent_names, recs) = runs.lend().expect("lent within half the budget");
        assert_eq!(recs.len(), 100);
        let r = recs[0];
        assert_eq!(
            &lent_names[r.off as usize..r.off as usize + r.len as usize],
            b"n099.b.top",
            "names are lent as written, in file order"
        );
        // The sort turns names into keys on its own copy: the lent names stay.
        runs.finish().unwrap();
        let mut keys = vec![];
        runs.each(&mut |k, _| {
            keys.push(String::from_utf8(k.to_vec()).unwrap());
            Ok(())
        })
        .unwrap();
        assert_eq!(keys.first().map(String::as_str), Some("top.b.n000"));
        assert_eq!(keys.len(), 100);
        assert_eq!(
            &lent_names[r.off as usize..r.off as usize + r.len as usize],
            b"n099.b.top"
        );
    }

    #[test]
    fn spilled_runs_merge_to_exactly_the_in_memory_result() {
        // 20k rules over 5k names, each name ruled several times by different lists.
        let mut rules = vec![];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("top.n{:05}", x % 5_000).into_bytes();
            let v = if x.is_multiple_of(3) {
                allow(i % 1000)
            } else {
                block(x % 7, i % 1000, i % 50)
            };
            rules.push((key, v));
        }
        let (mem, n0) = collect(usize::MAX / 2, &rules);
        let (disk, n1) = collect(20_000, &rules);
        assert_eq!(n0, 0);
        assert!(n1 >= 5, "only {n1} runs");
        // The model: per key, fold the values in rule order.
        let mut model = std::collections::BTreeMap::<Vec<u8>, u64>::new();
        for (k, v) in &rules {
            model
                .entry(k.clone())
                .and_modify(|e| *e = combine(*e, *v))
                .or_insert(*v);
        }
        let model: Vec<_> = model.into_iter().collect();
        assert!(model.len() > 4_000);
        assert_eq!(mem, model);
        assert_eq!(disk, model);
    }
}
