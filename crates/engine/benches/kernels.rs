//! Criterion benches of the hot loops: every kernel set this CPU runs, on stories15M-shaped
//! matrices, and the thread pool's per-job overhead.
//!
//! `cargo bench -p esp-llm-engine --bench kernels` (add `-- matmul_f32` to filter).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use esp_llm_engine::kernels;
use esp_llm_engine::parallel::pool::Pool;
use esp_llm_engine::parallel::Workers;
use std::hint::black_box;

/// A deterministic pseudo-random sequence (xorshift32) in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// (rows, cols) of the stories15M matmuls: wq/wo, w1/w3, w2.
const SHAPES: [(usize, usize); 3] = [(288, 288), (768, 288), (288, 768)];

fn matmul_f32(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_f32");
    for (rows, cols) in SHAPES {
        let w = values(rows * cols, 1);
        let x = values(cols, 2);
        let mut out = vec![0.0f32; rows];
        g.throughput(Throughput::Elements((rows * cols) as u64));
        for k in kernels::available() {
            g.bench_with_input(
                BenchmarkId::new(k.name(), format!("{rows}x{cols}")),
                &(),
                |b, _| b.iter(|| k.matmul_f32(black_box(&mut out), black_box(&w), black_box(&x))),
            );
        }
    }
    g.finish();
}

/// The stories15M classifier (32000 x 288, 37 MB): far larger than the caches, so this
/// measures how close a kernel gets to the memory bandwidth.
fn classifier_f32(c: &mut Criterion) {
    let mut g = c.benchmark_group("classifier_f32");
    g.sample_size(20);
    let (rows, cols) = (32000, 288);
    let w = values(rows * cols, 7);
    let x = values(cols, 8);
    let mut out = vec![0.0f32; rows];
    g.throughput(Throughput::Bytes((rows * cols * 4) as u64));
    for k in kernels::available() {
        g.bench_function(k.name(), |b| {
            b.iter(|| k.matmul_f32(black_box(&mut out), black_box(&w), black_box(&x)))
        });
    }
    g.finish();
}

fn matmul_q8(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul_q8");
    let group = 32;
    for (rows, cols) in SHAPES {
        let wq: Vec<i8> = values(rows * cols, 3).iter().map(|v| (v * 127.0) as i8).collect();
        let ws = values(rows * cols / group, 4);
        let xq: Vec<i8> = values(cols, 5).iter().map(|v| (v * 127.0) as i8).collect();
        let xs = values(cols / group, 6);
        let mut out = vec![0.0f32; rows];
        g.throughput(Throughput::Elements((rows * cols) as u64));
        for k in kernels::available() {
            g.bench_with_input(
                BenchmarkId::new(k.name(), format!("{rows}x{cols}")),
                &(),
                |b, _| {
                    b.iter(|| {
                        k.matmul_q8(black_box(&mut out), &wq, &ws, black_box(&xq), &xs, group)
                    })
                },
            );
        }
    }
    g.finish();
}

fn pool_overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_empty_job");
    for n in [1, 2] {
        let pool = Pool::new(n).unwrap();
        g.bench_function(format!("{n}_workers"), |b| {
            b.iter(|| {
                pool.run(&|i| {
                    black_box(i);
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, matmul_f32, classifier_f32, matmul_q8, pool_overhead);
criterion_main!(benches);
