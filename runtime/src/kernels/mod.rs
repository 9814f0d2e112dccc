//! The `no_std`, allocation-free kernels the generated schedule calls.
//!
//! One module per op family; each kernel takes a small `Copy` parameter struct (all shapes
//! known at compile time) and plain slices. Layout is NCHW with batch 1 throughout.
//! The compiler's `codegen/<family>.rs` emits the calls these modules implement.

pub mod activation;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod normalization;
pub mod pool;
pub mod quant;
pub mod reduce;
pub mod shape;
pub mod softmax;

pub use activation::Activation;

/// Highest tensor rank the generic (strided) kernels handle.
pub const MAX_RANK: usize = 6;
