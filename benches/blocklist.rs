//! Blocklist engine benchmarks: lookup at 1M and 5M names, compile of 1M, open.
//!
//! Names: every real name of the fixture lists (about 220k), topped up with synthetic
//! fraud-looking names. Run: `cargo bench --bench blocklist` (figures in docs/benchmarks.md).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fanzha::blocklist::{self, Blocklist, CompileSpec};

mod common;
use common::{compiled, names, queries, write_list};

fn bench_lookup(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("lookup");
    for n in [1_000_000usize, 5_000_000] {
        let (list, names) = compiled(tmp.path(), n);
        let qs = queries(&names);
        let mut i = 0;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(list.lookup(black_box(&qs[i])))
            })
        });
    }
    g.finish();
}

fn bench_compile_and_open(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let n = 1_000_000;
    let src = tmp.path().join("src");
    write_list(&src, &names(n));
    let out = tmp.path().join("l.fst");
    let spec = CompileSpec {
        dirs: vec![src],
        ..Default::default()
    };
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("1M", |b| {
        b.iter(|| blocklist::compile(&spec, &out).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group("open");
    g.bench_function("1M header-checked", |b| {
        b.iter(|| Blocklist::open(&out, false).unwrap())
    });
    g.bench_function("1M fully-verified", |b| {
        b.iter(|| Blocklist::open(&out, true).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_lookup, bench_compile_and_open);
criterion_main!(benches);
