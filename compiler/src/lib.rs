//! The microarena model compiler.
//!
//! `import` (ONNX → tract → [`ir::Graph`]) → [`passes`] → [`schedule`] → [`place`] →
//! [`codegen`]; each stage hands one data type to the next. The proc macro
//! `microarena::include_model!` and the `microarena` CLI both drive it through [`compile`].
//!
//! ```no_run
//! let compiled = microarena_compiler::compile(
//!     std::path::Path::new("tests/models/chain.onnx"),
//!     &microarena_compiler::Options::default(),
//! )?;
//! println!("arena: {} bytes", compiled.plan.arena_bytes);
//! # Ok::<(), microarena_compiler::Error>(())
//! ```

/// The runtime's kernels, compiled from the very source files of `runtime/src/kernels/`.
///
/// The compiler runs plans on the host with the same kernels the device runs (see [`exec`]),
/// and its IR carries their parameter structs. It cannot depend on the `microarena` crate
/// itself: that crate re-exports the macro, which depends on this compiler (Cargo refuses
/// the cycle, even through an optional feature), so the module is included by path.
#[path = "../../runtime/src/kernels/mod.rs"]
pub mod kernels;

pub mod codegen;
pub mod error;
pub mod exec;
pub mod import;
pub mod ir;
pub mod ops;
pub mod passes;
pub mod place;
pub mod report;
pub mod schedule;
pub mod self_test;

use std::path::Path;
use std::time::{Duration, Instant};

use ir::SharingChoice;

pub use error::{Error, Result};

/// Default alignment of arena offsets, in bytes (the runtime's `arena::ALIGN`).
pub const DEFAULT_ALIGNMENT: usize = 16;

/// Default time budget of the exact scheduling search.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(2);

/// Everything a compilation can be asked to do differently.
#[derive(Clone, Debug)]
pub struct Options {
    /// Shape of the single graph input when the model leaves dimensions symbolic.
    pub input_shape: Option<Vec<usize>>,
    /// Alignment of arena offsets, in bytes.
    pub alignment: usize,
    /// Time the exact scheduling search may take; after it the best order found is used
    /// and [`PlanStats::optimal`] is false.
    pub budget: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            input_shape: None,
            alignment: DEFAULT_ALIGNMENT,
            budget: DEFAULT_BUDGET,
        }
    }
}

/// Figures of a plan, for reports and the CLI.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanStats {
    /// Peak live bytes of the chosen order under the memory model.
    pub peak_live_bytes: usize,
    /// The lowest peak the scheduler found over all orders (the chosen order may have a
    /// higher peak when it places into a smaller arena).
    pub min_peak_bytes: usize,
    /// True when `min_peak_bytes` is proven minimal (the exact search finished in its budget).
    pub optimal: bool,
    /// Scheduling and placement time, in milliseconds.
    pub planning_ms: f64,
    /// Arena of the ONNX file's order, placed by the same placer.
    pub file_order_arena_bytes: usize,
    /// Arena of tract's `eval_order_opt_ram` order, placed by the same placer.
    pub tract_order_arena_bytes: usize,
    /// Arena of the best plan for the graph as written, nothing shared: every op (BatchNorm,
    /// activation, Add, ...) its own output buffer, under the optimal order. The baseline.
    pub plain_arena_bytes: usize,
    /// Arena of the best plan after fusion (activations and scale/shift folded into their
    /// producers) but with no buffer sharing (no in place, no zero-copy concatenation).
    pub fused_plain_arena_bytes: usize,
    /// Arena of the best plan with every sharing the graph allows forced on.
    pub forced_sharing_arena_bytes: usize,
    /// True when the fused plain plan's order is proven minimal.
    pub plain_optimal: bool,
    /// Nodes that write their output over an input.
    pub in_place_nodes: usize,
    /// Concatenation inputs written straight into their slice of the output.
    pub zero_copy_slots: usize,
    /// Search states expanded.
    pub search_states: usize,
    /// Segments between cut points that were searched.
    pub segments: usize,
}

