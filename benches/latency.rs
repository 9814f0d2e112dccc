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
//!
//! Then, for the f32 models, where the time goes: each of our steps timed alone (the same
//! kernels through the compiler's host interpreter, on the inputs of a traced run) and each
//! node of tract's plan timed inside its run (`run_plan_with_eval`), both grouped by the ONNX
//! op type of the node they come from (tract's node names keep the ONNX node's name). Run
//! only the breakdown with `cargo bench -p microarena-tests --bench latency -- --breakdown`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use microarena_tests::read_f32;
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
    // The MLPerf-Tiny-shaped networks (tests/gen_mlperf.py), f32 and int8.
    resnet8 => ("tests/models/resnet8.onnx", "tests/models/resnet8.input.bin"),
    dscnn => ("tests/models/dscnn.onnx", "tests/models/dscnn.input.bin"),
    mobilenet_v1 => ("tests/models/mobilenet_v1.onnx", "tests/models/mobilenet_v1.input.bin"),
    mobilenet_v2 => ("tests/models/mobilenet_v2.onnx", "tests/models/mobilenet_v2.input.bin"),
    resnet8_int8 => ("tests/models/int8/resnet8_qdq.onnx", "tests/models/resnet8.input.bin"),
    dscnn_int8 => ("tests/models/int8/dscnn_qdq.onnx", "tests/models/dscnn.input.bin"),
    mobilenet_v1_int8 => ("tests/models/int8/mobilenet_v1_qdq.onnx", "tests/models/mobilenet_v1.input.bin"),
    mobilenet_v2_int8 => ("tests/models/int8/mobilenet_v2_qdq.onnx", "tests/models/mobilenet_v2.input.bin"),
);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// tract's optimised, runnable plan of the model's file, and `x` as its input.
fn tract_plan(m: &Model, x: &[f32]) -> (std::sync::Arc<TypedRunnableModel>, TValue) {
    let plan = tract_onnx::onnx()
        .model_for_path(root().join(m.onnx))
        .and_then(|t| t.with_input_fact(0, f32::fact(m.shape).into()))
        .and_then(|t| t.into_optimized())
        .and_then(|t| t.into_runnable())
        .expect("tract optimises the model");
    let input: TValue = tract_ndarray::ArrayD::from_shape_vec(m.shape.to_vec(), x.to_vec())
        .expect("input shape")
        .into_tensor()
        .into();
    (plan, input)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--breakdown") {
        breakdown();
        return;
    }
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
        let (plan, input) = tract_plan(&m, &x);
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
    breakdown();
}

/// Where the time goes, for each f32 model: the matrix-product work (convolutions, depthwise
/// convolutions, matrix products, with whatever they fuse: bias, BatchNormalization,
/// activations) and everything else, ours against tract, per-node medians of repeated runs
/// summed; printed as a Markdown table. Ours are the steps of the unstreamed plan.
fn breakdown() {
    use microarena_compiler::exec::{self, Values};
    use microarena_compiler::ir::{Op, TensorKind};
    use std::collections::BTreeMap;

    println!();
    println!("| model | conv + matmul: ours (µs) | tract (µs) | ours / tract | rest: ours (µs) | tract (µs) | share of our time in conv + matmul |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in all().into_iter().filter(|m| !m.onnx.contains("int8")) {
        let path = root().join(m.onnx);
        let x = read_f32(&root().join(m.input));

        // Ours: every step alone, on the values a traced run gave its inputs.
        // Unstreamed: a streamed stage is one step of many ops, which this table cannot split.
        let options = microarena_compiler::Options {
            streaming: false,
            ..Default::default()
        };
        let c = microarena_compiler::compile(&path, &options).expect("compiles");
        let g = &c.graph;
        let mut values: BTreeMap<usize, Values> = BTreeMap::new();
        values.insert(g.inputs[0].0, Values::F32(x.clone()));
        exec::run_traced(
            g,
            &c.schedule,
            &c.plan,
            &[Values::F32(x.clone())],
            |t, v| {
                values.insert(t.0, v.clone());
            },
        );
        let (mut ours_mm, mut ours_rest) = (0.0, 0.0);
        for n in &c.schedule.order {
            let node = &g.nodes[n.0];
            let inputs: Vec<Values> = node
                .inputs
                .iter()
                .map(|&t| match &g.tensor(t).kind {
                    TensorKind::Weight(w) => Values::F32(w.clone()),
                    _ => values[&t.0].clone(),
                })
                .collect();
            let refs: Vec<&Values> = inputs.iter().collect();
            let out_t = g.tensor(node.output);
            let mut out = Values::zeros(out_t.dtype, out_t.len());
            let mut times = Vec::new();
            let until = Instant::now() + Duration::from_millis(60);
            while times.len() < 5 || (Instant::now() < until && times.len() < 500) {
                let t = Instant::now();
                exec::call_kernel(&node.op, &refs, &mut out);
                times.push(t.elapsed());
                black_box(&out);
            }
            let us = median(times).as_secs_f64() * 1e6;
            match node.op {
                Op::Conv(_) | Op::Gemm(_) => ours_mm += us,
                _ => ours_rest += us,
            }
        }

        // tract: every node timed inside its plan's run.
        let (plan, input) = tract_plan(&m, &x);
        let mut per_node: BTreeMap<(usize, String), Vec<Duration>> = BTreeMap::new();
        let until = Instant::now() + Duration::from_millis(500);
        let mut runs = 0;
        while runs < 5 || (Instant::now() < until && runs < 500) {
            let mut state = tract_onnx::tract_core::plan::SimpleState::new(&plan).expect("state");
            state
                .run_plan_with_eval(tvec!(input.clone()), |ctx, st, node, inputs| {
                    let t = Instant::now();
                    let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                    per_node
                        .entry((node.id, node.op().name().to_string()))
                        .or_default()
                        .push(t.elapsed());
                    r
                })
                .expect("tract runs");
            runs += 1;
        }
        let (mut theirs_mm, mut theirs_rest) = (0.0, 0.0);
        for ((_, op), times) in per_node {
            let us = median(times).as_secs_f64() * 1e6;
            // tract's lowering of Conv/Gemm/MatMul: im2col, packing, the matrix product
            // (which fuses bias and activations), depthwise convolution, padding.
            let matrix_work = op.contains("MatMul")
                || op.contains("Im2col")
                || op.contains("DepthWise")
                || op == "Pad";
            if matrix_work {
                theirs_mm += us;
            } else {
                theirs_rest += us;
            }
        }
        println!(
            "| {} | {ours_mm:.1} | {theirs_mm:.1} | {:.2} | {ours_rest:.1} | {theirs_rest:.1} | {:.0}% |",
            m.name,
            ours_mm / theirs_mm,
            100.0 * ours_mm / (ours_mm + ours_rest)
        );
    }
}
