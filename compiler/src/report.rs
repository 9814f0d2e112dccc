//! Report: what a plan does with the RAM, as text tables and as one SVG picture.
//!
//! Both compare three plans of the same network: the ONNX file's order and tract's order
//! (the optimised graph unstreamed, each placed with nothing shared, as a runtime without
//! in-place or zero-copy buffers or streamed stages runs it) and ours (order, sharing and
//! streamed stages). The SVG draws (1) the live bytes per step of each, with our arena and an
//! optional SRAM budget as horizontal lines (a streamed plan has fewer steps: every line
//! spans the plot's width), and (2) the arena map: each tensor a rectangle, x its lifetime in
//! steps, y its offset, coloured by the op family that writes it.
//!
//! ```no_run
//! let c = microarena_compiler::compile(
//!     std::path::Path::new("tests/models/inception.onnx"),
//!     &microarena_compiler::Options::default(),
//! )?;
//! std::fs::write("report.svg", microarena_compiler::report::svg(&c, "inception.onnx", None))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write;

use crate::ir::TensorKind;
use crate::Compiled;

/// One order of the graph and the live bytes at each of its steps.
#[derive(Clone, Debug)]
pub struct Timeline<'a> {
    /// Short key: `file`, `tract` or `ours`.
    pub key: &'static str,
    /// What the order is, for legends.
    pub label: &'static str,
    /// Each step's node label (ONNX name, or op type when unnamed), in order.
    pub steps: Vec<&'a str>,
    /// Live bytes during each step.
    pub live_bytes: &'a [usize],
    /// The arena that order needs, placed.
    pub arena_bytes: usize,
}

/// The three plans the reports compare: the file order and tract's order (unoptimised:
/// nothing shared, not streamed), and ours.
pub fn timelines(c: &Compiled) -> [Timeline<'_>; 3] {
    fn labels(o: &crate::OrderPlan) -> Vec<&str> {
        o.labels.iter().map(String::as_str).collect()
    }
    [
        Timeline {
            key: "file",
            label: "ONNX file order, nothing shared, not streamed",
            steps: labels(&c.file_order),
            live_bytes: &c.file_order.plan.step_live_bytes,
            arena_bytes: c.file_order.plan.arena_bytes,
        },
        Timeline {
            key: "tract",
            label: "tract's order, nothing shared, not streamed",
            steps: labels(&c.tract_order),
            live_bytes: &c.tract_order.plan.step_live_bytes,
            arena_bytes: c.tract_order.plan.arena_bytes,
        },
        Timeline {
            key: "ours",
            label: "microarena (order + sharing + streaming)",
            steps: c
                .schedule
                .order
                .iter()
                .map(|v| node_label(c, v.0))
                .collect(),
            live_bytes: &c.plan.step_live_bytes,
            arena_bytes: c.plan.arena_bytes,
        },
    ]
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Arena tensors in order of first use (the numbering of the text tables, from 1).
pub fn arena_tensors(c: &Compiled) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..c.graph.tensors.len())
        .filter(|&i| c.plan.offsets[i].is_some())
        .collect();
    ids.sort_by_key(|&i| (c.plan.lifetimes[i].map(|l| l.first), i));
    ids
}

/// The label of a node for tables and axes: its ONNX name, or its op type when unnamed.
fn node_label(c: &Compiled, v: usize) -> &str {
    let n = &c.graph.nodes[v];
    if n.name.is_empty() {
        &n.op_type
    } else {
        &n.name
    }
}

/// At most `max` characters of `s`, keeping the end (ONNX names end in what is specific).
fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_string()
    } else {
        let kept: String = s.chars().skip(n - (max - 1)).collect();
        format!("…{kept}")
    }
}

