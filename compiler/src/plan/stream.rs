//! Streaming: a region of row-local ops run band by band, so that its feature maps are never
//! held whole (rolling buffers; nothing is computed twice).
//!
//! A *stage* is a set of row-local nodes (convolutions, poolings, elementwise ops: see
//! [`Op::row_rule`]) with one output tensor, the only one used outside it, which is written
//! whole. A stage may end in a global average pooling: it then sums its input's rows as they
//! come ([`PoolOp::RowSums`], f32 in the pooling's own order, int8 in exact `i32`) and writes
//! the averages after the last, so that input is never held either. Everything else the
//! stage computes lives in *windows*: per consumer input, the rows its next band call reads,
//! as a small `[channels][rows][width]` tensor in the stage's scratch. [`build`] simulates the stage pass by pass — each pass asks the last op for
//! `band` more output rows, every producer computes just the rows its consumers then lack —
//! and writes down the program: band calls (the ordinary kernels with a band geometry) and
//! the row copies that keep the windows in shape. The stage becomes one node
//! ([`StreamOp`]) whose scratch is the sum of its buffers, which the scheduler and the placer
//! treat like any other node.
//!
//! [`candidates`] lists regions worth trying; `crate::plan` plans each and keeps a stage only
//! where the placed arena shrinks.

use crate::ir::{DType, Graph, Node, NodeId, Op, OrderRank, TensorId, TensorKind};
use crate::kernels::stream::RowCopy;
use crate::kernels::Window2d;
use crate::ops::pool::PoolOp;
use crate::ops::stream::{Block, Buf, Operand, Place, RowRule, StageBuffer, Step, StreamOp};

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
fn chw(g: &Graph, t: TensorId) -> (usize, usize, usize, usize) {
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

/// A row-local region of the graph (see [`candidates`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Its nodes, in graph order.
    pub nodes: Vec<usize>,
    /// The tensor it writes whole.
    pub output: TensorId,
}

/// Regions to try: from node `start` on (the graph's start, or the node after a stage
/// already chosen), every run of row-local nodes in graph order that leaves one tensor for
/// the rest of the graph, at least two ops long; longest first. A region reads tensors
/// written before it (the graph input, an earlier stage's output) whole from the arena, or
/// a graph input where the caller passes it.
pub fn candidates(g: &Graph, start: usize) -> Vec<Region> {
    let consumers = g.consumers();
    let mut out = Vec::new();
    let mut inside = vec![false; g.nodes.len()];
    for k in start..g.nodes.len() {
        let node = &g.nodes[k];
        if node.op.row_rule(g, node).is_none() {
            break;
        }
        inside[k] = true;
        if k == start {
            continue;
        }
        // Tensors written in the run that something after it (or the caller) reads.
        let mut leaving = g.nodes[start..=k]
            .iter()
            .map(|n| n.output)
            .filter(|t| g.outputs.contains(t) || consumers[t.0].iter().any(|c| !inside[c.0]));
        if let (Some(t), None) = (leaving.next(), leaving.next()) {
            // The output must be the run's sink: read by nothing inside it.
            if consumers[t.0].iter().all(|c| !inside[c.0]) {
                out.push(Region {
                    nodes: (start..=k).collect(),
                    output: t,
                });
            }
        }
    }
    out.reverse();
    out
}

