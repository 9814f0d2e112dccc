//! Helpers shared by the workspace-level tests: reference data, tract as an oracle, and
//! the comparison with a stated tolerance.

pub mod onnx;

use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

/// `tests/models` of this workspace.
pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

/// Reads a little-endian f32 file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{}: not whole f32s", path.display());
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// An int8 file of reference data (raw bytes).
pub fn read_i8(path: &Path) -> Vec<i8> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|b| b as i8)
        .collect()
}

/// Runs a model with tract (typed, decluttered, optimised) on one f32 input.
pub fn tract_run(path: &Path, input_shape: &[usize], input: &[f32]) -> TractResult<Vec<f32>> {
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact(input_shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let x = tract_ndarray::ArrayD::from_shape_vec(input_shape.to_vec(), input.to_vec())?;
    let out = model.run(tvec!(Tensor::from(x).into()))?;
    let view = out[0].to_plain_array_view::<f32>()?;
    Ok(view.iter().copied().collect())
}

/// Runs an in-memory model with tract on one f32 input.
pub fn tract_run_bytes(
    bytes: &[u8],
    input_shape: &[usize],
    input: &[f32],
) -> TractResult<Vec<f32>> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])?
        .with_input_fact(0, f32::fact(input_shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let x = tract_ndarray::ArrayD::from_shape_vec(input_shape.to_vec(), input.to_vec())?;
    let out = model.run(tvec!(Tensor::from(x).into()))?;
    let view = out[0].to_plain_array_view::<f32>()?;
    Ok(view.iter().copied().collect())
}

/// Compiles an in-memory model and runs the plan with the host interpreter.
pub fn microarena_run_bytes(
    bytes: &[u8],
    input: &[f32],
) -> Result<Vec<f32>, microarena_compiler::Error> {
    let graph = microarena_compiler::import::import_bytes(
        bytes,
        Path::new("case.onnx"),
        &Default::default(),
    )?;
    let compiled = microarena_compiler::plan_graph(graph, &Default::default())?;
    assert!(
        microarena_compiler::place::is_valid(&compiled.graph, &compiled.plan),
        "invalid placement"
    );
    assert!(
        compiled.schedule.is_valid(&compiled.graph),
        "invalid schedule"
    );
    Ok(compiled.run(&[input]).remove(0))
}

/// Element-wise comparison: `|got - want| <= abs + rel * |want|`, panicking with the worst
/// element. `rel` is the tolerance the issue sets (1e-4); `abs` is the floor for values near
/// zero, where a relative bound is meaningless after sums of products of mixed sign.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    // (index, how far past the tolerance); a NaN on one side only is infinitely far.
    let mut worst: Option<(usize, f32)> = None;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.is_nan() && w.is_nan() {
            continue;
        }
        let tolerance = abs + rel * w.abs();
        let err = (g - w).abs();
        let excess = if err.is_nan() {
            f32::INFINITY
        } else {
            err - tolerance
        };
        if excess > 0.0 && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}[{i}]: got {}, want {} (tolerance {abs} + {rel}×|want|)",
            got[i], want[i]
        );
    }
}

/// The onnx wheel's `onnx/backend/test/data` directory: `$ONNX_BACKEND_DATA`, else asked of
/// `$MICROARENA_PYTHON` (default `python3`). Panics with instructions when neither has it:
/// the tests that need it fail rather than skip.
pub fn onnx_backend_data() -> PathBuf {
    if let Some(d) = std::env::var_os("ONNX_BACKEND_DATA") {
        return PathBuf::from(d);
    }
    let python = std::env::var("MICROARENA_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-c", "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend', 'test', 'data'))"])
        .output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => panic!(
            "the onnx wheel's backend test data was not found: `pip install onnx` for `{python}` \
             (or set MICROARENA_PYTHON to a Python that has it, or ONNX_BACKEND_DATA to its \
             onnx/backend/test/data directory)"
        ),
    }
}
