//! The microarena model compiler.
//!
//! `import` (ONNX → tract → [`ir::Graph`]) → [`passes`] → [`plan`] ([`schedule`] and
//! [`place`]) → [`codegen`]; each stage hands one data type to the next. The proc macro
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

#![deny(missing_docs)]

/// The runtime's kernels (the `microarena-kernels` crate, which the `microarena` runtime
/// re-exports): the compiler runs plans on the host with the very kernels the device runs
/// (see [`exec`]), and its IR carries their parameter structs.
pub use microarena_kernels as kernels;

pub mod carry;
pub mod codegen;
pub mod error;
pub mod exec;
pub mod import;
pub mod ir;
pub mod ops;
pub mod passes;
pub mod place;
pub mod plan;
pub mod report;
pub mod schedule;
pub mod self_test;

use std::path::Path;
use std::time::Duration;

pub use error::{Error, Result};
pub use plan::{plan_graph, OrderPlan, PlanStats};

/// Default alignment of arena offsets, in bytes (the runtime's `arena::ALIGN`).
pub const DEFAULT_ALIGNMENT: usize = 16;

pub use plan::work::DEFAULT_WORK;

/// Everything a compilation can be asked to do differently.
#[derive(Clone, Debug)]
pub struct Options {
    /// Shape of the single graph input when the model leaves dimensions symbolic.
    pub input_shape: Option<Vec<usize>>,
    /// Shapes of graph inputs by name, for models of several inputs.
    pub input_shapes: Vec<(String, Vec<usize>)>,
    /// Graph inputs fixed for this build (see [`import::ImportOptions::const_inputs`]):
    /// baked in as constants before tract simplifies the graph; `run` does not take them.
    pub const_inputs: Vec<(String, import::Scalar)>,
    /// Alignment of arena offsets, in bytes.
    pub alignment: usize,
    /// Work planning may spend, in work units (see [`plan::work`]; default [`DEFAULT_WORK`],
    /// about 2 s of search on the development machine): the order searches, the sharing
    /// choices, placement and the streamed stages share it. When a search runs out of it,
    /// the best order found is used and [`PlanStats::optimal`] is false. The plan is a
    /// function of the model and the options alone: the same on every machine, under any
    /// load.
    pub work: u64,
    /// Also stop planning after this wall-clock time. Off by default: with it, the plan
    /// depends on the machine's speed and load (not reproducible).
    pub time_limit: Option<Duration>,
    /// Whether the planner may stream the first stages (see `plan::stream`); kept only
    /// where it shrinks the arena.
    pub streaming: bool,
    /// Whether `run` copies every graph input into the arena. By default a streamed stage
    /// that is a graph input's only reader reads its rows where the caller passes them, and
    /// [`place::ArenaPlan::arena_bytes`] does not count that input (it is the caller's
    /// array); `true` keeps the copy (the arena of earlier versions, for comparisons).
    pub copy_input: bool,
    /// How much slower (percent, estimated for the Cortex-M4) streamed stages may make one
    /// inference: the planner keeps the smallest arena whose stages' estimated extra
    /// instructions stay within this share of the model's own (estimated low, see
    /// `plan::stream::cost_estimate`). Default [`DEFAULT_STREAM_COST_PERCENT`]; more lets
    /// narrower bands (less RAM, more calls) through.
    pub stream_cost_percent: u32,
    /// Carried state (see [`carry`]): `None` pairs outputs with inputs by name (`hN` with
    /// `h`); `Some` gives the (output, input) pairs by name, `Some(vec![])` none.
    pub carry: Option<Vec<(String, String)>>,
}

/// The default of [`Options::stream_cost_percent`]: measured costs on the MLPerf-Tiny-shaped
/// networks then stay within +10% (the estimate is rough).
pub const DEFAULT_STREAM_COST_PERCENT: u32 = 8;

impl Default for Options {
    fn default() -> Self {
        Options {
            input_shape: None,
            input_shapes: Vec::new(),
            const_inputs: Vec::new(),
            alignment: DEFAULT_ALIGNMENT,
            work: DEFAULT_WORK,
            time_limit: None,
            streaming: true,
            copy_input: false,
            stream_cost_percent: DEFAULT_STREAM_COST_PERCENT,
            carry: None,
        }
    }
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
    /// The baseline of the ONNX file's order: the optimised graph before streaming in that
    /// order, placed with nothing shared (as a runtime without in-place or zero-copy buffers
    /// or streamed stages runs it). For reports.
    pub file_order: OrderPlan,
    /// The baseline of tract's `eval_order_opt_ram` order, likewise nothing shared and not
    /// streamed.
    pub tract_order: OrderPlan,
}

/// One fuzzing step: `bytes` as a model file through import, planning (with a short search
/// budget) and code generation, errors ignored. Used by the cargo-fuzz target (`fuzz/`) and
/// by the regression test that replays its corpus; a panic anywhere is a bug.
pub fn fuzz_one(bytes: &[u8]) {
    let options = Options {
        work: DEFAULT_WORK / 200,
        ..Options::default()
    };
    let path = Path::new("fuzz.onnx");
    for planning_only in [false, true] {
        let imported = import::import_bytes(
            bytes,
            path,
            &import::ImportOptions {
                planning_only,
                ..Default::default()
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
            input_shapes: options.input_shapes.clone(),
            const_inputs: options.const_inputs.clone(),
            planning_only: false,
        },
    )?;
    let mut graph = graph;
    graph.carry = carry::resolve(&graph, options.carry.as_deref())?;
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
            input_shapes: options.input_shapes.clone(),
            const_inputs: options.const_inputs.clone(),
            planning_only: true,
        },
    )?;
    let mut graph = graph;
    graph.carry = carry::resolve(&graph, options.carry.as_deref())?;
    plan_graph(graph, options)
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