/// The `microarena plan` text: the arena tensors, the schedule of the three orders side by
/// side (op and live bytes per step), and the figures.
pub fn text(c: &Compiled, model: &std::path::Path, total_ms: f64) -> String {
    let mut o = String::new();
    let ids = arena_tensors(c);
    let mut number = vec![0; c.graph.tensors.len()];
    for (k, &i) in ids.iter().enumerate() {
        number[i] = k + 1;
    }
    let _ = writeln!(
        o,
        "{}: {} steps, weights {} B (flash), {} MACs",
        model.display(),
        c.schedule.len(),
        thousands(c.graph.weight_bytes()),
        thousands(c.graph.macs() as usize)
    );
    let _ = writeln!(o, "\nTensors in the arena (weights excluded):");
    let _ = writeln!(
        o,
        "{:>4}  {:<40} {:<20} {:>12} {:>12}",
        "Id", "Tensor", "Shape", "Size (B)", "Offset"
    );
    for &i in &ids {
        let t = &c.graph.tensors[i];
        let _ = writeln!(
            o,
            "{:>4}  {:<40} {:<20} {:>12} {:>12}",
            number[i],
            t.name,
            format!("{:?}", t.shape),
            thousands(t.bytes()),
            thousands(c.plan.offsets[i].unwrap_or(0))
        );
    }
    for t in &c.graph.tensors {
        if let crate::ir::TensorKind::Caller(_) = t.kind {
            let _ = writeln!(
                o,
                "      graph input `{}` {:?} ({} B) is read by a streamed stage where the caller passes it: not in the arena",
                t.name,
                t.shape,
                thousands(t.bytes())
            );
        }
    }
    for &(out, inp) in &c.graph.carry {
        let t = c.graph.tensor(c.graph.inputs[inp]);
        let _ = writeln!(
            o,
            "      carried state: output `{}` is the next call's input `{}` ({} B kept by the model, outside the arena)",
            c.graph.output_name(out),
            t.name,
            thousands(t.bytes())
        );
    }
    let _ = writeln!(o, "\nOperator execution schedule (microarena's order):");
    let _ = writeln!(
        o,
        "{:>4}  {:<40} {:<12} {:<24} {:>12}",
        "Step", "Operator (output name)", "Op", "Tensors in memory (Ids)", "Memory (B)"
    );
    for (s, n) in c.schedule.order.iter().enumerate() {
        let node = &c.graph.nodes[n.0];
        let live: Vec<String> = ids
            .iter()
            .filter(|&&i| c.plan.lifetimes[i].is_some_and(|l| l.first <= s && s <= l.last))
            .map(|&i| number[i].to_string())
            .collect();
        let _ = writeln!(
            o,
            "{:>4}  {:<40} {:<12} {:<24} {:>12}",
            s + 1,
            c.graph.tensors[node.output.0].name,
            node.op_type,
            format!("[{}]", live.join(", ")),
            thousands(c.plan.step_live_bytes[s])
        );
    }
    let lines = timelines(c);
    let _ = writeln!(
        o,
        "\nThe three orders side by side (live bytes per step; file and tract orders with nothing shared, not streamed):"
    );
    let _ = write!(o, "{:>4}", "Step");
    for t in &lines {
        let head = match t.key {
            "ours" => "microarena order",
            "file" => "ONNX file order",
            _ => "tract order",
        };
        let _ = write!(o, "  {:<28} {:>10}", head, "Live (B)");
    }
    let _ = writeln!(o);
    // A streamed plan has fewer steps than the unstreamed baselines: its column ends first.
    let rows = lines.iter().map(|t| t.steps.len()).max().unwrap_or(0);
    for s in 0..rows {
        let _ = write!(o, "{:>4}", s + 1);
        for t in &lines {
            match (t.steps.get(s), t.live_bytes.get(s)) {
                (Some(label), Some(live)) => {
                    let _ = write!(o, "  {:<28} {:>10}", tail(label, 28), thousands(*live));
                }
                _ => {
                    let _ = write!(o, "  {:<28} {:>10}", "", "");
                }
            }
        }
        o.truncate(o.trim_end().len());
        let _ = writeln!(o);
    }
    let _ = write!(o, "{:>4}", "peak");
    for t in &lines {
        let peak = t.live_bytes.iter().copied().max().unwrap_or(0);
        let _ = write!(o, "  {:<28} {:>10}", "", thousands(peak));
    }
    let _ = writeln!(o);
    let _ = write!(o, "{:>4}", "arena");
    for t in &lines {
        let _ = write!(o, "  {:<28} {:>10}", "", thousands(t.arena_bytes));
    }
    let _ = writeln!(o);

    let st = &c.stats;
    let bound = c.plan.lower_bound();
    let _ = writeln!(o);
    let _ = writeln!(o, "arena:             {} B", thousands(c.plan.arena_bytes));
    let _ = writeln!(
        o,
        "peak live bytes:   {} B (this order)",
        thousands(st.peak_live_bytes)
    );
    let _ = writeln!(
        o,
        "lower bound:       {} B (placement gap {} B)",
        thousands(bound),
        thousands(c.plan.arena_bytes - bound)
    );
    let _ = writeln!(
        o,
        "order:             {} (minimum peak {} B; {} search states, {} segments)",
        if st.optimal {
            "optimal"
        } else {
            "best found, not proven optimal (budget ran out)"
        },
        thousands(st.min_peak_bytes),
        st.search_states,
        st.segments
    );
    let _ = writeln!(
        o,
        "sharing:           {} nodes in place, {} concatenation inputs zero-copy",
        st.in_place_nodes, st.zero_copy_slots
    );
    let _ = writeln!(
        o,
        "plain arena:       {} B (graph as written, nothing shared)",
        thousands(st.plain_arena_bytes)
    );
    let _ = writeln!(
        o,
        "fused, unshared:   {} B (activations fused, no in place or zero-copy)",
        thousands(st.fused_plain_arena_bytes)
    );
    let _ = writeln!(
        o,
        "forced sharing:    {} B (every in place and zero-copy taken)",
        thousands(st.forced_sharing_arena_bytes)
    );
    let _ = writeln!(
        o,
        "file order arena:  {} B",
        thousands(st.file_order_arena_bytes)
    );
    let _ = writeln!(
        o,
        "tract order arena: {} B",
        thousands(st.tract_order_arena_bytes)
    );
    let _ = writeln!(
        o,
        "planning time:     {:.1} ms (with loading: {:.0} ms)",
        st.planning_ms, total_ms
    );
    o
}

