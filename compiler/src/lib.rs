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

pub use error::{Error, Result};

/// Default alignment of arena offsets, in bytes (the runtime's `arena::ALIGN`).
pub const DEFAULT_ALIGNMENT: usize = 16;

/// Everything a compilation can be asked to do differently.
#[derive(Clone, Debug)]
pub struct Options {
    /// Shape of the single graph input when the model leaves dimensions symbolic.
    pub input_shape: Option<Vec<usize>>,
    /// Alignment of arena offsets, in bytes.
    pub alignment: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            input_shape: None,
            alignment: 16,
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
}

/// Imports, optimises, schedules and places the model at `path`.
pub fn compile(path: &Path, options: &Options) -> Result<Compiled> {
    let graph = import::import(
        path,
        &import::ImportOptions {
            input_shape: options.input_shape.clone(),
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
    let schedule = schedule::Schedule::file_order(&graph);
    let plan = place::place(&graph, &schedule, options.alignment);
    Ok(Compiled {
        graph,
        schedule,
        plan,
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
