//! Planning benchmark, measured side by side in one run. Per model (KiB): the plain optimum
//! (the graph as written, every op its own buffer, optimal order), the fused unshared
//! optimum, the optimum with all sharing forced, the arenas of the ONNX file's order and of
//! tract's `eval_order_opt_ram` order (fused, unshared, placed by our placer), ours, and the
//! planning time.
//!
//! ```text
//! cargo bench -p microarena-compiler --bench planning            # tests/models
//! ONNX_BACKEND_DATA=.../onnx/backend/test/data cargo bench -p microarena-compiler --bench planning
//!                                                                # + the onnx wheel's light/*.onnx
//! ```
//!
//! Not a timed test: it prints a Markdown table (the README's) and fails only if a plan is
//! unsound or worse than the plain, fused or forced-sharing plan.

use std::path::{Path, PathBuf};
use std::time::Instant;

use microarena_compiler::{place, plan_model, Options};

fn models() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("tests/models")];
    if let Some(data) = std::env::var_os("ONNX_BACKEND_DATA") {
        dirs.push(PathBuf::from(data).join("light"));
    }
    let mut out = Vec::new();
    for dir in dirs {
        let mut here: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n != "not_onnx.onnx" && n != "unsupported_op.onnx"
            })
            .collect();
        here.sort();
        out.extend(here);
    }
    out
}

fn kb(b: usize) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

fn main() {
    println!("| model | steps | plain | fused, unshared | forced sharing | file order | tract order | **ours** | ours / plain | ours / file order | peak of our order | optimal | planning (ms) | with loading (ms) | streamed |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for path in models() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let start = Instant::now();
        // The orders and sharing compared as such (no stage streamed); the streamed arena
        // of the default options in the last column.
        let whole = Options {
            streaming: false,
            ..Options::default()
        };
        let c = match plan_model(&path, &whole) {
            Ok(c) => c,
            Err(e) => {
                println!("| {name} | error: {e} |");
                failures.push(name);
                continue;
            }
        };
        let total = start.elapsed().as_secs_f64() * 1e3;
        let streamed = plan_model(&path, &Options::default()).map_or_else(
            |e| format!("error: {e}"),
            |d| {
                assert!(
                    d.plan.arena_bytes <= c.plan.arena_bytes,
                    "{name}: streaming grew"
                );
                kb(d.plan.arena_bytes)
            },
        );
        let s = &c.stats;
        let a = c.plan.arena_bytes;
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | **{}** | {:.3} | {:.3} | {} | {} | {:.1} | {:.0} | {streamed} |",
            c.schedule.len(),
            kb(s.plain_arena_bytes),
            kb(s.fused_plain_arena_bytes),
            kb(s.forced_sharing_arena_bytes),
            kb(s.file_order_arena_bytes),
            kb(s.tract_order_arena_bytes),
            kb(a),
            a as f64 / s.plain_arena_bytes as f64,
            a as f64 / s.file_order_arena_bytes as f64,
            kb(s.peak_live_bytes),
            if s.optimal { "yes" } else { "no" },
            s.planning_ms,
            total,
        );
        let worse = a > s.plain_arena_bytes
            || a > s.fused_plain_arena_bytes
            || a > s.forced_sharing_arena_bytes;
        // Placement gaps are reported (arena above the peak column), not failures: the
        // smallest arena may come from an order whose peak cannot be placed exactly.
        if !place::is_valid(&c.graph, &c.plan) || a < s.min_peak_bytes || worse {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "unsound or lossy plans: {failures:?}");
}