/// Text for SVG: `&`, `<`, `>` and quotes escaped.
fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// A round axis maximum at or above `v` bytes, and its tick step: whole KiB (or MiB) from
/// 2 KiB up, so that the tick labels read `16 KiB`, `32 KiB`, ...
fn axis(v: usize) -> (f64, f64) {
    if v >= 2 << 20 {
        let (m, s) = decimal_axis(v as f64 / (1 << 20) as f64);
        return (m * (1 << 20) as f64, s * (1 << 20) as f64);
    }
    if v >= 2 << 10 {
        let (m, s) = decimal_axis(v as f64 / 1024.0);
        return (m * 1024.0, s * 1024.0);
    }
    decimal_axis(v as f64)
}

/// A round axis maximum at or above `v` (a multiple of 1, 2, 2.5 or 5 times a power of
/// ten), and its tick step; at most six ticks.
fn decimal_axis(v: f64) -> (f64, f64) {
    let v = v.max(1.0);
    let mut step = 10f64.powf(v.log10().floor() - 1.0);
    for m in [1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0] {
        let s = step * m;
        if (v / s).ceil() <= 6.0 {
            step = s;
            break;
        }
    }
    ((v / step).ceil() * step, step)
}

/// Bytes for an axis tick: `0`, `512 B`, `48 KiB`, `1.5 MiB`.
fn bytes_label(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{} MiB", trim(b / (1024.0 * 1024.0)))
    } else if b >= 1024.0 {
        format!("{} KiB", trim(b / 1024.0))
    } else {
        format!("{} B", trim(b))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Colours of the orders (file, tract, ours) and of op families (a qualitative palette).
const ORDER_COLOURS: [&str; 3] = ["#8c8c8c", "#e08a1e", "#1f5fbf"];
const FAMILY_COLOURS: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#86bcb6", "#d37295",
];

