//! x86-64 kernels: each a `#[target_feature]` function compiled into every x86-64 build and
//! called where the build enables its features or (with the `std` feature) the CPU reports
//! them ([`crate::cpu`]).
//!
//! | file | what |
//! |---|---|
//! | `rows.rs` | f32 row tiles: AVX2 + FMA (4 channels × 16 pixels), AVX-512 (8 × 16), depthwise |
//! | `flat.rs` | f32 over flattened phase planes (AVX-512): dense and depthwise |
//! | `flat_i8.rs` | int8 over flattened pair planes (AVX-512BW, VNNI) |
//! | `int8.rs` | AVX2 int8: depthwise planes, 4 × 2 dot products, requantisation of 8 lanes |

mod flat;
mod flat_i8;
mod int8;
mod rows;

pub use super::flat::Flat;
pub use flat::*;
pub use flat_i8::*;
pub use int8::*;
pub use rows::*;
