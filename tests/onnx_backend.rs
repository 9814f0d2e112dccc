//! The onnx wheel's own per-op test cases (`onnx/backend/test/data/pytorch-converted/*` and
//! `pytorch-operator/*`: model.onnx + test_data_set_0/input_0.pb, output_0.pb), compiled and
//! run by microarena's host interpreter against the outputs shipped with the wheel.
//!
//! The wheel is found through `$ONNX_BACKEND_DATA` (the `.../onnx/backend/test/data`
//! directory; `.ci/run` sets it), else through `python3 -c "import onnx"`. Without it the
//! test fails and says how to install it: a skipped oracle is not a passing one.

use std::path::Path;

use microarena_tests::assert_close;
use prost::Message;
use tract_onnx::pb;

/// Cases we do not run, and why. The test fails if one of these starts to compile (update
/// the list and the README) or if a case outside it fails to compile.
const NOT_SUPPORTED: &[(&str, &str)] = &[
    ("test_AvgPool3d", "3-D pooling"),
    ("test_AvgPool3d_stride", "3-D pooling"),
    ("test_AvgPool3d_stride1_pad0_gpu_input", "3-D pooling"),
    ("test_Conv3d", "3-D convolution"),
    ("test_Conv3d_dilated", "3-D convolution"),
    ("test_Conv3d_dilated_strided", "3-D convolution"),
    ("test_Conv3d_groups", "3-D convolution"),
    ("test_Conv3d_no_bias", "3-D convolution"),
    ("test_Conv3d_stride", "3-D convolution"),
    ("test_Conv3d_stride_padding", "3-D convolution"),
    ("test_ConvTranspose2d", "ConvTranspose"),
    ("test_ConvTranspose2d_no_bias", "ConvTranspose"),
    ("test_Embedding", "int64 graph input (Gather)"),
    ("test_Embedding_sparse", "int64 graph input (Gather)"),
    ("test_MaxPool3d", "3-D pooling"),
    ("test_MaxPool3d_stride", "3-D pooling"),
    ("test_MaxPool3d_stride_padding", "3-D pooling"),
    (
        "test_PReLU_1d_multiparam",
        "tract cannot type this PRelu broadcast",
    ),
    (
        "test_PReLU_2d_multiparam",
        "tract cannot type this PRelu broadcast",
    ),
    (
        "test_PReLU_3d_multiparam",
        "tract cannot type this PRelu broadcast",
    ),
    ("test_operator_add_broadcast", "f64 graph input"),
    ("test_operator_add_size1_broadcast", "f64 graph input"),
    ("test_operator_add_size1_right_broadcast", "f64 graph input"),
    (
        "test_operator_add_size1_singleton_broadcast",
        "f64 graph input",
    ),
    ("test_operator_addconstant", "f64 graph input"),
    ("test_operator_convtranspose", "ConvTranspose"),
    ("test_operator_non_float_params", "int64 graph input"),
    ("test_operator_repeat", "Tile"),
    ("test_operator_repeat_dim_overflow", "Tile"),
];

fn load_tensor(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = pb::TensorProto::decode(&bytes[..]).expect("TensorProto");
    let shape = t.dims.iter().map(|&d| d as usize).collect();
    let data = if t.data_type != 1 {
        vec![]
    } else if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    (shape, data)
}

#[test]
fn onnx_backend_cases() {
    let root = microarena_tests::onnx_backend_data();
    let mut ran = Vec::new();
    let mut failures = Vec::new();
    for family in ["pytorch-converted", "pytorch-operator"] {
        let dir = root.join(family);
        let mut cases: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        cases.sort();
        assert!(
            cases.len() > 20,
            "{}: only {} cases",
            dir.display(),
            cases.len()
        );
        for case in cases {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            let expected_unsupported = NOT_SUPPORTED.iter().find(|(n, _)| *n == name);
            let set = case.join("test_data_set_0");
            let result =
                microarena_compiler::compile(&case.join("model.onnx"), &Default::default())
                    .map_err(|e| e.to_string());
            match (result, expected_unsupported) {
                (Err(_), Some(_)) => continue,
                (Ok(_), Some((_, why))) => {
                    failures.push(format!("{name}: listed as unsupported ({why}) but compiles; update NOT_SUPPORTED and the README"));
                }
                (Err(e), None) => failures.push(format!("{name}: does not compile: {e}")),
                (Ok(c), None) => {
                    let inputs: Vec<Vec<f32>> = (0..c.graph.inputs.len())
                        .map(|i| {
                            let (shape, x) = load_tensor(&set.join(format!("input_{i}.pb")));
                            assert_eq!(
                                shape.iter().product::<usize>(),
                                x.len(),
                                "{name}: input {i}"
                            );
                            x
                        })
                        .collect();
                    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
                    let got = c.run(&refs);
                    // The reference outputs come from PyTorch; 1e-4 relative as for tract, with
                    // an absolute floor of 1e-4 for the near-zero values of long sums.
                    let check = std::panic::catch_unwind(|| {
                        for (i, got) in got.iter().enumerate() {
                            let (_, want) = load_tensor(&set.join(format!("output_{i}.pb")));
                            assert_close(&format!("{name} output {i}"), got, &want, 1e-4, 1e-4);
                        }
                    });
                    if let Err(e) = check {
                        let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
                        failures.push(msg);
                    } else {
                        ran.push(name);
                    }
                }
            }
        }
    }
    eprintln!(
        "{} backend cases ran and matched: {}",
        ran.len(),
        ran.join(" ")
    );
    assert!(
        failures.is_empty(),
        "{} backend case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran.len() >= 80, "only {} cases ran", ran.len());
}
