//! The `microarena plan` command, run as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_microarena"))
        .arg("plan")
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs")
}

#[test]
fn json_has_the_documented_fields() {
    let out = plan(&[
        "tests/models/chain.onnx",
        "--json",
        "--effort",
        "25",
        "--no-streaming",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["arena_bytes"], 107_776);
    assert_eq!(v["peak_live_bytes"], 107_776);
    assert_eq!(v["lower_bound_bytes"], 107_776);
    assert_eq!(v["optimal"], true);
    assert!(v["planning_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    let work = v["work_units"].as_u64().expect("work_units");
    assert!(work <= microarena_compiler::DEFAULT_WORK / 4, "{work}");
    assert_eq!(v["baselines"]["file_order_arena_bytes"], 107_776);
    assert_eq!(v["baselines"]["tract_order_arena_bytes"], 107_776);
    let steps = v["steps"].as_array().expect("steps");
    let live: Vec<u64> = steps
        .iter()
        .map(|s| s["live_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(live, [69_888, 107_776, 62_720, 13_056, 560, 96]);
    assert_eq!(steps[0]["op_type"], "Conv");
    assert!(steps.iter().all(|s| s["op"].is_string()));
    assert_eq!(v["unstreamed_arena_bytes"], 107_776);
    assert_eq!(v["stages"].as_array().map(Vec::len), Some(0));
}

#[test]
fn json_lists_the_streamed_stages() {
    let out = plan(&["tests/models/chain.onnx", "--json", "--budget-ms", "5000"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["unstreamed_arena_bytes"], 107_776);
    let arena = v["arena_bytes"].as_u64().unwrap();
    assert!(arena < 107_776 / 2, "{arena}");
    let stages = v["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 1);
    let ops: Vec<&str> = stages[0]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert_eq!(v["steps"][0]["op_type"], "Stream");
    let buffers: u64 = stages[0]["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bytes"].as_u64().unwrap())
        .sum();
    assert!(buffers <= stages[0]["scratch_bytes"].as_u64().unwrap());
}

#[test]
fn plans_models_with_ops_that_have_no_kernel_only_when_asked() {
    // ConvTranspose has no kernel: the macro refuses the model, and so does `plan` (a plan
    // that prints always builds), naming the op.
    let out = plan(&["tests/ui/data/unsupported_op.onnx"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ConvTranspose"), "{err}");
    // `--planning-only` plans it by its shapes.
    let out = plan(&["tests/ui/data/unsupported_op.onnx", "--planning-only"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("ConvTranspose"), "{text}");
    assert!(text.contains("arena:"), "{text}");
    assert!(text.contains("416 B"), "{text}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let out = plan(&["tests/ui/data/not_onnx.onnx"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a valid ONNX model"), "{err}");
    let out = plan(&["tests/models/chain.onnx", "--budget-ms", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--budget-ms"));
    let out = plan(&["tests/models/chain.onnx", "--effort", "-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--effort `-1`"));
    let out = plan(&["missing.onnx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read model"));
    // Every hostile file of the compile-fail cases: one `error:` message, exit status 1, no
    // panic and no backtrace.
    for (file, says) in [
        ("tests/ui/data", "is a directory"),
        ("tests/ui/data/empty.onnx", "the file is empty"),
        ("tests/ui/data/random.onnx", "failed to decode"),
        ("tests/ui/data/truncated.onnx", "failed to decode"),
        ("tests/ui/data/bad_opset.onnx", "opset 99"),
        ("tests/ui/data/symbolic.onnx", "symbolic dimensions"),
    ] {
        let out = plan(&[file]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{file}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{file}: {err}"
        );
    }
    let out = plan(&["tests/ui/data/rank4.onnx", "--input-shape", "1,3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has rank 4"));
}

#[test]
fn weight_bytes_count_what_goes_to_flash() {
    // The seed network's parameters: conv 3→16 3×3 (+bias), conv 16→16 3×3 (+bias),
    // dense 3136→128 (+bias), dense 128→10 (+bias), as f32.
    let params = (16 * 3 * 9 + 16) + (16 * 16 * 9 + 16) + (3136 * 128 + 128) + (128 * 10 + 10);
    let out = plan(&["tests/models/chain.onnx", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["weight_bytes"], 4 * params);
}

/// The generated `Model` documents its schedule and arena layout (what `cargo doc` shows).
#[test]
fn generated_docs_carry_the_memory_tables() {
    let c = microarena_compiler::compile(
        &root().join("tests/models/chain.onnx"),
        &microarena_compiler::Options::default(),
    )
    .expect("compiles");
    let tokens = c.to_tokens(None).to_string();
    assert!(
        tokens.contains(&format!("Arena: {} bytes", c.plan.arena_bytes)),
        "{}",
        &tokens[..400.min(tokens.len())]
    );
    assert!(tokens.contains("| step | ONNX node | op | live bytes |"));
    assert!(tokens.contains("| tensor | shape | type | bytes | offset | live in steps |"));
    for (k, n) in c.schedule.order.iter().enumerate() {
        let node = &c.graph.nodes[n.0];
        let row = format!(
            "| {} | `{}` | {} | {} |",
            k + 1,
            node.name,
            node.op.family(),
            c.plan.step_live_bytes[k]
        );
        assert!(tokens.contains(&row), "missing row {row}");
    }
}
