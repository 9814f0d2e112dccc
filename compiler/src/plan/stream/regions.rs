//! The band search: the regions worth streaming and the band heights to try.

use super::build::chw;
use super::*;

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

/// True when `region` has depthwise windows that [`build`] can split (see `Edge::split`;
/// int8, and f32 3×3): worth planning both ways (splitting pays where bands are tall; with
/// short ones its two copies a channel can pack worse and cost more).
pub fn splits(g: &Graph, region: &Region) -> bool {
    region
        .nodes
        .iter()
        .any(|&v| super::build::splittable(&g.nodes[v].op))
}
