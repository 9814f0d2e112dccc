//! Reproducible builds: planning is counted in work, not time, so the same model and options
//! give the same generated code on an idle machine and on one whose every core is busy, and
//! `microarena plan --json` reports the arena the compiled model has.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use microarena_compiler::{compile, report, Options};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every model file under tests/models (and its subfolders: ONNX and `.tflite`), sorted.
fn models() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("models dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "onnx" || e == "tflite")
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("tests/models"), &mut out);
    out.sort();
    out
}

/// Runs `f` while every core but none of `f`'s own is kept busy by a spinning thread (as
/// cargo compiling other crates keeps a proc macro's machine busy).
fn under_load<T>(f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let out = f();
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().expect("spinner");
    }
    out
}

/// `plan --json` without its two timings (the only figures that may differ between runs).
fn without_timings(mut v: serde_json::Value) -> serde_json::Value {
    let o = v.as_object_mut().expect("an object");
    assert!(o.remove("planning_ms").is_some() && o.remove("total_ms").is_some());
    v
}

/// `path` compiled in this process with the default options: the generated code and what
/// `microarena plan --json` prints of it (timings aside), or the error's message.
fn compiled(path: &Path) -> Result<(String, serde_json::Value), String> {
    let c = compile(path, &Options::default()).map_err(|e| e.to_string())?;
    let json = without_timings(report::json(&c, 0.0));
    Ok((c.to_tokens(Some(path)).to_string(), json))
}

/// `microarena plan --json` of `path` started in the CLI (it runs beside what the test does
/// next); [`plan_json`] reads its answer.
fn start_plan_json(path: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_microarena"))
        .arg("plan")
        .arg(path)
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs")
}

/// The JSON (timings aside) of a [`start_plan_json`] run, or its error message.
fn plan_json(child: std::process::Child) -> Result<serde_json::Value, String> {
    let out = child.wait_with_output().expect("runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    Ok(without_timings(v))
}

/// Each model planned three times: in this process idle and under load (the generated code
/// and the plan's JSON compared), and by the CLI beside the first (its JSON against the
/// idle one: what `plan` prints is what the macro builds). The CLI runs the same library
/// call as the macro, which the second comparison shows load does not change; it runs beside
/// the idle compile rather than under the spinning load (which doubled this test's time on
/// the CI's two cores).
#[test]
fn plans_are_the_same_idle_and_under_load() {
    let mut compared = 0;
    for path in models() {
        let name = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        // The CLI on one core while this process compiles on the other (the CI has two).
        let cli = start_plan_json(&path);
        let idle = compiled(&path);
        let cli = plan_json(cli);
        let busy = under_load(|| compiled(&path));
        assert!(
            idle == busy,
            "{name}: the generated code or its plan differs under load"
        );
        match (&idle, &cli) {
            (Ok((code, json)), Ok(cli)) => {
                assert_eq!(json, cli, "{name}: microarena plan --json");
                // The compiled ARENA_BYTES is the one `plan` prints.
                let arena = json["arena_bytes"].as_u64().expect("arena_bytes");
                assert!(
                    code.contains(&format!("ARENA_BYTES : usize = {arena} ;")),
                    "{name}: plan --json's arena_bytes {arena} against the compiled ARENA_BYTES"
                );
                // And WEIGHT_BYTES its weight_bytes.
                let weights = json["weight_bytes"].as_u64().expect("weight_bytes");
                assert!(
                    code.contains(&format!("WEIGHT_BYTES : usize = {weights} ;")),
                    "{name}: plan --json's weight_bytes {weights} against WEIGHT_BYTES"
                );
                compared += 1;
            }
            // Models that need options (input shapes, constants) are refused alike.
            (Err(_), Err(_)) => {}
            (i, c) => panic!(
                "{name}: the macro's compiler and the CLI disagree: {:?} / {:?}",
                i.as_ref().err(),
                c.as_ref().err()
            ),
        }
    }
    assert!(
        compared >= 30,
        "only {compared} models compiled with the default options"
    );
}