/// A planned model: the optimised graph, its schedule and its arena placement.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The graph after the passes.
    pub graph: ir::Graph,
    /// The order of execution.
    pub schedule: schedule::Schedule,
    /// Arena offsets and size.
    pub plan: place::ArenaPlan,
    /// How the plan compares with the baselines and the bound.
    pub stats: PlanStats,
    /// The baseline of the ONNX file's order: its schedule, placed with nothing shared (as a
    /// runtime without in-place or zero-copy buffers runs it). For reports.
    pub file_order: OrderPlan,
    /// The baseline of tract's `eval_order_opt_ram` order, placed with nothing shared.
    pub tract_order: OrderPlan,
}

/// A baseline order of the same (optimised) graph and its placement, for comparisons.
#[derive(Clone, Debug)]
pub struct OrderPlan {
    /// The order of execution.
    pub schedule: schedule::Schedule,
    /// Its placement: arena size and live bytes per step.
    pub plan: place::ArenaPlan,
}

/// One fuzzing step: `bytes` as a model file through import, planning (with a short search
/// budget) and code generation, errors ignored. Used by the cargo-fuzz target (`fuzz/`) and
/// by the regression test that replays its corpus; a panic anywhere is a bug.
pub fn fuzz_one(bytes: &[u8]) {
    let options = Options {
        budget: Duration::from_millis(10),
        ..Options::default()
    };
    let path = Path::new("fuzz.onnx");
    for planning_only in [false, true] {
        let imported = import::import_bytes(
            bytes,
            path,
            &import::ImportOptions {
                input_shape: None,
                planning_only,
            },
        );
        let Ok(graph) = imported else { continue };
        if let Ok(compiled) = plan_graph(graph, &options) {
            if !planning_only {
                let _ = compiled.to_tokens(None);
            }
        }
    }
}

/// Imports, optimises, schedules and places the model at `path`.
pub fn compile(path: &Path, options: &Options) -> Result<Compiled> {
    let graph = import::import(
        path,
        &import::ImportOptions {
            input_shape: options.input_shape.clone(),
            planning_only: false,
        },
    )?;
    plan_graph(graph, options)
}

/// As [`compile`], but nodes with no kernel are kept for planning (as
/// [`ir::Op::Opaque`]): the plan of any model tract can type. Such a plan cannot be turned
/// into code.
pub fn plan_model(path: &Path, options: &Options) -> Result<Compiled> {
    let graph = import::import(
        path,
        &import::ImportOptions {
            input_shape: options.input_shape.clone(),
            planning_only: true,
        },
    )?;
    plan_graph(graph, options)
}

