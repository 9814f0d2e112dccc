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
pub mod passes;
pub mod place;
pub mod schedule;

use std::path::Path;
use std::time::{Duration, Instant};

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
pub fn plan_graph(mut graph: ir::Graph, options: &Options) -> Result<Compiled> {
    if options.alignment == 0
        || !options.alignment.is_power_of_two()
        || !options.alignment.is_multiple_of(4)
    {
        return Err(Error::Model(format!(
            "alignment {} must be a power of two and a multiple of 4",
            options.alignment
        )));
    }
    passes::optimize(&mut graph);
    let start = Instant::now();
    let limits = schedule::SearchLimits {
        budget: options.budget,
        ..Default::default()
    };
    let scheduled = schedule::plan(&graph, options.alignment, limits);
    let mut schedule = scheduled.schedule.clone();
    let mut plan = place::place(&graph, &schedule, options.alignment);
    // The objective is the placed arena: where placement leaves a gap above the optimal
    // order's peak, another order may place better.
    let baseline = |name: &str| {
        let s = &scheduled
            .seeds
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a named seed")
            .1;
        (s.clone(), place::place(&graph, s, options.alignment))
    };
    let (file_schedule, file_plan) = baseline("file");
    let (tract_schedule, tract_plan) = baseline("tract");
    let mut candidates = vec![
        (file_schedule, file_plan.clone()),
        (tract_schedule, tract_plan.clone()),
    ];
    if plan.arena_bytes > plan.lower_bound() {
        for (_, s) in &scheduled.seeds[2..] {
            let p = place::place_greedy(&graph, s, options.alignment);
            candidates.push((s.clone(), p));
        }
        for (s, p) in candidates {
            if p.arena_bytes < plan.arena_bytes {
                schedule = s;
                plan = p;
            }
        }
    }
    let peak_live_bytes =
        schedule::memory::MemoryModel::new(&graph, options.alignment).peak(&schedule.indices());
    let stats = PlanStats {
        peak_live_bytes,
        min_peak_bytes: scheduled.peak_live_bytes,
        optimal: scheduled.optimal,
        planning_ms: start.elapsed().as_secs_f64() * 1e3,
        file_order_arena_bytes: file_plan.arena_bytes,
        tract_order_arena_bytes: tract_plan.arena_bytes,
        search_states: scheduled.states,
        segments: scheduled.segments,
    };
    Ok(Compiled {
        graph,
        schedule,
        plan,
        stats,
    })
}

impl Compiled {
    /// The generated module items (see [`codegen::generate`]).
    pub fn to_tokens(&self, model_path: Option<&Path>) -> proc_macro2::TokenStream {
        codegen::generate(&self.graph, &self.schedule, &self.plan, model_path)
    }

    /// Runs the plan on the host with the runtime's kernels (see [`exec`]).
    pub fn run(&self, inputs: &[&[f32]]) -> Vec<Vec<f32>> {
        exec::run(&self.graph, &self.schedule, &self.plan, inputs)
    }
}