/// The report picture: the live-bytes timeline of the three orders over the arena map.
///
/// `title` heads the picture (the model's file name, say); `budget`, when given, is drawn as
/// the SRAM budget line. The SVG has one `<polyline>` per order (one point per step) and one
/// `<rect>` per arena tensor, each with a `<title>` a browser shows on hover; nothing else is a
/// polyline or a rectangle.
pub fn svg(c: &Compiled, title: &str, budget: Option<usize>) -> String {
    let lines = timelines(c);
    let n = c.schedule.len().max(1);
    let width = 1000.0;
    let left = 80.0;
    let right = 24.0;
    let pw = width - left - right;
    let label_every = n.div_ceil(70);
    let font = if n > 40 { 8.0 } else { 10.0 };
    // Panel 1: timeline.
    let t_top = 120.0;
    let t_h = 300.0;
    // Room for the rotated op names: the longest one at ~0.6 em per character.
    let longest = c
        .schedule
        .order
        .iter()
        .map(|v| tail(node_label(c, v.0), 26).chars().count())
        .max()
        .unwrap_or(0);
    let labels_h = 30.0 + longest as f64 * font * 0.6 * 0.91;
    // Panel 2: arena map.
    let m_top = t_top + t_h + labels_h + 56.0;
    let m_h = 320.0;
    let legend_top = m_top + m_h + 40.0;
    let families = family_legend(c);
    let legend_rows = families.len().div_ceil(6);
    let height = legend_top + 22.0 * legend_rows as f64 + 20.0;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        o,
        r##"<path d="M0 0 H{width} V{height} H0 Z" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        o,
        r#"<text x="{left}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        xml(&format!(
            "{title}: live bytes per step and arena map ({} steps)",
            c.schedule.len()
        ))
    );
    let summary: Vec<String> = lines
        .iter()
        .map(|t| format!("{} {} B", t.key, thousands(t.arena_bytes)))
        .collect();
    let _ = writeln!(
        o,
        r##"<text x="{left}" y="44" fill="#444">{}</text>"##,
        xml(&format!("arena: {}", summary.join(" · ")))
    );

    // --- Timeline ---------------------------------------------------------------------
    let top_value = lines
        .iter()
        .flat_map(|t| t.live_bytes.iter().copied().chain([t.arena_bytes]))
        .chain(budget)
        .max()
        .unwrap_or(1);
    let (ymax, ystep) = axis(top_value);
    let x_of = |s: f64| left + s * pw / n as f64;
    // Each order's line spans the width: step s of `len` at the same fraction of the plot.
    let x_along = |s: usize, len: usize| left + (s as f64 + 0.5) * pw / len.max(1) as f64;
    let y_of = |b: f64| t_top + t_h - b / ymax * t_h;
    frame(
        &mut o,
        left,
        t_top,
        pw,
        t_h,
        ymax,
        ystep,
        "live bytes",
        y_of,
    );
    for (t, colour) in lines.iter().zip(ORDER_COLOURS) {
        let points: Vec<String> = t
            .live_bytes
            .iter()
            .enumerate()
            .map(|(s, &b)| {
                let x = x_along(s, t.live_bytes.len());
                format!("{x:.1},{:.1}", y_of(b as f64))
            })
            .collect();
        let dash = if t.key == "ours" {
            ""
        } else {
            r#" stroke-dasharray="6 3""#
        };
        let _ = writeln!(
            o,
            r#"<polyline class="order" data-order="{}" points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}><title>{}</title></polyline>"#,
            t.key,
            points.join(" "),
            xml(&format!(
                "{}: peak {} B, arena {} B",
                t.label,
                thousands(t.live_bytes.iter().copied().max().unwrap_or(0)),
                thousands(t.arena_bytes)
            ))
        );
    }
    // Horizontal lines: our arena, the budget.
    let mut hline = |value: usize, colour: &str, text: String| {
        let y = y_of(value as f64);
        let _ = writeln!(
            o,
            r#"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="1" stroke-dasharray="2 2"/>"#,
            left + pw
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{colour}">{}</text>"#,
            left + pw - 4.0,
            y - 4.0,
            xml(&text)
        );
    };
    hline(
        c.plan.arena_bytes,
        ORDER_COLOURS[2],
        format!("our arena {} B", thousands(c.plan.arena_bytes)),
    );
    if let Some(b) = budget {
        hline(b, "#c0392b", format!("SRAM budget {} B", thousands(b)));
    }
    // Op names of our order along the x axis.
    for (s, v) in c.schedule.order.iter().enumerate() {
        if s % label_every != 0 {
            continue;
        }
        let x = x_of(s as f64 + 0.5) + font / 3.0;
        let y = t_top + t_h + 6.0;
        let _ = writeln!(
            o,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{font}" text-anchor="end" transform="rotate(-65 {x:.1} {y:.1})">{}</text>"#,
            xml(&tail(node_label(c, v.0), 26))
        );
    }
    let axis_caption = if lines.iter().all(|t| t.live_bytes.len() == n) {
        "step (op names: microarena's order)"
    } else {
        "step (op names: microarena's order; the unstreamed orders' steps spread over the same width)"
    };
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">{axis_caption}</text>"##,
        left + pw / 2.0,
        t_top + t_h + labels_h + 6.0
    );
    // Legend of the orders, between the title and the plot.
    for (k, (t, colour)) in lines.iter().zip(ORDER_COLOURS).enumerate() {
        let y = 62.0 + 16.0 * k as f64;
        let x = left + 12.0;
        let dash = if t.key == "ours" {
            ""
        } else {
            r#" stroke-dasharray="6 3""#
        };
        let _ = writeln!(
            o,
            r#"<line x1="{x}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2"{dash}/>"#,
            x + 24.0
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 30.0,
            y + 4.0,
            xml(&format!(
                "{} (peak {} B)",
                t.label,
                thousands(t.live_bytes.iter().copied().max().unwrap_or(0))
            ))
        );
    }

    // --- Arena map --------------------------------------------------------------------
    let _ = writeln!(
        o,
        r#"<text x="{left}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
        m_top - 12.0,
        xml(&format!(
            "Arena map of microarena's plan ({} B, alignment {})",
            thousands(c.plan.arena_bytes),
            c.plan.alignment
        ))
    );
    let (amax, astep) = axis(c.plan.arena_bytes);
    let ay_of = |b: f64| m_top + m_h - b / amax * m_h;
    frame(&mut o, left, m_top, pw, m_h, amax, astep, "offset", ay_of);
    // Largest first, so that slices of a zero-copy concatenation are drawn over it.
    let mut ids = arena_tensors(c);
    ids.sort_by_key(|&i| std::cmp::Reverse(c.graph.tensors[i].bytes()));
    let colour_of = |fam: &str| {
        let k = families.iter().position(|f| *f == fam).unwrap_or(0);
        FAMILY_COLOURS[k % FAMILY_COLOURS.len()]
    };
    for i in ids {
        let t = &c.graph.tensors[i];
        let (Some(offset), Some(life)) = (c.plan.offsets[i], c.plan.lifetimes[i]) else {
            continue;
        };
        let fam = producer_family(c, i);
        let x = x_of(life.first as f64);
        let w = x_of(life.last as f64 + 1.0) - x;
        let y = ay_of((offset + t.bytes()) as f64);
        let h = (ay_of(offset as f64) - y).max(0.5);
        let _ = writeln!(
            o,
            r##"<rect class="tensor" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{}" fill-opacity="0.85" stroke="#333" stroke-width="0.5"><title>{}</title></rect>"##,
            colour_of(fam),
            xml(&format!(
                "{} {:?} {:?}, {} B at offset {}, steps {}–{} ({fam})",
                t.name,
                t.shape,
                t.dtype,
                thousands(t.bytes()),
                thousands(offset),
                life.first + 1,
                life.last + 1
            ))
        );
        // A streamed stage's scratch: its windows of rows (and band, kernel scratch), each
        // a band of the stage's rectangle with its own tooltip.
        let stage = c.graph.nodes.iter().find_map(|n| match &n.op {
            crate::ir::Op::Stream(s) if n.scratch.map(|t| t.0) == Some(i) => Some(s),
            _ => None,
        });
        let buffers = stage.map_or(&[][..], |s| &s.buffers[..]);
        for (k, b) in buffers.iter().enumerate() {
            // Buffers never live at the same time share bytes (see `plan::stream`).
            let shared = buffers.iter().enumerate().any(|(j, o)| {
                j != k && o.offset < b.offset + b.bytes && b.offset < o.offset + o.bytes
            });
            let y = ay_of((offset + b.offset + b.bytes) as f64);
            let h = (ay_of((offset + b.offset) as f64) - y).max(0.5);
            let _ = writeln!(
                o,
                r##"<rect class="window" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#fff" stroke-width="0.6"><title>{}</title></rect>"##,
                xml(&format!(
                    "{}: {} B at offset {}{}",
                    b.what,
                    thousands(b.bytes),
                    thousands(offset + b.offset),
                    if shared {
                        " (bytes shared with buffers live at other steps)"
                    } else {
                        ""
                    }
                ))
            );
        }
    }
    // The peak step of our order, across both panels.
    if let Some(p) = c.peak_step() {
        let x = x_of(p.step as f64 + 0.5);
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{t_top}" x2="{x:.1}" y2="{:.1}" stroke="#c0392b" stroke-width="1" stroke-dasharray="1 3"/>"##,
            m_top + m_h
        );
        let _ = writeln!(
            o,
            r##"<text x="{:.1}" y="{:.1}" fill="#c0392b">{}</text>"##,
            x + 4.0,
            m_top + 12.0,
            xml(&format!(
                "peak: step {} ({}), {} B live",
                p.step + 1,
                p.op_type,
                thousands(p.bytes)
            ))
        );
    }
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">step of microarena's order (x: lifetime, y: offset, height: bytes)</text>"##,
        left + pw / 2.0,
        m_top + m_h + 18.0
    );
    // Legend of the op families.
    for (k, fam) in families.iter().enumerate() {
        let x = left + 150.0 * (k % 6) as f64;
        let y = legend_top + 22.0 * (k / 6) as f64;
        let _ = writeln!(
            o,
            r##"<path d="M{x:.1} {:.1} h12 v12 h-12 Z" fill="{}" stroke="#333" stroke-width="0.5"/>"##,
            y - 10.0,
            colour_of(fam)
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
            x + 18.0,
            xml(fam)
        );
    }
    o.push_str("</svg>\n");
    o
}