/// The stages after import, on a graph already in our IR.
///
/// Sharing memory is a choice: the plain model (nothing shared), every sharing the graph
/// allows, in place only and zero-copy concatenation only are each scheduled and placed, and
/// the best then improves by flipping one concatenation at a time. The plain plan is a
/// candidate, so the result is never worse than it.
pub fn plan_graph(mut graph: ir::Graph, options: &Options) -> Result<Compiled> {
    if !options.alignment.is_power_of_two() {
        return Err(Error::Model(format!(
            "alignment {} must be a power of two",
            options.alignment
        )));
    }
    // Offsets must suit every element type in the arena: below 4 only for int8-only arenas.
    let mut used = vec![false; graph.tensors.len()];
    for n in &graph.nodes {
        used[n.output.0] = true;
        for t in &n.inputs {
            used[t.0] = true;
        }
    }
    for t in graph.inputs.iter().chain(&graph.outputs) {
        used[t.0] = true;
    }
    if let Some(t) = graph
        .tensors
        .iter()
        .zip(&used)
        .find(|(t, &u)| u && t.in_arena() && t.dtype.size() > options.alignment)
    {
        return Err(Error::Model(format!(
            "alignment {} is too small for tensor `{}` ({:?}, {} bytes per element); use at least {}",
            options.alignment,
            t.0.name,
            t.0.dtype,
            t.0.dtype.size(),
            t.0.dtype.size()
        )));
    }
    // The baseline: the graph as written, one buffer per op output, nothing shared.
    let baseline_start = Instant::now();
    let mut written = graph.without_weight_data();
    passes::as_written(&mut written);
    let written_plan = evaluate(
        &written,
        &ir::Sharing::default(),
        SharingChoice::none(),
        options.alignment,
        schedule::SearchLimits {
            budget: options.budget,
            ..Default::default()
        },
    );
    let baseline_time = baseline_start.elapsed();
    passes::optimize(&mut graph);
    // Planning time: the baseline above and everything from here (not the passes).
    let start = Instant::now() - baseline_time;
    let sharing = graph.sharing();
    let limits = schedule::SearchLimits {
        budget: options.budget,
        ..Default::default()
    };
    let plain = evaluate(
        &graph,
        &sharing,
        SharingChoice::none(),
        options.alignment,
        limits,
    );
    let baseline = |name: &str| {
        let schedule = plain
            .scheduled
            .seeds
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a named seed")
            .1
            .clone();
        let plan = place::place(&graph, &plain.model, &schedule);
        OrderPlan { schedule, plan }
    };
    let file_order = baseline("file");
    let tract_order = baseline("tract");
    let file_order_arena_bytes = file_order.plan.arena_bytes;
    let tract_order_arena_bytes = tract_order.plan.arena_bytes;
    let plain_arena = plain.plan.arena_bytes;
    let plain_optimal = plain.scheduled.optimal;

    let mut forced_arena = plain_arena;
    let mut best = plain;
    let n_slots = sharing.concat_slots.len();
    let anything_to_share = n_slots > 0 || sharing.in_place.iter().any(|p| !p.is_empty());
    if anything_to_share {
        let choices = [
            SharingChoice::all(&sharing),
            SharingChoice {
                in_place: true,
                slots: vec![false; n_slots],
            },
            SharingChoice {
                in_place: false,
                slots: vec![true; n_slots],
            },
        ];
        for (k, choice) in choices.into_iter().enumerate() {
            let c = evaluate(&graph, &sharing, choice, options.alignment, limits);
            if k == 0 {
                forced_arena = c.plan.arena_bytes;
            }
            if c.plan.arena_bytes <= best.plan.arena_bytes {
                best = c;
            }
        }
        // Local search over the concatenations: all slots of one concatenation at once,
        // then single slots, until nothing improves or the time is up.
        let deadline = start + options.budget * 2;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (k, slot) in sharing.concat_slots.iter().enumerate() {
            match groups.last_mut() {
                Some(g) if sharing.concat_slots[g[0]].node == slot.node => g.push(k),
                _ => groups.push(vec![k]),
            }
        }
        // Single slots too, where a concatenation has several.
        let singles: Vec<Vec<usize>> = groups
            .iter()
            .filter(|g| g.len() > 1)
            .flat_map(|g| g.iter().map(|&k| vec![k]))
            .collect();
        let moves: Vec<Vec<usize>> = groups.into_iter().chain(singles).collect();
        let mut improved = true;
        while improved && Instant::now() < deadline {
            improved = false;
            for mv in &moves {
                if Instant::now() >= deadline {
                    break;
                }
                let mut choice = best.choice.clone();
                let on = !mv.iter().all(|&k| choice.slots[k]);
                for &k in mv {
                    choice.slots[k] = on;
                }
                let remaining = deadline.saturating_duration_since(Instant::now());
                let c = evaluate(
                    &graph,
                    &sharing,
                    choice,
                    options.alignment,
                    schedule::SearchLimits {
                        budget: remaining.min(options.budget),
                        ..limits
                    },
                );
                if c.plan.arena_bytes < best.plan.arena_bytes {
                    best = c;
                    improved = true;
                }
            }
        }
    }
    let Evaluated {
        choice,
        model,
        scheduled,
        schedule,
        plan,
    } = best;
    let peak_live_bytes = model.peak(&schedule.indices());
    let stats = PlanStats {
        peak_live_bytes,
        min_peak_bytes: scheduled.peak_live_bytes,
        optimal: scheduled.optimal,
        planning_ms: start.elapsed().as_secs_f64() * 1e3,
        file_order_arena_bytes,
        tract_order_arena_bytes,
        plain_arena_bytes: written_plan.plan.arena_bytes,
        fused_plain_arena_bytes: plain_arena,
        forced_sharing_arena_bytes: forced_arena,
        plain_optimal,
        in_place_nodes: plan.in_place.iter().filter(|p| p.is_some()).count(),
        zero_copy_slots: choice.slots.iter().filter(|&&s| s).count(),
        search_states: scheduled.states,
        segments: scheduled.segments,
    };
    Ok(Compiled {
        graph,
        schedule,
        plan,
        stats,
        file_order,
        tract_order,
    })
}

