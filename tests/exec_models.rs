//! Every model in tests/models, planned and run by the host interpreter, against the
//! committed onnxruntime outputs.

use microarena_tests::{models_dir, read_f32};

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

/// The build-time self-test is a real check: a plan that computes something else than tract
/// (here: one weight changed after planning) is refused with the output and element named;
/// the intact plan passes, and int8 plans are not compared with tract.
#[test]
fn build_time_self_test_refuses_a_wrong_plan() {
    use microarena_compiler::ir::TensorKind;
    use microarena_compiler::{compile, self_test, Error, Options};
    let path = models_dir().join("residual.onnx");
    let mut c = compile(&path, &Options::default()).unwrap();
    let st = self_test::build(&c, &path).expect("the plan agrees with tract");
    assert!(st.checked_against_tract);
    assert_eq!(st.outputs.len(), 1);
    let w = c
        .graph
        .tensors
        .iter_mut()
        .rev()
        .find_map(|t| match &mut t.kind {
            TensorKind::Weight(w) if w.len() > 1 => Some(w),
            _ => None,
        })
        .unwrap();
    w.iter_mut().for_each(|v| *v *= 1.5);
    match self_test::build(&c, &path) {
        Err(e @ Error::SelfTest { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("by microarena's plan but"), "{msg}");
        }
        other => panic!("expected a self-test error, got {other:?}"),
    }
    let q = models_dir().join("int8/dwsep_qdq.onnx");
    let c = compile(&q, &Options::default()).unwrap();
    let st = self_test::build(&c, &q).unwrap();
    assert!(!st.checked_against_tract);
    assert!(matches!(
        st.inputs[0],
        microarena_compiler::exec::Values::I8(_)
    ));
}
