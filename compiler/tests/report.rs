//! `microarena report`: the SVG is well-formed XML with one polyline per order (one point per
//! step) and one rectangle per arena tensor, it renders, and the README's pictures are current.

use std::path::{Path, PathBuf};
use std::process::Command;

use microarena_compiler::{compile, report, Compiled, Options};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compiled(model: &str) -> Compiled {
    compile(
        &root().join("tests/models").join(model),
        &Options::default(),
    )
    .expect("compiles")
}

/// Checks the structure of the picture of `c` against the plan it draws.
fn check_structure(name: &str, c: &Compiled, svg: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{name}: not XML: {e}"));
    let polylines: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .collect();
    let orders: Vec<&str> = polylines
        .iter()
        .map(|p| p.attribute("data-order").unwrap_or(""))
        .collect();
    assert_eq!(orders, ["file", "tract", "ours"], "{name}");
    for (p, t) in polylines.iter().zip(report::timelines(c)) {
        let points: Vec<(f64, f64)> = p
            .attribute("points")
            .expect("points")
            .split_whitespace()
            .map(|xy| {
                let (x, y) = xy.split_once(',').expect("x,y");
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(
            points.len(),
            t.live_bytes.len(),
            "{name} {}: one point per step",
            t.key
        );
        assert_eq!(t.steps.len(), t.live_bytes.len(), "{name} {}", t.key);
        assert!(
            points.windows(2).all(|w| w[0].0 < w[1].0),
            "{name}: x increases"
        );
        // Higher live bytes are drawn higher (smaller y): the curve follows the data.
        for s in 0..points.len() {
            for u in 0..points.len() {
                if t.live_bytes[s] > t.live_bytes[u] {
                    assert!(points[s].1 < points[u].1, "{name} {}: steps {s} {u}", t.key);
                }
            }
        }
    }
    let rects: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some("tensor"))
        .collect();
    // A stage's scratch shows its buffers (windows, band, kernel scratch), one rectangle each.
    let windows = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some("window"))
        .count();
    let buffers: usize = microarena_compiler::plan::stream::stages(&c.graph)
        .map(|(_, s)| s.buffers.len())
        .sum();
    assert_eq!(windows, buffers, "{name}: one rectangle per stage buffer");
    if name == "chain.onnx" {
        assert!(buffers > 0, "{name}: the seed network streams");
    }
    let arena = report::arena_tensors(c);
    assert_eq!(
        rects.len(),
        arena.len(),
        "{name}: one rectangle per arena tensor"
    );
    // Every tensor is drawn, named in its tooltip, with a height in proportion to its bytes
    // (heights are rounded to 0.1 px and at least 0.5 px so that tiny tensors show).
    let heights: Vec<(usize, f64)> = arena
        .iter()
        .map(|&i| {
            let t = &c.graph.tensors[i];
            let r = rects
                .iter()
                .find(|r| {
                    r.children().any(|k| {
                        k.has_tag_name("title")
                            && k.text()
                                .is_some_and(|s| s.starts_with(&format!("{} [", t.name)))
                    })
                })
                .unwrap_or_else(|| panic!("{name}: no rectangle for {}", t.name));
            (t.bytes(), r.attribute("height").unwrap().parse().unwrap())
        })
        .collect();
    let &(big_bytes, big_h) = heights.iter().max_by_key(|(b, _)| *b).unwrap();
    let scale = big_h / big_bytes as f64;
    for (bytes, h) in heights {
        let want = (bytes as f64 * scale).max(0.5);
        assert!(
            (h - want).abs() <= 0.1 + 0.001 * want,
            "{name}: {bytes} B drawn {h} px, want {want}"
        );
    }
}

/// Renders to PNG pixels and checks the picture is not blank.
fn render(name: &str, svg: &str) -> Vec<u8> {
    let mut opt = resvg::usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_str(svg, &opt).unwrap_or_else(|e| panic!("{name}: {e}"));
    let size = tree.size().to_int_size();
    assert!(
        size.width() >= 800 && size.height() >= 600,
        "{name}: {size:?}"
    );
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::identity(),
        &mut pixmap.as_mut(),
    );
    let data = pixmap.data();
    let white = data
        .chunks(4)
        .filter(|p| p == &[255, 255, 255, 255])
        .count();
    let total = data.len() / 4;
    assert!(
        white < total * 97 / 100,
        "{name}: nearly blank ({white} of {total} white)"
    );
    assert!(
        white > total / 3,
        "{name}: no white background ({white} of {total} white)"
    );
    pixmap.encode_png().expect("PNG")
}

#[test]
fn svg_draws_every_order_and_tensor() {
    for model in [
        "chain.onnx",
        "inception.onnx",
        "densenet.onnx",
        "random_dag.onnx",
        "int8/inception_qdq.onnx",
    ] {
        let c = compiled(model);
        let svg = report::svg(&c, model, Some(64 * 1024));
        check_structure(model, &c, &svg);
        render(model, &svg);
    }
}

