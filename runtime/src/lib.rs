//! # microarena
//!
//! Compiles an ONNX network at `cargo build` time into straight-line, allocation-free Rust:
//! weights live in flash as `static`s, every intermediate tensor lives at a fixed offset in
//! one statically sized arena, and the schedule is a list of calls into the `no_std` kernels
//! of this crate.
//!
//! ```ignore
//! mod kws { microarena::include_model!("models/kws.onnx"); }
//! const _: () = assert!(kws::ARENA_BYTES <= 48 * 1024); // fails the build if it doesn't fit
//!
//! let mut model = kws::Model::new();
//! let mut output = [0.0f32; kws::OUTPUT_LEN];
//! model.run(&[0.0; kws::INPUT_LEN], &mut output);
//! ```
//!
//! The generated module (see the crate README for the full API) holds:
//! `ARENA_BYTES`, `INPUT_SHAPE`, `OUTPUT_SHAPE`, `INPUT_LEN`, `OUTPUT_LEN` and `Model` with
//! `const fn new()` and `run(&mut self, &[f32; INPUT_LEN], &mut [f32; OUTPUT_LEN])`.
//!
//! The kernels in [`kernels`] (the `microarena-kernels` crate, re-exported) are plain
//! functions on slices; the generated code calls them with compile-time constant shapes, so
//! they are also usable (and tested) on their own.
#![no_std]
#![deny(missing_docs)]

#[cfg(target_endian = "big")]
compile_error!("microarena stores weights little-endian; big-endian targets are not supported");

pub mod arena;
pub mod self_test;

pub use arena::{Arena, Region, Weights};
#[doc(inline)]
pub use microarena_kernels as kernels;
pub use microarena_macros::include_model;
