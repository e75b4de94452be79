//! Lookups on a compiled list with a feed's deltas laid over it, next to the same
//! list without them: what an overlay of 1k, 10k and 100k names (a chain of 100
//! deltas of 1k changes is 100k) costs each lookup. Run: `cargo bench --bench delta`
//! (figures in docs/benchmarks.md).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fanzha::blocklist::delta::{Delta, Tables};

mod common;
use common::{compiled, queries};

fn bench_overlay(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let n = 1_000_000;
    let (base, names) = compiled(tmp.path(), n);
    let qs = queries(&names);
    let entries = base.entries();
    let m = base.meta();
    let mut g = c.benchmark_group("lookup_1M_with_deltas");
    for over in [0usize, 1_000, 10_000, 100_000] {
        // Half the overlay removes base names, half adds new ones (valued as a
        // base name is), as publishes of changes would.
        let set: Vec<(String, u64)> = entries
            .iter()
            .step_by(entries.len() / over.max(1))
            .take(over)
            .enumerate()
            .map(|(i, (name, v))| {
                if i % 2 == 0 {
                    (name.clone(), 0)
                } else {
                    (format!("new-{i}.{name}"), *v)
                }
            })
            .collect();
        let d = Delta {
            format: 1,
            base_serial: 1,
            base_sha256: String::new(),
            from_serial: 1,
            serial: 2,
            built_at: String::new(),
            built_unix: 0,
            tables_from: Tables {
                categories: m.categories.len(),
                lists: m.lists.len(),
                notes: m.notes.len(),
            },
            categories: vec![],
            lists: vec![],
            notes: vec![],
            set,
            paths: None,
        };
        let list = base.with_deltas(&[d]).unwrap();
        let mut i = 0;
        g.bench_with_input(BenchmarkId::from_parameter(over), &over, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(list.lookup(black_box(&qs[i])))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_overlay);
criterion_main!(benches);