/// The README shows docs/report-chain.svg and docs/report-random_dag.svg (and their PNG
/// renderings). They must be what `microarena report` draws today: this fails when a change
/// to the planner or the drawing leaves them stale; `MICROARENA_UPDATE_PICTURES=1 cargo test
/// -p microarena-compiler --test report` rewrites them.
#[test]
fn readme_pictures_are_current() {
    let update = std::env::var_os("MICROARENA_UPDATE_PICTURES").is_some();
    for model in ["chain", "random_dag"] {
        let c = compiled(&format!("{model}.onnx"));
        let svg = report::svg(&c, &format!("{model}.onnx"), Some(64 * 1024));
        let svg_path = root().join(format!("docs/report-{model}.svg"));
        let png = render(model, &svg);
        if update {
            std::fs::write(&svg_path, &svg).unwrap();
            std::fs::write(root().join(format!("docs/report-{model}.png")), png).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&svg_path).unwrap_or_default();
        assert!(
            committed == svg,
            "{} is stale: run MICROARENA_UPDATE_PICTURES=1 cargo test -p microarena-compiler --test report",
            svg_path.display()
        );
        assert!(root().join(format!("docs/report-{model}.png")).exists());
    }
}

#[test]
fn cli_writes_the_report() {
    let out_path =
        std::env::temp_dir().join(format!("microarena-report-{}.svg", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_microarena"))
        .args(["report"])
        .arg(root().join("tests/models/inception.onnx"))
        .arg("-o")
        .arg(&out_path)
        .args(["--budget", "65536"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("arena 53,248 B"), "{stdout}");
    let svg = std::fs::read_to_string(&out_path).unwrap();
    std::fs::remove_file(&out_path).ok();
    assert!(svg.contains("SRAM budget 65,536 B"));
    check_structure("inception (CLI)", &compiled("inception.onnx"), &svg);
    // Without -o it is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_microarena"))
        .args(["report"])
        .arg(root().join("tests/models/inception.onnx"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-o FILE.svg"));
}

#[test]
fn plan_text_puts_the_three_orders_side_by_side() {
    let out = Command::new(env!("CARGO_BIN_EXE_microarena"))
        .args(["plan"])
        .arg(root().join("tests/models/inception.onnx"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("The three orders side by side"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(table[0].contains("ONNX file order") && table[0].contains("tract order"));
    assert!(table[0].contains("microarena order"));
    let c = compiled("inception.onnx");
    // Header, one row per step (of the longest order), peak and arena rows.
    let steps = report::timelines(&c).map(|t| t.steps.len());
    assert_eq!(table.len(), 1 + steps.iter().max().unwrap() + 2, "{text}");
    let last_numbers = |row: &str| -> Vec<String> {
        row.split_whitespace()
            .filter(|w| w.chars().all(|ch| ch.is_ascii_digit() || ch == ','))
            .map(str::to_string)
            .collect()
    };
    let arena_row = table.last().unwrap();
    let want: Vec<String> = report::timelines(&c)
        .iter()
        .map(|t| report::thousands(t.arena_bytes))
        .collect();
    assert_eq!(last_numbers(arena_row), want, "{arena_row}");
    assert_eq!(want, ["81,920", "81,920", "53,248"]);
}

/// The seed network: the baselines are what a runtime without our planning needs (the file's
/// and tract's orders, nothing shared, not streamed: 107,776 B), beside our streamed plan
/// (22,272 B), in the CLI's summary, the text table and the picture's title; the baselines
/// have one step per op, ours one per stage.
#[test]
fn report_baselines_are_unoptimised() {
    let c = compiled("chain.onnx");
    let [file, tract, ours] = report::timelines(&c);
    assert_eq!(
        (file.arena_bytes, tract.arena_bytes, ours.arena_bytes),
        (107_776, 107_776, 22_272)
    );
    assert_eq!(file.steps.len(), 6);
    assert!(ours.steps.len() < file.steps.len(), "{:?}", ours.steps);
    let svg = report::svg(&c, "chain.onnx", None);
    assert!(
        svg.contains("arena: file 107,776 B · tract 107,776 B · ours 22,272 B"),
        "{svg}"
    );
    check_structure("chain.onnx (baselines)", &c, &svg);
    let out_path =
        std::env::temp_dir().join(format!("microarena-chain-{}.svg", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_microarena"))
        .args(["report"])
        .arg(root().join("tests/models/chain.onnx"))
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    std::fs::remove_file(&out_path).ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("arena 22,272 B (file order 107,776 B, tract order 107,776 B)"),
        "{stdout}"
    );
}
