//! Every model in tests/models, planned and run by the host interpreter, against the
//! committed onnxruntime outputs.

use std::path::PathBuf;

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/models")
}

fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn interpreter_matches_onnxruntime() {
    let mut names: Vec<String> = std::fs::read_dir(models_dir())
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".onnx")
                .map(String::from)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let dir = models_dir();
        let c =
            microarena_compiler::compile(&dir.join(format!("{name}.onnx")), &Default::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Err(e) = microarena_compiler::place::check(&c.graph, &c.plan) {
            panic!("{name}: invalid placement: {e}");
        }
        let x = read_f32(&dir.join(format!("{name}.input.bin")));
        let want = read_f32(&dir.join(format!("{name}.output.bin")));
        let got = c.run(&[&x]).remove(0);
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 + 1e-4 * w.abs(),
                "{name}[{i}]: got {g}, onnxruntime {w}"
            );
        }
        eprintln!(
            "{name}: {} nodes, arena {} B, bound {} B",
            c.graph.nodes.len(),
            c.plan.arena_bytes,
            c.plan.lower_bound()
        );
    }
}
