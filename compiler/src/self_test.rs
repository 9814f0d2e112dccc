//! The build-time self-test (`include_model!(.., self_test = true)`).
//!
//! At expansion time the plan runs on the host with the runtime's own kernels ([`crate::exec`])
//! on a deterministic input. For float models the result is checked against tract running the
//! same file (tract-onnx, or tract-tflite for a `.tflite`): a disagreement is a compile error, so the build itself proves the plan
//! right. (int8 models are not checked against tract: tract runs quantized Softmax wrongly;
//! their kernels are checked layer by layer against onnxruntime in the tests.) The input and
//! the expected output are then embedded in the generated module, and its
//! `Model::self_test()` re-runs the plan on the device and compares.
//!
//! Both are kept as the arena holds them (int8 for quantized tensors), so the device-side
//! check needs no buffer beyond the arena and compares int8 results exactly.

use std::path::Path;

use crate::exec::{self, Values};
use crate::ir::{DType, Graph, TensorKind};
use crate::{Compiled, Error, Result};

/// Relative tolerance of the device-side check for f32 outputs, as a fraction of the output's
/// largest magnitude (at least 1). Host and device run the same kernels in the same order in
/// IEEE single precision, so they agree bit for bit in practice; this only leaves room for
/// a different libm or denormal handling, far below the change a flipped exponent or high
/// mantissa bit of a weight makes.
pub const DEVICE_F32_TOLERANCE: f32 = 1e-5;

/// Tolerance of the build-time comparison with tract: `|ours - tract| <= REL * |tract| +
/// ABS * max(1, max |tract|)`. tract sums in another order (and with other kernels), so the
/// last bits differ; the floor scales with the output's magnitude, where sums of products of
/// mixed sign lose their relative precision near zero.
pub const TRACT_REL: f32 = 1e-4;
/// See [`TRACT_REL`].
pub const TRACT_ABS: f32 = 1e-5;

/// What the generated `self_test` embeds: the inputs and the expected outputs, as the arena
/// holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfTest {
    /// One per graph input, in the arena's element type.
    pub inputs: Vec<Values>,
    /// One per graph output, in the arena's element type.
    pub outputs: Vec<Values>,
    /// True when the outputs were also checked against tract (float models).
    pub checked_against_tract: bool,
}

/// A deterministic pseudo-random sequence (SplitMix64): the same input on every build.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// The deterministic interface inputs of `g`: floats in [-1, 1), int8/uint8 over their range.
pub fn interface_inputs(g: &Graph) -> Vec<Values> {
    let mut rng = Stream(0x6d69_6372_6f61_7265); // "microare"
    g.inputs
        .iter()
        .enumerate()
        .map(|(k, &t)| {
            let n = g.tensor(t).len();
            if g.input_quant(k).is_some() || g.tensor(t).dtype == DType::F32 {
                Values::F32((0..n).map(|_| rng.f32()).collect())
            } else if g.input_is_unsigned(k) {
                Values::U8((0..n).map(|_| rng.next() as u8).collect())
            } else {
                Values::I8((0..n).map(|_| rng.next() as i8).collect())
            }
        })
        .collect()
}

fn is_tflite_file(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| crate::import::tflite::is_tflite(&b))
}

/// True when every tensor of the graph is f32: the plan can be checked against tract.
fn is_float(g: &Graph) -> bool {
    // Kernel scratch counts in 32-bit words whatever the model (streamed stages have some).
    g.tensors
        .iter()
        .filter(|t| t.kind != TensorKind::Scratch)
        .all(|t| t.dtype == DType::F32)
        && (0..g.inputs.len()).all(|k| g.input_quant(k).is_none())
}

/// Runs the plan on the deterministic input and, for float models, checks it against tract
/// running the ONNX file at `path`.
pub fn build(c: &Compiled, path: &Path) -> Result<SelfTest> {
    let g = &c.graph;
    let interface = interface_inputs(g);
    let inputs = exec::arena_inputs(g, &interface);
    let outputs = exec::run_arena(g, &c.schedule, &c.plan, &inputs, |_, _| {});
    let mut checked_against_tract = is_float(g);
    let reference = if checked_against_tract {
        match tract_outputs(g, path, &interface) {
            Ok(r) => Some(r),
            // tract-tflite cannot run every file we can (a float model with int8 weights,
            // dequantized at build time here): such a model is checked on the device only.
            Err(Error::Load { .. }) if is_tflite_file(path) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    checked_against_tract &= reference.is_some();
    if let Some(reference) = reference {
        for (k, (ours, theirs)) in outputs.iter().zip(&reference).enumerate() {
            let ours = ours.f32();
            let name = &g.tensor(g.outputs[k]).name;
            if ours.len() != theirs.len() {
                return Err(Error::Model(format!(
                    "self_test: output `{name}` has {} elements in microarena's plan but {} in tract's",
                    ours.len(),
                    theirs.len()
                )));
            }
            let scale = theirs.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (index, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
                let tolerance = TRACT_REL * b.abs() + TRACT_ABS * scale;
                // NaN anywhere is a disagreement (the comparison below is false for it).
                let agree = (a - b).abs() <= tolerance || (a.is_infinite() && a == b);
                if !agree {
                    return Err(Error::SelfTest {
                        output: name.clone(),
                        index,
                        ours: a,
                        reference: b,
                        tolerance,
                    });
                }
            }
        }
    }
    Ok(SelfTest {
        inputs,
        outputs,
        checked_against_tract,
    })
}

/// tract's optimised plan of the model file on `inputs` (f32), one vector per graph output:
/// tract-onnx's for an ONNX file, tract-tflite's for a `.tflite` one.
fn tract_outputs(g: &Graph, path: &Path, inputs: &[Values]) -> Result<Vec<Vec<f32>>> {
    use tract_onnx::prelude::*;
    crate::import::guarded(path, || {
        let bytes = std::fs::read(path)?;
        let runnable = if crate::import::tflite::is_tflite(&bytes) {
            tract_tflite::tflite()
                .model_for_read(&mut &bytes[..])?
                .into_optimized()?
                .into_runnable()?
        } else {
            let mut model = crate::import::tract_model(path, g)?;
            for k in 0..g.inputs.len() {
                model = model.with_input_fact(k, f32::fact(g.input_shape(k)).into())?;
            }
            model.into_optimized()?.into_runnable()?
        };
        let mut tensors = TVec::new();
        for (k, x) in inputs.iter().enumerate() {
            // The interface's shape (a TFLite file's NHWC), as the file declares it.
            let a = tract_ndarray::ArrayD::from_shape_vec(g.input_shape(k), x.f32().to_vec())?;
            tensors.push(Tensor::from(a).into());
        }
        let out = runnable.run(tensors)?;
        out.iter()
            .map(|t| Ok(t.to_plain_array_view::<f32>()?.iter().copied().collect()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_stream_is_fixed_and_spread() {
        let mut a = Stream(1);
        let mut b = Stream(1);
        let xs: Vec<f32> = (0..1000).map(|_| a.f32()).collect();
        assert!(xs.iter().all(|x| (-1.0..1.0).contains(x)));
        assert_eq!(xs, (0..1000).map(|_| b.f32()).collect::<Vec<_>>());
        let mean = xs.iter().sum::<f32>() / 1000.0;
        assert!(mean.abs() < 0.1, "{mean}");
        assert!(xs.iter().any(|&x| x < -0.9) && xs.iter().any(|&x| x > 0.9));
    }
}