/// The op family that writes arena tensor `t` (`input` for graph inputs).
fn producer_family(c: &Compiled, t: usize) -> &'static str {
    if matches!(c.graph.tensors[t].kind, TensorKind::Input(_)) {
        return "input";
    }
    // A kernel's scratch (a stage's windows among them) in its node's family.
    c.graph
        .nodes
        .iter()
        .find(|n| n.output.0 == t || n.scratch.is_some_and(|s| s.0 == t))
        .map_or("input", |n| n.op.family())
}

/// The families in the arena map, in order of first use (the legend and the colours).
fn family_legend(c: &Compiled) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for i in arena_tensors(c) {
        let f = producer_family(c, i);
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// Axes of a panel: the frame, horizontal grid lines with byte labels, the axis name.
#[allow(clippy::too_many_arguments)]
fn frame(
    o: &mut String,
    left: f64,
    top: f64,
    w: f64,
    h: f64,
    ymax: f64,
    ystep: f64,
    name: &str,
    y_of: impl Fn(f64) -> f64,
) {
    let mut v = 0.0;
    while v <= ymax + ystep / 2.0 {
        let y = y_of(v);
        let _ = writeln!(
            o,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4" stroke-width="1"/>"##,
            left + w
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + 4.0,
            bytes_label(v)
        );
        v += ystep;
    }
    let _ = writeln!(
        o,
        r##"<path d="M{left} {top} V{:.1} H{:.1}" fill="none" stroke="#333" stroke-width="1"/>"##,
        top + h,
        left + w
    );
    let _ = writeln!(
        o,
        r##"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle" fill="#444">{name}</text>"##,
        top + h / 2.0,
        top + h / 2.0
    );
}

/// What `microarena plan --json` prints: the arena, the stages, the baselines, the
/// schedule's steps and every arena tensor's place. Everything but `planning_ms` and
/// `total_ms` (the caller's wall-clock time) is a function of the model and the options:
/// the same on every machine, under any load.
pub fn json(c: &Compiled, total_ms: f64) -> serde_json::Value {
    let st = &c.stats;
    let steps: Vec<serde_json::Value> = c
        .schedule
        .order
        .iter()
        .enumerate()
        .map(|(s, n)| {
            let node = &c.graph.nodes[n.0];
            serde_json::json!({
                "op": node.name,
                "op_type": node.op_type,
                "output": c.graph.tensors[node.output.0].name,
                "live_bytes": c.plan.step_live_bytes[s],
            })
        })
        .collect();
    let tensors: Vec<serde_json::Value> = arena_tensors(c)
        .into_iter()
        .map(|i| {
            let t = &c.graph.tensors[i];
            let l = c.plan.lifetimes[i].expect("arena tensors have a lifetime");
            serde_json::json!({
                "name": t.name,
                "shape": t.shape,
                "bytes": t.bytes(),
                "offset": c.plan.offsets[i],
                "first_step": l.first,
                "last_step": l.last,
            })
        })
        .collect();
    let stages: Vec<serde_json::Value> = crate::plan::stream::stages(&c.graph)
        .map(|(n, s)| {
            serde_json::json!({
                "node": c.graph.nodes[n.0].name,
                "ops": s.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
                "output": c.graph.tensors[c.graph.nodes[n.0].output.0].name,
                "band_rows": s.band_rows,
                "scratch_bytes": s.scratch_bytes,
                "buffers": s.buffers.iter().map(|b| serde_json::json!({
                    "what": b.what, "offset": b.offset, "bytes": b.bytes,
                })).collect::<Vec<_>>(),
                "band_calls": s.calls(),
                "copied_bytes": s.copied_bytes(),
                "overhead_estimate": s.overhead_estimate(),
            })
        })
        .collect();
    let read_in_place: Vec<&str> = c
        .graph
        .tensors
        .iter()
        .filter(|t| matches!(t.kind, TensorKind::Caller(_)))
        .map(|t| t.name.as_str())
        .collect();
    serde_json::json!({
        "arena_bytes": c.plan.arena_bytes,
        "unstreamed_arena_bytes": st.unstreamed_arena_bytes,
        "stages": stages,
        "inputs_read_in_place": read_in_place,
        "carried": c.graph.carry.iter().map(|&(o, i)| serde_json::json!({
            "output": c.graph.output_name(o),
            "input": c.graph.tensors[c.graph.inputs[i].0].name,
            "bytes": c.graph.tensors[c.graph.inputs[i].0].bytes(),
        })).collect::<Vec<_>>(),
        "plain_optimal_arena_bytes": st.plain_arena_bytes,
        "fused_plain_arena_bytes": st.fused_plain_arena_bytes,
        "forced_sharing_arena_bytes": st.forced_sharing_arena_bytes,
        "plain_optimal": st.plain_optimal,
        "in_place_nodes": st.in_place_nodes,
        "zero_copy_slots": st.zero_copy_slots,
        "peak_live_bytes": st.peak_live_bytes,
        "min_peak_bytes": st.min_peak_bytes,
        "lower_bound_bytes": c.plan.lower_bound(),
        "optimal": st.optimal,
        "planning_ms": st.planning_ms,
        "work_units": st.work_units,
        "total_ms": total_ms,
        "alignment": c.plan.alignment,
        "search_states": st.search_states,
        "segments": st.segments,
        "baselines": {
            "file_order_arena_bytes": st.file_order_arena_bytes,
            "tract_order_arena_bytes": st.tract_order_arena_bytes,
        },
        "weight_bytes": c.graph.weight_bytes(),
        "macs": c.graph.macs(),
        "steps": steps,
        "tensors": tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_is_round_and_covers_the_value() {
        for v in [1, 7, 100, 999, 1000, 1001, 26_944, 107_776, 3_000_000] {
            let (max, step) = axis(v);
            assert!(max >= v as f64, "{v}: {max}");
            assert!(max / step <= 6.0 + 1e-9, "{v}: {max} / {step}");
            assert!(max < 2.6 * v as f64 + 10.0, "{v}: {max}");
        }
    }

    #[test]
    fn names_keep_their_end_and_escape() {
        assert_eq!(tail("abc", 5), "abc");
        assert_eq!(tail("/block1/conv/Conv", 8), "…nv/Conv");
        assert_eq!(xml("a<b & 'c'"), "a&lt;b &amp; &apos;c&apos;");
        assert_eq!(bytes_label(49152.0), "48 KiB");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
