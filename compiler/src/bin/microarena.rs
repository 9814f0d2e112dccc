//! `microarena`: the command-line face of the compiler.
//!
//! ```text
//! microarena plan MODEL.onnx [--input-shape 1,3,32,32] [--json] [--budget-ms N] [--alignment N]
//! ```
//!
//! `plan` prints the memory plan of any model tract can type, including ops microarena has no
//! kernel for (planning needs only shapes).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use microarena_compiler::{plan_model, Compiled, Options};

const USAGE: &str = "usage: microarena plan MODEL.onnx [--input-shape 1,3,32,32] [--json] [--budget-ms N] [--alignment N]

  --input-shape D,D,..  pin the input shape of models with symbolic dimensions
  --json                print one JSON object instead of tables
  --budget-ms N         time budget of the exact order search (default 2000)
  --alignment N         byte alignment of arena offsets (default 16)";

struct Args {
    model: PathBuf,
    options: Options,
    json: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    match args.next().as_deref() {
        Some("plan") => {}
        Some("-h" | "--help") | None => return Err(String::new()),
        Some(other) => return Err(format!("unknown command `{other}`")),
    }
    let mut model = None;
    let mut options = Options::default();
    let mut json = false;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--json" => json = true,
            "--input-shape" => {
                let v = value("--input-shape")?;
                let shape = v
                    .split(',')
                    .map(|d| d.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        format!("--input-shape `{v}`: expected numbers separated by commas")
                    })?;
                options.input_shape = Some(shape);
            }
            "--budget-ms" => {
                let v = value("--budget-ms")?;
                let ms = v
                    .parse::<u64>()
                    .map_err(|_| format!("--budget-ms `{v}`: expected milliseconds"))?;
                options.budget = Duration::from_millis(ms);
            }
            "--alignment" => {
                let v = value("--alignment")?;
                options.alignment = v
                    .parse::<usize>()
                    .map_err(|_| format!("--alignment `{v}`: expected bytes"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            path => {
                if model.replace(PathBuf::from(path)).is_some() {
                    return Err("give one model".into());
                }
            }
        }
    }
    let model = model.ok_or("give the model's path")?;
    Ok(Args {
        model,
        options,
        json,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let compiled = match plan_model(&args.model, &args.options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let total_ms = start.elapsed().as_secs_f64() * 1e3;
    if args.json {
        println!("{}", json(&compiled, total_ms));
    } else {
        print!("{}", text(&compiled, &args.model, total_ms));
    }
    ExitCode::SUCCESS
}

/// Arena tensors in order of first use, numbered from 1 as in the report tables.
fn arena_tensors(c: &Compiled) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..c.graph.tensors.len())
        .filter(|&i| c.plan.offsets[i].is_some())
        .collect();
    ids.sort_by_key(|&i| (c.plan.lifetimes[i].map(|l| l.first), i));
    ids
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn text(c: &Compiled, model: &std::path::Path, total_ms: f64) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let ids = arena_tensors(c);
    let mut number = vec![0; c.graph.tensors.len()];
    for (k, &i) in ids.iter().enumerate() {
        number[i] = k + 1;
    }
    let _ = writeln!(
        o,
        "{}: {} steps, weights {} B (flash)",
        model.display(),
        c.schedule.len(),
        thousands(c.graph.weight_bytes())
    );
    let _ = writeln!(o, "\nTensors in the arena (weights excluded):");
    let _ = writeln!(
        o,
        "{:>4}  {:<40} {:<20} {:>12} {:>12}",
        "Id", "Tensor", "Shape", "Size (B)", "Offset"
    );
    for &i in &ids {
        let t = &c.graph.tensors[i];
        let _ = writeln!(
            o,
            "{:>4}  {:<40} {:<20} {:>12} {:>12}",
            number[i],
            t.name,
            format!("{:?}", t.shape),
            thousands(t.bytes()),
            thousands(c.plan.offsets[i].unwrap_or(0))
        );
    }
    let _ = writeln!(o, "\nOperator execution schedule:");
    let _ = writeln!(
        o,
        "{:>4}  {:<40} {:<12} {:<24} {:>12}",
        "Step", "Operator (output name)", "Op", "Tensors in memory (Ids)", "Memory (B)"
    );
    for (s, n) in c.schedule.order.iter().enumerate() {
        let node = &c.graph.nodes[n.0];
        let live: Vec<String> = ids
            .iter()
            .filter(|&&i| c.plan.lifetimes[i].is_some_and(|l| l.first <= s && s <= l.last))
            .map(|&i| number[i].to_string())
            .collect();
        let _ = writeln!(
            o,
            "{:>4}  {:<40} {:<20} {:<24} {:>12}",
            s + 1,
            c.graph.tensors[node.output.0].name,
            node.op_type,
            format!("[{}]", live.join(", ")),
            thousands(c.plan.step_live_bytes[s])
        );
    }
    let st = &c.stats;
    let bound = c.plan.lower_bound();
    let _ = writeln!(o);
    let _ = writeln!(o, "arena:             {} B", thousands(c.plan.arena_bytes));
    let _ = writeln!(
        o,
        "peak live bytes:   {} B (this order)",
        thousands(st.peak_live_bytes)
    );
    let _ = writeln!(
        o,
        "lower bound:       {} B (placement gap {} B)",
        thousands(bound),
        thousands(c.plan.arena_bytes - bound)
    );
    let _ = writeln!(
        o,
        "order:             {} (minimum peak {} B; {} search states, {} segments)",
        if st.optimal {
            "optimal"
        } else {
            "best found, not proven optimal (budget ran out)"
        },
        thousands(st.min_peak_bytes),
        st.search_states,
        st.segments
    );
    let _ = writeln!(
        o,
        "sharing:           {} nodes in place, {} concatenation inputs zero-copy",
        st.in_place_nodes, st.zero_copy_slots
    );
    let _ = writeln!(
        o,
        "plain arena:       {} B (graph as written, nothing shared)",
        thousands(st.plain_arena_bytes)
    );
    let _ = writeln!(
        o,
        "fused, unshared:   {} B (activations fused, no in place or zero-copy)",
        thousands(st.fused_plain_arena_bytes)
    );
    let _ = writeln!(
        o,
        "forced sharing:    {} B (every in place and zero-copy taken)",
        thousands(st.forced_sharing_arena_bytes)
    );
    let _ = writeln!(
        o,
        "file order arena:  {} B",
        thousands(st.file_order_arena_bytes)
    );
    let _ = writeln!(
        o,
        "tract order arena: {} B",
        thousands(st.tract_order_arena_bytes)
    );
    let _ = writeln!(
        o,
        "planning time:     {:.1} ms (with loading: {:.0} ms)",
        st.planning_ms, total_ms
    );
    o
}

fn json(c: &Compiled, total_ms: f64) -> serde_json::Value {
    let st = &c.stats;
    let steps: Vec<serde_json::Value> = c
        .schedule
        .order
        .iter()
        .enumerate()
        .map(|(s, n)| {
            let node = &c.graph.nodes[n.0];
            serde_json::json!({
                "op": node.name,
                "op_type": node.op_type,
                "output": c.graph.tensors[node.output.0].name,
                "live_bytes": c.plan.step_live_bytes[s],
            })
        })
        .collect();
    let tensors: Vec<serde_json::Value> = arena_tensors(c)
        .into_iter()
        .map(|i| {
            let t = &c.graph.tensors[i];
            let l = c.plan.lifetimes[i].expect("arena tensors have a lifetime");
            serde_json::json!({
                "name": t.name,
                "shape": t.shape,
                "bytes": t.bytes(),
                "offset": c.plan.offsets[i],
                "first_step": l.first,
                "last_step": l.last,
            })
        })
        .collect();
    serde_json::json!({
        "arena_bytes": c.plan.arena_bytes,
        "plain_optimal_arena_bytes": st.plain_arena_bytes,
        "fused_plain_arena_bytes": st.fused_plain_arena_bytes,
        "forced_sharing_arena_bytes": st.forced_sharing_arena_bytes,
        "plain_optimal": st.plain_optimal,
        "in_place_nodes": st.in_place_nodes,
        "zero_copy_slots": st.zero_copy_slots,
        "peak_live_bytes": st.peak_live_bytes,
        "min_peak_bytes": st.min_peak_bytes,
        "lower_bound_bytes": c.plan.lower_bound(),
        "optimal": st.optimal,
        "planning_ms": st.planning_ms,
        "total_ms": total_ms,
        "alignment": c.plan.alignment,
        "search_states": st.search_states,
        "segments": st.segments,
        "baselines": {
            "file_order_arena_bytes": st.file_order_arena_bytes,
            "tract_order_arena_bytes": st.tract_order_arena_bytes,
        },
        "weight_bytes": c.graph.weight_bytes(),
        "steps": steps,
        "tensors": tensors,
    })
}