/// Chains anywhere in the graph: from each row-local node, its output's only reader while
/// that reader is row-local too (an expansion and the convolution that reduces it again, a
/// branch of a cell), at least two ops long. Ranked by the bytes of the maps they would
/// never hold whole, largest first; the `limit` best.
pub fn chains(g: &Graph, limit: usize) -> Vec<Region> {
    let consumers = g.consumers();
    // Once per node: a strided copy's rule reads every element's index.
    let row_local: Vec<bool> = g
        .nodes
        .iter()
        .map(|n| n.op.row_rule(g, n).is_some())
        .collect();
    let mut out: Vec<(usize, Region)> = Vec::new();
    for start in 0..g.nodes.len() {
        if !row_local[start] {
            continue;
        }
        let mut nodes = vec![start];
        let mut saved = 0;
        loop {
            let t = g.nodes[*nodes.last().expect("a chain has a node")].output;
            let readers = &consumers[t.0];
            let [next] = readers[..] else { break };
            if g.outputs.contains(&t) || !row_local[next.0] || nodes.contains(&next.0) {
                break;
            }
            saved += g.tensor(t).bytes();
            nodes.push(next.0);
            let mut sorted = nodes.clone();
            sorted.sort_unstable();
            let output = g.nodes[next.0].output;
            out.push((
                saved,
                Region {
                    nodes: sorted,
                    output,
                },
            ));
        }
    }
    out.sort_by_key(|(saved, _)| std::cmp::Reverse(*saved));
    let mut regions: Vec<Region> = Vec::new();
    for (_, r) in out {
        if regions.len() == limit {
            break;
        }
        if !regions.contains(&r) {
            regions.push(r);
        }
    }
    regions
}

/// Output pixels per channel a band call of a depthwise convolution or a 1×1 convolution
/// (matrix product) should have at least: their kernels pay a set-up per call and channel
/// (the int8 depthwise kernel sums each channel's weights, ~140 instructions on the
/// Cortex-M4) that one row of a narrow map does not cover.
const MIN_BAND_PIXELS: usize = 32;

/// Output rows per pass for `region`: one, or as many as its narrowest depthwise or 1×1
/// convolution needs for [`MIN_BAND_PIXELS`] per call.
pub fn band_rows(g: &Graph, region: &Region) -> usize {
    region
        .nodes
        .iter()
        .map(|&v| &g.nodes[v])
        .filter(|n| match &n.op {
            Op::Conv(c) => c.geometry().groups > 1,
            Op::Gemm(_) => true,
            _ => false,
        })
        .map(|n| MIN_BAND_PIXELS.div_ceil(chw(g, n.output).2.max(1)))
        .max()
        .unwrap_or(1)
}

/// True when `region` has int8 depthwise windows that [`build`] can split (see
/// `Edge::split`): worth planning both ways (splitting pays where bands are tall; with short
/// ones its two copies a channel can pack worse and cost more).
pub fn splits(g: &Graph, region: &Region) -> bool {
    region.nodes.iter().any(|&v| {
        matches!(
            g.nodes[v].op,
            Op::Conv(crate::ops::conv::ConvOp::I8Depthwise(..))
        )
    })
}

