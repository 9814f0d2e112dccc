//! Inference latency, ours against tract, side by side in one run; and memory: our
//! `ARENA_BYTES` against the heap tract's runnable model uses during one inference.
//!
//! ```text
//! cargo bench -p microarena-tests --bench latency
//! ```
//!
//! For every model in tests/models (f32) and tests/models/int8 (int8 twins, tract running the
//! same QDQ file), criterion times our generated `run` and tract's
//! `into_optimized().into_runnable()` plan on the committed input (one thread both), then a
//! summary measures both again interleaved and prints the Markdown table of the README:
//! medians and their ratio. tract's heap is counted by this binary's global allocator (peak
//! live bytes above what was live before the run, inputs and outputs included).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use tract_onnx::prelude::*;

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let now = if new_size >= layout.size() {
                LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size()
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed)
                    - (layout.size() - new_size)
            };
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One compiled model: how to run ours, where its files are.
struct Model {
    name: &'static str,
    onnx: &'static str,
    input: &'static str,
    arena: usize,
    run: fn(&[f32], &mut [f32]),
    shape: &'static [usize],
    out_len: usize,
}

macro_rules! models {
    ($($m:ident => ($onnx:literal, $input:literal)),* $(,)?) => {
        $(
            mod $m {
                microarena::include_model!($onnx);
                pub fn run(x: &[f32], y: &mut [f32]) {
                    // One model per thread of the benchmark: the arena lives in a static.
                    static mut MODEL: Model = Model::new();
                    // SAFETY: the benchmark is single-threaded and never re-enters `run`.
                    #[allow(static_mut_refs)]
                    let m = unsafe { &mut MODEL };
                    m.run(x.try_into().unwrap(), y.try_into().unwrap());
                }
            }
        )*
        fn all() -> Vec<Model> {
            vec![$(Model {
                name: stringify!($m),
                onnx: $onnx,
                input: $input,
                arena: $m::ARENA_BYTES,
                run: $m::run,
                shape: &$m::INPUT_SHAPE,
                out_len: $m::OUTPUT_LEN,
            }),*]
        }
    };
}

models!(
    chain => ("tests/models/chain.onnx", "tests/models/chain.input.bin"),
    residual => ("tests/models/residual.onnx", "tests/models/residual.input.bin"),
    inception => ("tests/models/inception.onnx", "tests/models/inception.input.bin"),
    dwsep => ("tests/models/dwsep.onnx", "tests/models/dwsep.input.bin"),
    mobilenetv2 => ("tests/models/mobilenetv2.onnx", "tests/models/mobilenetv2.input.bin"),
    densenet => ("tests/models/densenet.onnx", "tests/models/densenet.input.bin"),
    mlp => ("tests/models/mlp.onnx", "tests/models/mlp.input.bin"),
    random_dag => ("tests/models/random_dag.onnx", "tests/models/random_dag.input.bin"),
    nas_cells => ("tests/models/nas_cells.onnx", "tests/models/nas_cells.input.bin"),
    chain_int8 => ("tests/models/int8/chain_qdq.onnx", "tests/models/chain.input.bin"),
    residual_int8 => ("tests/models/int8/residual_qdq.onnx", "tests/models/residual.input.bin"),
    inception_int8 => ("tests/models/int8/inception_qdq.onnx", "tests/models/inception.input.bin"),
    dwsep_int8 => ("tests/models/int8/dwsep_qdq.onnx", "tests/models/dwsep.input.bin"),
);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    let mut rows = Vec::new();
    for m in all() {
        let x = read_f32(&root().join(m.input));
        let mut y = vec![0.0f32; m.out_len];
        // tract's optimised, runnable plan of the same file.
        let plan = tract_onnx::onnx()
            .model_for_path(root().join(m.onnx))
            .and_then(|t| t.with_input_fact(0, f32::fact(m.shape).into()))
            .and_then(|t| t.into_optimized())
            .and_then(|t| t.into_runnable())
            .expect("tract optimises the model");
        let input: TValue = tract_ndarray::ArrayD::from_shape_vec(m.shape.to_vec(), x.clone())
            .expect("input shape")
            .into_tensor()
            .into();
        let mut group = c.benchmark_group(m.name);
        group.bench_function("microarena", |b| b.iter(|| (m.run)(black_box(&x), &mut y)));
        group.bench_function("tract", |b| {
            b.iter(|| {
                plan.run(tvec!(black_box(input.clone())))
                    .expect("tract runs")
            })
        });
        group.finish();
        // Side by side, interleaved, for the summary.
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let until = Instant::now() + Duration::from_millis(700);
        while ours.len() < 15 || (Instant::now() < until && ours.len() < 2000) {
            let t = Instant::now();
            (m.run)(black_box(&x), &mut y);
            ours.push(t.elapsed());
            let t = Instant::now();
            black_box(plan.run(tvec!(input.clone())).expect("tract runs"));
            theirs.push(t.elapsed());
        }
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        black_box(plan.run(tvec!(input.clone())).expect("tract runs"));
        let heap = PEAK.load(Ordering::Relaxed) - base;
        rows.push((m.name, median(ours), median(theirs), m.arena, heap));
    }
    println!();
    println!("| model | microarena (µs) | tract (µs) | ours / tract | ARENA_BYTES | tract heap in run (B) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, ours, theirs, arena, heap) in rows {
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} | {arena} | {heap} |",
            ours.as_secs_f64() * 1e6,
            theirs.as_secs_f64() * 1e6,
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
    }
}