/// One sharing choice, scheduled and placed.
struct Evaluated {
    choice: SharingChoice,
    model: schedule::memory::MemoryModel,
    scheduled: schedule::Scheduled,
    schedule: schedule::Schedule,
    plan: place::ArenaPlan,
}

fn evaluate(
    graph: &ir::Graph,
    sharing: &ir::Sharing,
    choice: SharingChoice,
    alignment: usize,
    limits: schedule::SearchLimits,
) -> Evaluated {
    let model = schedule::memory::MemoryModel::with_sharing(graph, alignment, sharing, &choice);
    let scheduled = schedule::plan_for(graph, &model, limits);
    let mut schedule = scheduled.schedule.clone();
    let mut plan = place::place(graph, &model, &schedule);
    // The objective is the placed arena: where placement leaves a gap above the optimal
    // order's peak, another order may place better.
    if plan.arena_bytes > plan.lower_bound() {
        for (_, s) in &scheduled.seeds {
            let p = place::place(graph, &model, s);
            if p.arena_bytes < plan.arena_bytes {
                schedule = s.clone();
                plan = p;
            }
        }
    }
    Evaluated {
        choice,
        model,
        scheduled,
        schedule,
        plan,
    }
}

/// The step where the arena peaks, for messages: what runs and what is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeakStep {
    /// Step number (0-based).
    pub step: usize,
    /// ONNX node name of the op that runs.
    pub node: String,
    /// Its ONNX op type.
    pub op_type: String,
    /// Live bytes during the step.
    pub bytes: usize,
    /// The tensors held, largest first: name and bytes.
    pub live: Vec<(String, usize)>,
}

impl Compiled {
    /// The step with the most live bytes (the first one, on ties).
    pub fn peak_step(&self) -> Option<PeakStep> {
        let (step, &bytes) = self
            .plan
            .step_live_bytes
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|(_, b)| **b)?;
        let node = &self.graph.nodes[self.schedule.order.get(step)?.0];
        let mut live: Vec<(String, usize)> = self
            .graph
            .tensors
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                self.plan.offsets[*i].is_some()
                    && self.plan.lifetimes[*i].is_some_and(|l| l.first <= step && step <= l.last)
            })
            .map(|(_, t)| (t.name.clone(), t.bytes()))
            .collect();
        live.sort_by_key(|(n, b)| (std::cmp::Reverse(*b), n.clone()));
        Some(PeakStep {
            step,
            node: node.name.clone(),
            op_type: node.op_type.clone(),
            bytes,
            live,
        })
    }

    /// The generated module items (see [`codegen::generate`]).
    pub fn to_tokens(&self, model_path: Option<&Path>) -> proc_macro2::TokenStream {
        codegen::generate(&self.graph, &self.schedule, &self.plan, model_path, None)
    }

    /// The generated module items with `Model::self_test`, embedding `self_test`'s input and
    /// expected output (see [`self_test::build`]).
    pub fn to_tokens_with_self_test(
        &self,
        model_path: Option<&Path>,
        self_test: &self_test::SelfTest,
    ) -> proc_macro2::TokenStream {
        codegen::generate(
            &self.graph,
            &self.schedule,
            &self.plan,
            model_path,
            Some(self_test),
        )
    }

    /// Runs the plan on the host with the runtime's kernels (see [`exec`]).
    pub fn run(&self, inputs: &[&[f32]]) -> Vec<Vec<f32>> {
        exec::run(&self.graph, &self.schedule, &self.plan, inputs)
    }
}
