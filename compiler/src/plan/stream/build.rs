//! A region simulated pass by pass into a stage's program: band calls and row copies.

use super::layout::{pack, LiveSpan};
use super::*;
use crate::ops::conv::ConvOp;

/// A buffer of the stage's scratch before offsets are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sym {
    /// The window of edge `e` (of a split edge: its rows after those kept).
    Window(usize),
    /// The rows a split edge's consumer reads again, kept between its calls.
    Kept(usize),
    /// Where a producer writes a band before it is copied on.
    Band,
    /// A flat op's input `k` cut to exactly the band's rows.
    Compact(usize),
    /// The running sums of a reducer ending the stage.
    Sums,
    /// A band call's own scratch (the int8 convolutions' `i16` copies).
    Kernel,
    /// The output row of node `n`, a max pooling whose input rows are pooled into it as they
    /// come (`PoolOp::MaxRowInto`).
    Pooled(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SymPlace {
    Sym(Sym),
    Input(usize),
    Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SymOperand {
    Buf(Sym, usize, DType),
    Input(usize),
}

#[derive(Clone, Debug, PartialEq)]
enum SymStep {
    Copy {
        from: SymPlace,
        to: SymPlace,
        rows: RowCopy,
    },
    Call {
        node: usize,
        op: Box<Op>,
        inputs: Vec<Option<SymOperand>>,
        output: (Sym, usize, DType),
        scratch: Option<usize>,
    },
}

/// One activation input of a stage node: the window its band calls read.
#[derive(Clone, Debug)]
struct Edge {
    /// Local index of the consuming node.
    node: usize,
    /// Input position in that node.
    slot: usize,
    tensor: TensorId,
    /// `Some(k)`: the tensor is the stage's input `k` (whole in the arena); `None`: a stage
    /// node produces it.
    external: Option<usize>,
    /// Rows held: `lo..hi`.
    lo: usize,
    hi: usize,
    /// Most rows ever held (by a split edge's window: after `mid`).
    max_rows: usize,
    /// A split edge (an int8 depthwise convolution reading rows written by a producer that
    /// feeds nothing else): rows `lo..mid` are in its [`Sym::Kept`] buffer, `mid..hi` in its
    /// window. After each call the rows read again move to the kept buffer, so only they
    /// stay live between passes, and the producer writes the next rows straight into the
    /// (then empty) window: the kernel's plane copy joins both. Otherwise unused.
    split: bool,
    mid: usize,
    /// Most rows ever kept.
    max_kept: usize,
}

/// `[C, H, W]` of an image tensor (`[1, C, H, W]` or `[C, H, W]`), and its element size.
pub(super) fn chw(g: &Graph, t: TensorId) -> (usize, usize, usize, usize) {
    let s = &g.tensor(t).shape;
    let s = &s[s.len() - 3..];
    (s[0], s[1], s[2], g.tensor(t).dtype.size())
}

/// First input row output row `r` reads (or would read) under `rule`.
fn in_lo(rule: &RowRule, r: usize, in_h: usize) -> usize {
    match rule {
        RowRule::Flat => r.min(in_h),
        RowRule::Window(w) => {
            let y = (r * w.stride_h) as isize - w.pad_top as isize;
            y.clamp(0, in_h as isize) as usize
        }
    }
}

/// One past the last input row output rows `..end` read under `rule`.
fn in_hi(rule: &RowRule, end: usize, in_h: usize) -> usize {
    if end == 0 {
        return 0;
    }
    match rule {
        RowRule::Flat => end.min(in_h),
        RowRule::Window(w) => {
            let y =
                ((end - 1) * w.stride_h + (w.k_h - 1) * w.dil_h + 1) as isize - w.pad_top as isize;
            y.clamp(0, in_h as isize) as usize
        }
    }
}

/// The copy that keeps rows `lo2..hi` of a window holding `lo..hi` (channels `c`, `row`
/// bytes a row) at the start of a window of `new_h` rows per channel; `None` when they are
/// already there.
fn relayout(
    buf: Sym,
    c: usize,
    row: usize,
    (lo, hi): (usize, usize),
    lo2: usize,
    new_h: usize,
) -> Option<SymStep> {
    let rows = RowCopy {
        channels: c,
        bytes: hi.saturating_sub(lo2) * row,
        src: (lo2 - lo) * row,
        src_channel: (hi - lo) * row,
        dst: 0,
        dst_channel: new_h * row,
    };
    let still = rows.src == 0 && (c == 1 || rows.src_channel == rows.dst_channel);
    // A window keeping its height shifts as a whole: one block from the first kept row to
    // the last channel's last, instead of one per channel. Between the channels' kept rows
    // it carries the next channel's dropped rows into rows `hi − lo2..new_h` of each
    // channel's block, which hold nothing yet (the rows its producer writes next).
    let rows = if c > 1 && rows.bytes > 0 && rows.src_channel == rows.dst_channel {
        RowCopy {
            channels: 1,
            bytes: (c - 1) * rows.src_channel + rows.bytes,
            ..rows
        }
    } else {
        rows
    };
    (rows.bytes > 0 && !still).then_some(SymStep::Copy {
        from: SymPlace::Sym(buf),
        to: SymPlace::Sym(buf),
        rows,
    })
}

/// The program of `region` run `band` output rows per pass, as a stage op, with the stage
/// node's inputs (external activations, then weights). `None` when the region cannot stream
/// (an op that is not row-local, a tensor it writes that something outside reads). With
/// `split`, int8 depthwise windows keep the rows they read again apart (see [`splits`]).
///
/// A pass's band calls run in sweeps over the stage's ops. Where a pooling whose kernel
/// height is its stride sits inside the stage, the program is also built with the ops up to
/// each strided op swept to their pass's target before the next ones start (the windows of a
/// 2×2 max pooling then live only while their part runs, and can share bytes with those of
/// later parts); the smaller scratch is kept (ties: one sweep over all).
pub fn build(
    g: &Graph,
    region: &Region,
    band: usize,
    alignment: usize,
    split: bool,
) -> Option<(StreamOp, Vec<TensorId>)> {
    let whole = build_with(g, region, band, alignment, split, false)?;
    // Tried where a pooling inside the stage reads rows no other window of it reads again
    // (kernel height = stride > 1: a 2×2 max pooling), whose window empties every pass. (A
    // strided convolution's window carries rows; there the parts never measured smaller, and
    // building twice took MobileNetV2's planning from 2.3 to 3.1 s.)
    let pool_inside = region.nodes.iter().rev().skip(1).any(|&v| {
        let n = &g.nodes[v];
        matches!(n.op, Op::Pool(_))
            && matches!(n.op.row_rule(g, n), Some(RowRule::Window(w)) if w.stride_h > 1 && w.k_h == w.stride_h)
    });
    if !pool_inside {
        return Some(whole);
    }
    match build_with(g, region, band, alignment, split, true) {
        Some(parts) if parts.0.scratch_bytes < whole.0.scratch_bytes => Some(parts),
        _ => Some(whole),
    }
}

/// [`build`] with one sweep order: `parts`, the ops up to each strided op (and it) swept to
/// their target before the ops after it; else all ops in each sweep.
fn build_with(
    g: &Graph,
    region: &Region,
    band: usize,
    alignment: usize,
    split: bool,
    parts: bool,
) -> Option<(StreamOp, Vec<TensorId>)> {
    let nodes: Vec<&Node> = region.nodes.iter().map(|&v| &g.nodes[v]).collect();
    let mut rules: Vec<RowRule> = nodes
        .iter()
        .map(|n| n.op.row_rule(g, n))
        .collect::<Option<_>>()?;
    let local = |t: TensorId| nodes.iter().position(|n| n.output == t);
    let last = local(region.output)?;
    // A global average at the end sums its input's rows as they come (its "rows" are its
    // input's; the average is written after the last): a stage then never holds the plane.
    let reducer = match &nodes[last].op {
        Op::Pool(p) if p.is_global_average() => Some(p.clone()),
        _ => None,
    };
    if reducer.is_some() {
        rules[last] = RowRule::Flat;
    }
    // The dimensions the last node's bands have: its output's, or a reducer's input's.
    let last_rows = if reducer.is_some() {
        nodes[last].inputs[0]
    } else {
        region.output
    };
    // Stage inputs: external activations, then weights, each once.
    let mut inputs: Vec<TensorId> = Vec::new();
    let index_of =
        |t: TensorId, inputs: &mut Vec<TensorId>| match inputs.iter().position(|&x| x == t) {
            Some(k) => k,
            None => {
                inputs.push(t);
                inputs.len() - 1
            }
        };
    let mut edges: Vec<Edge> = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for (slot, &t) in node.inputs.iter().enumerate() {
            if !g.tensor(t).in_arena() {
                continue;
            }
            let external = match local(t) {
                Some(p) if p < n => None,
                Some(_) => return None,
                None => Some(index_of(t, &mut inputs)),
            };
            edges.push(Edge {
                node: n,
                slot,
                tensor: t,
                external,
                lo: 0,
                hi: 0,
                max_rows: 0,
                split: false,
                mid: 0,
                max_kept: 0,
            });
        }
    }
    // A stage input a convolution or pooling reads through a reshape (a `[1, H, W, 1]`
    // graph input read as `[1, 1, H, W]`: the same bytes) is taken at the shape the op
    // reads; two readers that disagree, or a different size, and the region cannot stream.
    let mut views: Vec<(TensorId, (usize, usize, usize))> = Vec::new();
    for e in &edges {
        let (c, w) = match &nodes[e.node].op {
            Op::Conv(c) => (c.geometry().in_c, c.geometry().window),
            Op::Pool(p) => (p.geometry().c, p.geometry().window),
            _ => continue,
        };
        let want = (c, w.in_h, w.in_w);
        let t = g.tensor(e.tensor);
        let image = t.shape.len() >= 3;
        if image && {
            let (hc, hh, hw, _) = chw(g, e.tensor);
            (hc, hh, hw) == want
        } {
            continue;
        }
        if e.external.is_none() || t.len() != c * w.in_h * w.in_w {
            return None;
        }
        match views.iter().find(|(t, _)| *t == e.tensor) {
            Some((_, v)) if *v != want => return None,
            Some(_) => {}
            None => views.push((e.tensor, want)),
        }
    }
    if views.iter().any(|(t, _)| {
        edges
            .iter()
            .any(|e| e.tensor == *t && !matches!(nodes[e.node].op, Op::Conv(_) | Op::Pool(_)))
    }) {
        return None;
    }
    let chw = |g: &Graph, t: TensorId| match views.iter().find(|(v, _)| *v == t) {
        Some((_, (c, h, w))) => (*c, *h, *w, g.tensor(t).dtype.size()),
        None => chw(g, t),
    };
    for node in &nodes {
        for &t in &node.inputs {
            if !g.tensor(t).in_arena() {
                index_of(t, &mut inputs);
            }
        }
    }
    // What the region writes stays inside, but for its output, which nothing inside reads.
    let consumers = g.consumers();
    for (n, node) in nodes.iter().enumerate() {
        let t = node.output;
        let outside =
            g.outputs.contains(&t) || consumers[t.0].iter().any(|c| !region.nodes.contains(&c.0));
        if (n == last) != outside || (n == last && edges.iter().any(|e| e.tensor == t)) {
            return None;
        }
    }
    let out_edges: Vec<Vec<usize>> = (0..nodes.len())
        .map(|n| {
            (0..edges.len())
                .filter(|&e| edges[e].external.is_none() && edges[e].tensor == nodes[n].output)
                .collect()
        })
        .collect();
    let in_edges: Vec<Vec<usize>> = (0..nodes.len())
        .map(|n| (0..edges.len()).filter(|&e| edges[e].node == n).collect())
        .collect();
    // Every node but the last feeds the stage (else it would be a second output).
    if (0..nodes.len()).any(|n| n != last && out_edges[n].is_empty()) {
        return None;
    }
    // Split edges: into an int8 depthwise convolution (whose kernel copies each plane
    // anyway) or an f32 3×3 one (whose split kernel joins the planes) from a producer that
    // feeds nothing else.
    for outs in &out_edges {
        if let [e] = outs[..] {
            let c = edges[e].node;
            edges[e].split =
                split && matches!(rules[c], RowRule::Window(_)) && splittable(&nodes[c].op);
        }
    }

    let h_of = |t: TensorId| chw(g, t).1;
    // Rows per pass in the steady state: `band` for the last node, times the strides on the
    // way to it.
    let mut rate = vec![0usize; nodes.len()];
    rate[last] = band;
    for n in (0..nodes.len()).rev() {
        for &e in &out_edges[n] {
            let c = edges[e].node;
            let s = match rules[c] {
                RowRule::Window(w) => w.stride_h,
                RowRule::Flat => 1,
            };
            rate[n] = rate[n].max(rate[c] * s).min(band);
        }
    }
    // Where the runs of ops each sweep goes over end: at the last op (all in each sweep), or
    // (`parts`) also after each strided op, one run after the other.
    let mut sweep_ends: Vec<usize> = if parts {
        (0..nodes.len())
            .filter(|&n| matches!(rules[n], RowRule::Window(w) if w.stride_h > 1))
            .map(|n| n + 1)
            .filter(|&part_end| part_end < nodes.len())
            .collect()
    } else {
        Vec::new()
    };
    sweep_ends.push(nodes.len());
    // Max poolings whose windows tile the rows (2×2 stride 2), one output row a pass, from a
    // producer that feeds nothing else, one row a pass: each row the producer writes (into
    // the band) is pooled at once into the pooling's output row (`PoolOp::MaxRowInto`),
    // which then goes on as the pooling's band would. The stage holds that one output row
    // instead of a window of the producer's rows. `pooled_by[p]`: the pooling `p` feeds.
    let mut pooled_by: Vec<Option<usize>> = vec![None; nodes.len()];
    for n in 0..nodes.len() {
        let Op::Pool(PoolOp::F32(pool)) = &nodes[n].op else {
            continue;
        };
        let [e] = in_edges[n][..] else {
            continue;
        };
        let producer = match edges[e].external {
            None if !edges[e].split => local(edges[e].tensor),
            _ => None,
        };
        let Some(q) = producer else {
            continue;
        };
        if crate::kernels::pool::pools_rows_apart(pool)
            && matches!(rules[n], RowRule::Window(_))
            && out_edges[q] == [e]
            && (rate[q], rate[n]) == (1, 1)
            && !(n == last && reducer.is_some())
        {
            pooled_by[q] = Some(n);
        }
    }
    let pools_rows = |n: usize| pooled_by.contains(&Some(n));
    let mut done = vec![0usize; nodes.len()];
    let mut passes: Vec<Vec<SymStep>> = Vec::new();
    let mut max_band = 0usize;
    let mut max_compact = [0usize; 2];
    let mut max_kernel = 0usize;
    let (_, h_out, _, _) = chw(g, last_rows);
    let mut max_sums = 0usize;
    let mut end = 0;
    while end < h_out {
        end = (end + band).min(h_out);
        // How far each node must get: what its consumers' next bands read.
        let mut target = done.clone();
        target[last] = end;
        for n in (0..nodes.len()).rev() {
            for &e in &out_edges[n] {
                let c = edges[e].node;
                if target[c] > done[c] {
                    let need = in_hi(&rules[c], target[c], h_of(edges[e].tensor));
                    target[n] = target[n].max(need);
                }
            }
        }
        let mut steps = Vec::new();
        // Sweeps in graph order until every node has its target, each node at most its
        // steady rate per sweep and only what its inputs allow: the pipeline fills step by
        // step instead of in one burst, so no window holds more than a steady pass needs.
        let mut part_start = 0;
        for &part_end in &sweep_ends {
            let part = part_start..part_end;
            part_start = part_end;
            while part.clone().any(|n| done[n] < target[n]) {
                for n in part.clone() {
                    let ready = in_edges[n]
                        .iter()
                        .filter(|&&e| edges[e].external.is_none())
                        .map(|&e| {
                            let p =
                                local(edges[e].tensor).expect("an internal edge has a producer");
                            let h = h_of(edges[e].tensor);
                            let mut r = target[n];
                            while r > done[n] && in_hi(&rules[n], r, h) > done[p] {
                                r -= 1;
                            }
                            r
                        })
                        .min()
                        .unwrap_or(target[n]);
                    let (a, b) = (done[n], target[n].min(done[n] + rate[n]).min(ready));
                    if b <= a {
                        continue;
                    }
                    let node = nodes[n];
                    let mut operands: Vec<Option<SymOperand>> = node
                        .inputs
                        .iter()
                        .map(|&t| {
                            (!g.tensor(t).in_arena())
                                .then(|| SymOperand::Input(index_of(t, &mut inputs)))
                        })
                        .collect();
                    let mut window: Option<Window2d> = None;
                    // (A pooling of rows as they come has no window: its row is made.)
                    let windows = if pools_rows(n) {
                        &[][..]
                    } else {
                        &in_edges[n][..]
                    };
                    for (k, &e) in windows.iter().enumerate() {
                        let (c, h, w, es) = chw(g, edges[e].tensor);
                        let dtype = g.tensor(edges[e].tensor).dtype;
                        let row = w * es;
                        let first = in_lo(&rules[n], a, h);
                        let need = in_hi(&rules[n], b, h);
                        let ed = &mut edges[e];
                        if let Some(k_in) = ed.external {
                            // Rows from the whole tensor: keep what is still read, copy the rest.
                            let lo2 = first.max(ed.lo);
                            let start = ed.hi.max(lo2);
                            steps.extend(relayout(
                                Sym::Window(e),
                                c,
                                row,
                                (ed.lo, ed.hi),
                                lo2,
                                need.max(lo2) - lo2,
                            ));
                            if need > start {
                                steps.push(SymStep::Copy {
                                    from: SymPlace::Input(k_in),
                                    to: SymPlace::Sym(Sym::Window(e)),
                                    rows: RowCopy {
                                        channels: c,
                                        bytes: (need - start) * row,
                                        src: start * row,
                                        src_channel: h * row,
                                        dst: (start - lo2) * row,
                                        dst_channel: (need - lo2) * row,
                                    },
                                });
                            }
                            ed.lo = lo2;
                            ed.hi = need.max(lo2);
                        } else if ed.split {
                            // Rows no band reads again left the kept rows after the last call.
                            debug_assert!(ed.lo == first && ed.mid <= ed.hi);
                        } else if ed.lo < first {
                            // Rows no band of this node reads again.
                            let lo2 = first.min(ed.hi);
                            steps.extend(relayout(
                                Sym::Window(e),
                                c,
                                row,
                                (ed.lo, ed.hi),
                                lo2,
                                ed.hi - lo2,
                            ));
                            ed.lo = lo2;
                        }
                        debug_assert!(ed.lo == first && ed.hi >= need, "window out of step");
                        let held = ed.hi - ed.lo;
                        // Rows in the window (of a split edge, those after the kept ones).
                        let kept = if ed.split { ed.mid - ed.lo } else { 0 };
                        let fresh = held - kept;
                        ed.max_rows = ed.max_rows.max(fresh);
                        if kept > 0 {
                            operands.resize(operands.len().max(4), None);
                            operands[3] = Some(SymOperand::Buf(Sym::Kept(e), c * kept * w, dtype));
                        }
                        let operand = match rules[n] {
                            RowRule::Window(w0) => {
                                let top = (a * w0.stride_h) as isize - w0.pad_top as isize;
                                if top > ed.lo as isize {
                                    // The band reads only padding below the input: not streamed.
                                    return None;
                                }
                                window = Some(Window2d {
                                    in_h: held,
                                    out_h: b - a,
                                    pad_top: (ed.lo as isize - top) as usize,
                                    pad_bottom: if ed.hi == h { w0.pad_bottom } else { 0 },
                                    ..w0
                                });
                                SymOperand::Buf(Sym::Window(e), c * fresh * w, dtype)
                            }
                            RowRule::Flat if held > b - a => {
                                // A window ahead of this op (its producer ran on for another consumer):
                                // the op reads exactly its band's rows.
                                let k = k.min(1);
                                steps.push(SymStep::Copy {
                                    from: SymPlace::Sym(Sym::Window(e)),
                                    to: SymPlace::Sym(Sym::Compact(k)),
                                    rows: RowCopy {
                                        channels: c,
                                        bytes: (b - a) * row,
                                        src: 0,
                                        src_channel: held * row,
                                        dst: 0,
                                        dst_channel: (b - a) * row,
                                    },
                                });
                                max_compact[k] = max_compact[k].max(c * (b - a) * row);
                                SymOperand::Buf(Sym::Compact(k), c * (b - a) * w, dtype)
                            }
                            RowRule::Flat => SymOperand::Buf(Sym::Window(e), c * held * w, dtype),
                        };
                        operands[edges[e].slot] = Some(operand);
                    }
                    // Where the band goes.
                    let rows = b - a;
                    if let (true, Some(whole)) = (n == last, &reducer) {
                        // Into the running sums (f32, or i32 for int8).
                        let (c, _, w, _) = chw(g, last_rows);
                        let dtype = whole.sums_dtype();
                        max_sums = c * dtype.size();
                        let op = PoolOp::RowSums {
                            whole: Box::new(whole.clone()),
                            len: rows * w,
                            first: a == 0,
                        };
                        steps.push(SymStep::Call {
                            node: n,
                            op: Box::new(Op::Pool(op)),
                            inputs: operands,
                            output: (Sym::Sums, c, dtype),
                            scratch: None,
                        });
                        done[n] = b;
                        continue;
                    }
                    let (c, h, w, es) = chw(g, node.output);
                    let dtype = g.tensor(node.output).dtype;
                    let row = w * es;
                    let (op, mut scratch) = node.op.band(window, c, rows, w);
                    // A split f32 depthwise window: its kernel joins each channel's kept and
                    // fresh rows into one plane (`conv2d_depthwise_split`).
                    if let (Op::Conv(ConvOp::F32(p)), Some(Some(_))) = (&op, operands.get(3)) {
                        scratch = scratch.max(4 * p.window.in_h * p.window.in_w);
                    }
                    let kernel_scratch = (scratch > 0).then_some(scratch);
                    max_kernel = max_kernel.max(scratch);
                    let mut after = Vec::new();
                    let dest = if pooled_by[n].is_some() {
                        // Into the band, from which each row is pooled at once.
                        Sym::Band
                    } else if n == last {
                        after.push(SymStep::Copy {
                            from: SymPlace::Sym(Sym::Band),
                            to: SymPlace::Output,
                            rows: RowCopy {
                                channels: c,
                                bytes: rows * row,
                                src: 0,
                                src_channel: rows * row,
                                dst: a * row,
                                dst_channel: h * row,
                            },
                        });
                        Sym::Band
                    } else {
                        let outs = &out_edges[n];
                        // Per consumer: the rows it still reads from its window (a split edge's
                        // consumer has read none of the rows after those kept).
                        let keep: Vec<usize> = outs
                            .iter()
                            .map(|&e| {
                                let ed = &edges[e];
                                let from = in_lo(&rules[ed.node], done[ed.node], h);
                                if ed.split {
                                    ed.mid
                                } else {
                                    ed.lo.max(from).min(b)
                                }
                            })
                            .collect();
                        if outs.len() == 1 && keep[0] == a {
                            let ed = &mut edges[outs[0]];
                            if ed.split {
                                ed.mid = a;
                            } else {
                                ed.lo = a;
                            }
                            ed.hi = b;
                            ed.max_rows = ed.max_rows.max(rows);
                            Sym::Window(outs[0])
                        } else {
                            for (&e, &lo2) in outs.iter().zip(&keep) {
                                let ed = &mut edges[e];
                                debug_assert_eq!(
                                    ed.hi, a,
                                    "a window ends where its producer stands"
                                );
                                let from = if ed.split { ed.mid } else { ed.lo };
                                after.extend(relayout(
                                    Sym::Window(e),
                                    c,
                                    row,
                                    (from, ed.hi),
                                    lo2,
                                    b - lo2,
                                ));
                                let s0 = lo2.max(a);
                                if b > s0 {
                                    after.push(SymStep::Copy {
                                        from: SymPlace::Sym(Sym::Band),
                                        to: SymPlace::Sym(Sym::Window(e)),
                                        rows: RowCopy {
                                            channels: c,
                                            bytes: (b - s0) * row,
                                            src: (s0 - a) * row,
                                            src_channel: rows * row,
                                            dst: (s0 - lo2) * row,
                                            dst_channel: (b - lo2) * row,
                                        },
                                    });
                                }
                                if !ed.split {
                                    ed.lo = lo2;
                                }
                                ed.hi = b;
                                ed.max_rows = ed.max_rows.max(b - lo2);
                            }
                            Sym::Band
                        }
                    };
                    if dest == Sym::Band {
                        max_band = max_band.max(c * rows * row);
                    }
                    if pools_rows(n) {
                        // The pooled row, made by the producer's calls, goes where the band
                        // would have: a window's next rows, or copied on from the band.
                        let pooled = SymPlace::Sym(Sym::Pooled(n));
                        if dest == Sym::Band {
                            for st in &mut after {
                                if let SymStep::Copy { from, .. } = st {
                                    if *from == SymPlace::Sym(Sym::Band) {
                                        *from = pooled;
                                    }
                                }
                            }
                        } else {
                            let bytes = rows * row;
                            steps.push(SymStep::Copy {
                                from: pooled,
                                to: SymPlace::Sym(dest),
                                rows: RowCopy {
                                    channels: c,
                                    bytes,
                                    src: 0,
                                    src_channel: bytes,
                                    dst: 0,
                                    dst_channel: bytes,
                                },
                            });
                        }
                    } else {
                        steps.push(SymStep::Call {
                            node: n,
                            op: Box::new(op),
                            inputs: operands,
                            output: (dest, c * rows * w, dtype),
                            scratch: kernel_scratch,
                        });
                    }
                    if let Some(pool) = pooled_by[n] {
                        let Op::Pool(PoolOp::F32(geom)) = &nodes[pool].op else {
                            unreachable!("a pooling of rows as they come is an f32 pooling");
                        };
                        let win = geom.window;
                        for r in (a..b).filter(|&r| r < win.out_h * win.k_h) {
                            steps.push(SymStep::Call {
                                node: pool,
                                op: Box::new(Op::Pool(PoolOp::MaxRowInto {
                                    geom: *geom,
                                    ky: r % win.k_h,
                                })),
                                inputs: vec![Some(SymOperand::Buf(Sym::Band, c * w, dtype))],
                                output: (Sym::Pooled(pool), geom.c * win.out_w, dtype),
                                scratch: None,
                            });
                        }
                    }
                    steps.extend(after);
                    done[n] = b;
                    // Split edges into this node: the rows its next call reads again join the
                    // kept ones (those no longer read dropped), and the window is empty.
                    for &e in &in_edges[n] {
                        if !edges[e].split {
                            continue;
                        }
                        let (c, h, w, es) = chw(g, edges[e].tensor);
                        let row = w * es;
                        let ed = &mut edges[e];
                        let lo2 = in_lo(&rules[n], b, h).clamp(ed.lo, ed.hi);
                        let height = ed.hi - lo2;
                        if lo2 < ed.mid {
                            steps.extend(relayout(
                                Sym::Kept(e),
                                c,
                                row,
                                (ed.lo, ed.mid),
                                lo2,
                                height,
                            ));
                        }
                        let s0 = lo2.max(ed.mid);
                        if ed.hi > s0 {
                            steps.push(SymStep::Copy {
                                from: SymPlace::Sym(Sym::Window(e)),
                                to: SymPlace::Sym(Sym::Kept(e)),
                                rows: RowCopy {
                                    channels: c,
                                    bytes: (ed.hi - s0) * row,
                                    src: (s0 - ed.mid) * row,
                                    src_channel: (ed.hi - ed.mid) * row,
                                    dst: (s0 - lo2) * row,
                                    dst_channel: height * row,
                                },
                            });
                        }
                        ed.lo = lo2;
                        ed.mid = ed.hi;
                        ed.max_kept = ed.max_kept.max(height);
                    }
                }
                // Rows a split window still holds after the sweep (its consumer waits for rows
                // further down: the pipeline filling) join the kept ones, so no window stays
                // live through the next sweep.
                for (e, ed) in edges.iter_mut().enumerate() {
                    if !ed.split || ed.hi == ed.mid {
                        continue;
                    }
                    let (c, _, w, es) = chw(g, ed.tensor);
                    let row = w * es;
                    steps.extend(relayout(
                        Sym::Kept(e),
                        c,
                        row,
                        (ed.lo, ed.mid),
                        ed.lo,
                        ed.hi - ed.lo,
                    ));
                    steps.push(SymStep::Copy {
                        from: SymPlace::Sym(Sym::Window(e)),
                        to: SymPlace::Sym(Sym::Kept(e)),
                        rows: RowCopy {
                            channels: c,
                            bytes: (ed.hi - ed.mid) * row,
                            src: 0,
                            src_channel: (ed.hi - ed.mid) * row,
                            dst: (ed.mid - ed.lo) * row,
                            dst_channel: (ed.hi - ed.lo) * row,
                        },
                    });
                    ed.mid = ed.hi;
                    ed.max_kept = ed.max_kept.max(ed.hi - ed.lo);
                }
            }
        }
        passes.push(steps);
    }
    if done[last] != h_out {
        return None;
    }
    if let Some(whole) = &reducer {
        // The averages from the sums, after the last rows, then to the stage's output.
        let (c, _, _, _) = chw(g, last_rows);
        let sums = whole.sums_dtype();
        let out = g.tensor(region.output).dtype;
        max_band = max_band.max(c * out.size());
        let pass = passes.last_mut()?;
        pass.push(SymStep::Call {
            node: last,
            op: Box::new(Op::Pool(PoolOp::AverageOfSums {
                whole: Box::new(whole.clone()),
            })),
            inputs: vec![Some(SymOperand::Buf(Sym::Sums, c, sums))],
            output: (Sym::Band, c, out),
            scratch: None,
        });
        pass.push(SymStep::Copy {
            from: SymPlace::Sym(Sym::Band),
            to: SymPlace::Output,
            rows: RowCopy {
                channels: 1,
                bytes: c * out.size(),
                src: 0,
                src_channel: c * out.size(),
                dst: 0,
                dst_channel: c * out.size(),
            },
        });
    }

    // Offsets: buffers live at the same time get disjoint spans of the scratch. A buffer (a
    // window, a band, a kernel's scratch) is live from each write of all it holds to its
    // last use before the next (the running sums, only added to, from their first rows to
    // the averages), and shares bytes with the buffers it never meets (one-row windows of a
    // chain of 1×1 layers, a band and a window filled later in the pass).
    let syms: Vec<(Sym, String, usize)> = edges
        .iter()
        .enumerate()
        .flat_map(|(e, ed)| {
            let (c, _, w, es) = chw(g, ed.tensor);
            let what = format!(
                "{} → {} ({} rows)",
                g.tensor(ed.tensor).name,
                nodes[ed.node].name,
                ed.max_rows
            );
            let window = (Sym::Window(e), what, c * ed.max_rows * w * es);
            let kept = (
                Sym::Kept(e),
                format!(
                    "{} → {}, kept ({} rows)",
                    g.tensor(ed.tensor).name,
                    nodes[ed.node].name,
                    ed.max_kept
                ),
                c * ed.max_kept * w * es,
            );
            [window, kept]
        })
        .chain([
            (Sym::Band, "band".into(), max_band),
            (Sym::Compact(0), "band of input 0".into(), max_compact[0]),
            (Sym::Compact(1), "band of input 1".into(), max_compact[1]),
            (Sym::Kernel, "kernel scratch".into(), max_kernel),
            (Sym::Sums, "running sums".into(), max_sums),
        ])
        .chain((0..nodes.len()).filter(|&n| pools_rows(n)).map(|n| {
            let (c, _, w, es) = chw(g, nodes[n].output);
            let what = format!(
                "{} (a row, pooled as it comes)",
                g.tensor(nodes[n].output).name
            );
            (Sym::Pooled(n), what, c * w * es)
        }))
        .filter(|s| s.2 > 0)
        .collect();
    let slot = |s: Sym| syms.iter().position(|x| x.0 == s);
    // Per buffer: the steps (numbered through the unrolled program) where it is used, and
    // whether a use writes all it holds (what it held before is dead then).
    let mut uses: Vec<Vec<(usize, bool)>> = vec![Vec::new(); syms.len()];
    for (at_step, st) in passes.iter().flatten().enumerate() {
        let (read, written): (Vec<Sym>, Option<(Sym, bool)>) = match st {
            SymStep::Copy { from, to, rows } => (
                match from {
                    SymPlace::Sym(s) => vec![*s],
                    _ => Vec::new(),
                },
                match to {
                    // Rows into an empty window start at its first row; a window's own
                    // rows moved up keep what it holds.
                    SymPlace::Sym(s) => Some((*s, from != to && rows.dst == 0)),
                    _ => None,
                },
            ),
            SymStep::Call {
                inputs,
                output,
                scratch,
                op,
                ..
            } => (
                inputs
                    .iter()
                    .filter_map(|o| match o {
                        // (An empty operand, a split window with no rows after the kept
                        // ones, reads nothing.)
                        Some(SymOperand::Buf(s, len, _)) if *len > 0 => Some(*s),
                        _ => None,
                    })
                    .chain(scratch.map(|_| Sym::Kernel))
                    .collect(),
                // A band call writes its whole output (running sums add to theirs, and so
                // do a pooled row's taps after its first).
                Some((
                    output.0,
                    output.0 != Sym::Sums
                        && !matches!(**op, Op::Pool(PoolOp::MaxRowInto { ky, .. }) if ky > 0),
                )),
            ),
        };
        for s in read {
            if let Some(k) = slot(s) {
                uses[k].push((at_step, false));
            }
        }
        if let Some((s, kills)) = written {
            if let Some(k) = slot(s) {
                let read_too = uses[k].last().is_some_and(|u| u.0 == at_step);
                uses[k].push((at_step, kills && !read_too));
            }
        }
    }
    let spans: Vec<LiveSpan> = syms
        .iter()
        .zip(uses)
        .map(|((_, _, bytes), uses)| {
            // Live from each killing write to the last use before the next one.
            let mut live: Vec<(usize, usize)> = Vec::new();
            for (step, kills) in uses {
                match live.last_mut() {
                    Some(l) if !kills => l.1 = step,
                    _ => live.push((step, step)),
                }
            }
            LiveSpan {
                bytes: *bytes,
                live,
            }
        })
        .collect();
    let (offsets, scratch_bytes) = pack(&spans, alignment.max(4));
    let mut buffers: Vec<StageBuffer> = syms
        .iter()
        .zip(&offsets)
        .map(|((_, what, bytes), &offset)| StageBuffer {
            what: what.clone(),
            offset,
            bytes: *bytes,
        })
        .collect();
    buffers.sort_by_key(|b| b.offset);
    let at = |s: Sym| slot(s).map_or(0, |k| offsets[k]);
    let resolve = |p: SymPlace| match p {
        SymPlace::Sym(_) => Place::Scratch,
        SymPlace::Input(k) => Place::Input(k),
        SymPlace::Output => Place::Output,
    };
    let shift = |p: SymPlace| match p {
        SymPlace::Sym(s) => at(s),
        _ => 0,
    };
    let step = |s: &SymStep| match s {
        SymStep::Copy { from, to, rows } => Step::Copy {
            from: resolve(*from),
            to: resolve(*to),
            rows: RowCopy {
                src: rows.src + shift(*from),
                dst: rows.dst + shift(*to),
                ..*rows
            },
        },
        SymStep::Call {
            node,
            op,
            inputs,
            output,
            scratch,
        } => Step::Call {
            node: *node,
            op: op.clone(),
            inputs: inputs
                .iter()
                .map(|o| {
                    o.map(|o| match o {
                        SymOperand::Input(k) => Operand::Input(k),
                        SymOperand::Buf(s, len, dtype) => Operand::Buf(Buf {
                            offset: at(s),
                            len,
                            dtype,
                        }),
                    })
                })
                .collect(),
            output: Buf {
                offset: at(output.0),
                len: output.1,
                dtype: output.2,
            },
            // The int8 kernels' `i16` copies; an f32 depthwise window's joined plane.
            scratch: scratch.map(|bytes| {
                let dtype = match output.2 {
                    DType::F32 => DType::F32,
                    _ => DType::I16,
                };
                Buf {
                    offset: at(Sym::Kernel),
                    len: bytes / dtype.size(),
                    dtype,
                }
            }),
        },
    };
    // The program: runs of identical passes become one loop.
    let mut program: Vec<Block> = Vec::new();
    let mut k = 0;
    while k < passes.len() {
        let mut j = k + 1;
        while j < passes.len() && passes[j] == passes[k] {
            j += 1;
        }
        program.push(Block {
            repeat: j - k,
            steps: passes[k].iter().map(step).collect(),
        });
        k = j;
    }
    Some((
        StreamOp {
            nodes: nodes.into_iter().cloned().collect(),
            program,
            scratch_bytes,
            buffers,
            band_rows: band,
        },
        inputs,
    ))
}

/// Whether a depthwise convolution's window can be split (its first rows kept apart): the
/// int8 padded-plane kernel and the f32 3×3 one at stride 1.
pub(super) fn splittable(op: &Op) -> bool {
    match op {
        Op::Conv(ConvOp::I8Depthwise(..)) => true,
        Op::Conv(ConvOp::F32(p)) => {
            crate::kernels::conv::depthwise_3x3_f32(p) && p.window.stride_h == 1
        }
        _ => false,
    }
}