/// The program of `region` run `band` output rows per pass, as a stage op, with the stage
/// node's inputs (external activations, then weights). `None` when the region cannot stream
/// (an op that is not row-local, a tensor it writes that something outside reads). With
/// `split`, int8 depthwise windows keep the rows they read again apart (see [`splits`]).
pub fn build(
    g: &Graph,
    region: &Region,
    band: usize,
    alignment: usize,
    split: bool,
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
    // anyway) from a producer that feeds nothing else.
    for outs in &out_edges {
        if let [e] = outs[..] {
            let c = edges[e].node;
            edges[e].split = split
                && matches!(rules[c], RowRule::Window(_))
                && matches!(
                    nodes[c].op,
                    Op::Conv(crate::ops::conv::ConvOp::I8Depthwise(..))
                );
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
        while (0..nodes.len()).any(|n| done[n] < target[n]) {
            for n in 0..nodes.len() {
                let ready = in_edges[n]
                    .iter()
                    .filter(|&&e| edges[e].external.is_none())
                    .map(|&e| {
                        let p = local(edges[e].tensor).expect("an internal edge has a producer");
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
                for (k, &e) in in_edges[n].iter().enumerate() {
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
                let (op, scratch) = node.op.band(window, c, rows, w);
                let kernel_scratch = (scratch > 0).then_some(scratch);
                max_kernel = max_kernel.max(scratch);
                let mut after = Vec::new();
                let dest = if n == last {
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
                            debug_assert_eq!(ed.hi, a, "a window ends where its producer stands");
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
                steps.push(SymStep::Call {
                    node: n,
                    op: Box::new(op),
                    inputs: operands,
                    output: (dest, c * rows * w, dtype),
                    scratch: kernel_scratch,
                });
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
                        steps.extend(relayout(Sym::Kept(e), c, row, (ed.lo, ed.mid), lo2, height));
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
                // A band call writes its whole output (running sums add to theirs).
                Some((output.0, output.0 != Sym::Sums)),
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
            scratch: scratch.map(|bytes| Buf {
                offset: at(Sym::Kernel),
                len: bytes / 2,
                dtype: DType::I16,
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

/// A buffer of a stage's scratch and when it is live.
#[derive(Clone, Debug)]
struct LiveSpan {
    bytes: usize,
    /// From and to which step (of the unrolled program) it is live, in order.
    live: Vec<(usize, usize)>,
}

impl LiveSpan {
    /// True when both may hold something at one step.
    fn meets(&self, other: &LiveSpan) -> bool {
        let (mut i, mut j) = (0, 0);
        while let (Some(&(a, b)), Some(&(c, d))) = (self.live.get(i), other.live.get(j)) {
            if a <= d && c <= b {
                return true;
            }
            if b < d {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }
}

/// Offsets (multiples of `alignment`) such that buffers that meet never overlap, and the
/// bytes they span. Buffers go one by one to the lowest offset clear of those placed that
/// they meet; of a few orders (largest first; longest-lived first; largest area of bytes
/// times steps first) the one spanning the fewest bytes.
fn pack(spans: &[LiveSpan], alignment: usize) -> (Vec<usize>, usize) {
    let steps = |s: &LiveSpan| -> usize { s.live.iter().map(|(a, b)| b - a + 1).sum() };
    let first = |s: &LiveSpan| s.live.first().map_or(0, |l| l.0);
    (0..4)
        .map(|key| {
            let mut order: Vec<usize> = (0..spans.len()).collect();
            order.sort_by_key(|&k| {
                let (b, t) = (spans[k].bytes, steps(&spans[k]));
                std::cmp::Reverse(match key {
                    0 => (b, t),
                    1 => (t, b),
                    2 => (t.saturating_mul(b), b),
                    // In the order the program first writes them: the windows of a chain
                    // of layers, each meeting the next, alternate between two places.
                    _ => (usize::MAX - first(&spans[k]), b),
                })
            });
            pack_in_order(spans, &order, alignment)
        })
        .min_by_key(|(_, total)| *total)
        .unwrap_or_default()
}

/// [`pack`] in one order.
fn pack_in_order(spans: &[LiveSpan], order: &[usize], alignment: usize) -> (Vec<usize>, usize) {
    let mut offsets = vec![0usize; spans.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut total = 0usize;
    for &k in order {
        let mut taken: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| spans[j].meets(&spans[k]))
            .map(|&j| (offsets[j], offsets[j] + spans[j].bytes))
            .collect();
        taken.sort_unstable();
        let mut at = 0usize;
        for (lo, hi) in taken {
            if at + spans[k].bytes <= lo {
                break;
            }
            at = at.max(hi.next_multiple_of(alignment));
        }
        offsets[k] = at;
        total = total.max((at + spans[k].bytes).next_multiple_of(alignment));
        placed.push(k);
    }
    (offsets, total)
}

/// True when the stage of `region` can read graph input tensor `t` where the caller passes
/// it: the stage is its only reader and `run` would copy it into the arena unchanged or
/// quantized (not a uint8 interface, whose top bit `run` flips).
fn read_in_place(g: &Graph, region: &Region, t: TensorId) -> bool {
    let TensorKind::Input(i) = g.tensor(t).kind else {
        return false;
    };
    let only_stage = g.consumers()[t.0]
        .iter()
        .all(|c| region.nodes.contains(&c.0));
    only_stage
        && !g.outputs.contains(&t)
        && !g.input_is_unsigned(i)
        && matches!(g.tensor(t).dtype, DType::F32 | DType::I8)
}

/// `g` with `region` replaced by one stage node (at the place of the region's last node),
/// `None` when the region cannot stream. With `read_caller`, a graph input only the stage
/// reads is read where the caller passes it ([`TensorKind::Caller`]) instead of from a copy
/// in the arena; `split` as in [`build`].
pub fn apply(
    g: &Graph,
    region: &Region,
    band: usize,
    alignment: usize,
    read_caller: bool,
    split: bool,
) -> Option<Graph> {
    let (mut op, inputs) = build(g, region, band, alignment, split)?;
    let mut out = g.clone();
    for (k, &t) in inputs.iter().enumerate() {
        let TensorKind::Input(i) = g.tensor(t).kind else {
            continue;
        };
        // A carried state is copied in from the `Model`, never read where it lies.
        let carried = g.carry.iter().any(|&(_, j)| j == i);
        if !read_caller || carried || !read_in_place(g, region, t) {
            continue;
        }
        out.tensors[t.0].kind = TensorKind::Caller(i);
        let dtype = g.tensor(t).dtype;
        for block in &mut op.program {
            for step in &mut block.steps {
                if let Step::Copy { from, .. } = step {
                    if *from == Place::Input(k) {
                        *from = Place::Caller(k, dtype);
                    }
                }
            }
        }
    }
    let words = op.scratch_bytes.div_ceil(4);
    let first = &g.nodes[region.nodes[0]];
    let last = &g.nodes[*region.nodes.last()?];
    let scratch = out.add_typed_tensor(
        format!("{}.stream", g.tensor(region.output).name),
        vec![words],
        DType::I32,
        TensorKind::Scratch,
        None,
    );
    let rank = region
        .nodes
        .iter()
        .map(|&v| g.nodes[v].rank)
        .fold(OrderRank::default(), OrderRank::max);
    let node = Node {
        name: format!("stream({}..{})", first.name, last.name),
        op_type: "Stream".into(),
        op: Op::Stream(Box::new(op)),
        inputs,
        output: region.output,
        scratch: Some(scratch),
        rank,
    };
    let at = *region.nodes.last()?;
    let mut nodes = Vec::with_capacity(g.nodes.len() - region.nodes.len() + 1);
    for (v, n) in g.nodes.iter().enumerate() {
        if v == at {
            nodes.push(node.clone());
        } else if !region.nodes.contains(&v) {
            nodes.push(n.clone());
        }
    }
    out.nodes = nodes;
    Some(out)
}

/// Instructions one inference of `g` costs on a Cortex-M4, estimated low per op (below the
/// `mlperf` and `firmware-m4` binaries' measurements of every test network): dense int8
/// convolutions 1 per MAC, int8 depthwise 2.5, tiled f32 convolutions 2.8, the f32 reference
/// convolution (depthwise f32) 7, f32 matrix products 7 (a 1×1 f32 convolution costs about
/// 7.5 on the Cortex-M4), int8 ones 6; other ops 2 per output element. What the planner
/// measures a stage's [`StreamOp::overhead_estimate`] against.
pub fn cost_estimate(g: &Graph) -> u64 {
    use crate::ops::conv::ConvOp;
    use crate::ops::gemm::GemmOp;
    g.nodes
        .iter()
        .map(|n| {
            let macs = n.op.macs();
            match &n.op {
                Op::Conv(ConvOp::F32(_)) => 7 * macs,
                Op::Conv(ConvOp::F32Tiled(_)) => macs * 14 / 5,
                Op::Conv(c) if c.geometry().groups > 1 => macs * 5 / 2,
                Op::Conv(_) => macs,
                Op::Gemm(GemmOp::F32(_)) => 7 * macs,
                Op::Gemm(_) => 6 * macs,
                Op::Stream(s) => s.nodes.iter().map(|m| m.op.macs()).sum(),
                _ => 2 * g.tensor(n.output).len() as u64,
            }
        })
        .sum()
}

/// The nodes of `g` that are stages.
pub fn stages(g: &Graph) -> impl Iterator<Item = (NodeId, &StreamOp)> {
    g.nodes.iter().enumerate().filter_map(|(i, n)| match &n.op {
        Op::Stream(s) => Some((NodeId(i), s.as_ref())),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::{pack, LiveSpan};
    use crate::ir::Values;
    use crate::{compile, Options};
    use std::path::Path;

    /// Random buffers with random live steps: those that meet never overlap, every offset is
    /// aligned, and buffers never live at once share bytes (the span is at most the sum).
    #[test]
    fn packed_buffers_that_meet_never_overlap() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n) as usize
        };
        let mut shared = 0;
        for _ in 0..500 {
            let spans: Vec<LiveSpan> = (0..1 + next(12))
                .map(|_| {
                    let mut live = Vec::new();
                    let mut t = next(10);
                    for _ in 0..1 + next(4) {
                        let end = t + next(8);
                        live.push((t, end));
                        t = end + 1 + next(10);
                    }
                    LiveSpan {
                        bytes: 1 + next(3000),
                        live,
                    }
                })
                .collect();
            let (offsets, total) = pack(&spans, 16);
            let sum: usize = spans.iter().map(|s| s.bytes.next_multiple_of(16)).sum();
            assert!(total <= sum && total % 16 == 0);
            shared += usize::from(total < sum);
            for (i, a) in spans.iter().enumerate() {
                assert_eq!(offsets[i] % 16, 0);
                assert!(offsets[i] + a.bytes <= total);
                for (j, b) in spans.iter().enumerate().take(i) {
                    let apart =
                        offsets[i] + a.bytes <= offsets[j] || offsets[j] + b.bytes <= offsets[i];
                    assert!(apart || !a.meets(b), "{a:?} and {b:?} overlap");
                }
            }
        }
        assert!(shared > 100, "{shared} of 500 packings shared bytes");
    }

    /// The model at `path` (relative to the repository) planned with and without streaming:
    /// the streamed plan keeps a stage, is smaller, and computes the same bits.
    fn same_bits(path: &str, stream_cost_percent: u32) -> (usize, usize) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
        let on = compile(
            &path,
            &Options {
                stream_cost_percent,
                ..Options::default()
            },
        )
        .unwrap();
        let off = compile(
            &path,
            &Options {
                streaming: false,
                ..Options::default()
            },
        )
        .unwrap();
        let inputs: Vec<Values> = on
            .graph
            .inputs
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                let n = on.graph.tensor(t).len();
                let x: Vec<f32> = (0..n)
                    .map(|i| ((i * 7 + k) % 13) as f32 / 6.0 - 1.0)
                    .collect();
                Values::F32(x)
            })
            .collect();
        let a = crate::exec::run_values(&on.graph, &on.schedule, &on.plan, &inputs);
        let b = crate::exec::run_values(&off.graph, &off.schedule, &off.plan, &inputs);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.to_bytes(), y.to_bytes(), "{}", path.display());
        }
        (on.plan.arena_bytes, off.plan.arena_bytes)
    }

    #[test]
    fn streamed_plans_compute_the_same_bits() {
        for m in [
            "tests/models/chain.onnx",
            "tests/models/int8/chain_qdq.onnx",
            "tests/models/resnet8.onnx",
            "tests/models/int8/resnet8_qdq.onnx",
            "tests/models/dscnn.onnx",
            "tests/models/mobilenet_v1.onnx",
            "tests/models/int8/mobilenet_v1_qdq.onnx",
            "tests/models/mobilenetv2.onnx",
            "tests/models/dwsep.onnx",
            "tests/models/int8/dwsep_qdq.onnx",
            "tests/models/residual.onnx",
            "tests/models/int8/residual_qdq.onnx",
            "tests/models/wide_stem.onnx",
            "tests/models/nas_cells.onnx",
            "tests/models/random_dag.onnx",
            "tests/models/inception.onnx",
            "tests/models/densenet.onnx",
            "tests/models/int8/inception_qdq.onnx",
        ] {
            let (on, off) = same_bits(m, crate::DEFAULT_STREAM_COST_PERCENT);
            eprintln!("{m}: {on} vs {off} ({:.2})", on as f64 / off as f64);
            assert!(on <= off, "{m}: {on} vs {off}");
            if ["chain", "resnet8", "mobilenet_v1", "wide_stem", "nas_cells"]
                .iter()
                .any(|n| m.contains(n))
            {
                assert!(on < off, "{m}: no stage kept ({on} vs {off})");
            }
        }
    }

    /// Stages that end in a global average pooling (DS-CNN's, MobileNet's): its rows are
    /// summed as they come, f32 in the pooling's own order, int8 in exact `i32`: the same
    /// bits, and the plane is never held.
    /// MobileNetV2-0.35 at 96×96, f32 and int8, with the default options: its first blocks
    /// stream and the arena falls under half (the bar; 0.21× when written), with the
    /// same output bits.
    #[test]
    fn mobilenet_v2_streams_under_half_by_default() {
        for m in [
            "tests/models/mobilenet_v2.onnx",
            "tests/models/int8/mobilenet_v2_qdq.onnx",
        ] {
            let (on, off) = same_bits(m, Options::default().stream_cost_percent);
            eprintln!("{m}: {on} vs {off} ({:.2})", on as f64 / off as f64);
            assert!(2 * on <= off, "{m}: {on} vs {off}");
        }
    }

    /// Int8 depthwise windows split and whole, at several band heights, on every region of
    /// the int8 networks with depthwise convolutions (strides 1 and 2, odd heights, stages
    /// ending in an average): the same bits as the unstreamed plan; splitting takes less
    /// scratch where the bands are tall.
    #[test]
    fn split_depthwise_windows_compute_the_same_bits() {
        use super::{apply, candidates, splits, stages};
        use crate::plan::{evaluate, Clock};
        use std::time::Duration;
        let mut tried = 0;
        for m in [
            "tests/models/int8/dscnn_qdq.onnx",
            "tests/models/int8/dwsep_qdq.onnx",
            "tests/models/int8/mobilenet_v1_qdq.onnx",
            "tests/models/int8/mobilenet_v2_qdq.onnx",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(m);
            let options = Options {
                streaming: false,
                ..Options::default()
            };
            let off = compile(&path, &options).unwrap();
            let g = &off.graph;
            let t = g.inputs[0];
            let x: Vec<f32> = (0..g.tensor(t).len())
                .map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0)
                .collect();
            let input = [Values::F32(x)];
            let want = crate::exec::run_values(g, &off.schedule, &off.plan, &input);
            let clock = Clock::new(Duration::from_secs(60));
            let regions: Vec<_> = candidates(g, 0)
                .into_iter()
                .filter(|r| splits(g, r))
                .take(2)
                .collect();
            assert!(
                !regions.is_empty(),
                "{m}: no region with a depthwise window"
            );
            for region in &regions {
                for band in [1, 2, 3, 5] {
                    let scratch = [false, true].map(|split| {
                        let s = apply(g, region, band, 16, true, split)?;
                        let e = evaluate(
                            &s,
                            &crate::ir::Sharing::default(),
                            crate::plan::SharingChoice::none(),
                            16,
                            Duration::from_millis(200),
                            &clock,
                            &[],
                        );
                        let got = crate::exec::run_values(&s, &e.schedule, &e.plan, &input);
                        for (a, b) in got.iter().zip(&want) {
                            assert_eq!(
                                a.to_bytes(),
                                b.to_bytes(),
                                "{m}: band {band}, split {split}"
                            );
                        }
                        let bytes = stages(&s).map(|(_, st)| st.scratch_bytes).next();
                        bytes
                    });
                    if let [Some(whole), Some(split)] = scratch {
                        tried += 1;
                        if band >= 3 {
                            assert!(split < whole, "{m}, band {band}: {split} vs {whole}");
                        }
                    }
                }
            }
        }
        assert!(tried >= 16, "{tried} regions and bands streamed both ways");
    }

    #[test]
    fn stages_ending_in_an_average_compute_the_same_bits() {
        for m in [
            "tests/models/dscnn.onnx",
            "tests/models/int8/dscnn_qdq.onnx",
            "tests/models/mobilenetv2.onnx",
            "tests/models/dwsep.onnx",
            "tests/models/int8/dwsep_qdq.onnx",
        ] {
            let (on, off) = same_bits(m, 100);
            eprintln!(
                "{m} at cost 100: {on} vs {off} ({:.2})",
                on as f64 / off as f64
            );
            assert!(on <= off, "{m}: {on} vs {off}");
            if m.contains("dscnn") {
                // The whole network streams to its average: under half the unstreamed arena.
                assert!(2 * on <= off, "{m}: {on} vs {off}");
            }
        }
    }
}
