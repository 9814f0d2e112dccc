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
//!
//! | file | what |
//! |---|---|
//! | `regions.rs` | the band search: which regions to try, how many rows a band may have |
//! | `build.rs` | a region simulated pass by pass into a stage's program |
//! | `layout.rs` | the stage's buffers packed into its scratch |
//! | `cost.rs` | the Cortex-M4 instruction estimate streamed stages are measured against |

use crate::ir::{DType, Graph, Node, NodeId, Op, OrderRank, TensorId, TensorKind};
use crate::kernels::stream::RowCopy;
use crate::kernels::Window2d;
use crate::ops::pool::PoolOp;
use crate::ops::stream::{Block, Buf, Operand, Place, RowRule, StageBuffer, Step, StreamOp};

mod build;
mod cost;
mod layout;
mod regions;

pub use build::build;
pub use cost::cost_estimate;
pub use regions::{band_rows, candidates, chains, splits, Region};

use layout::read_in_place;

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
    // The nodes are rebuilt below.
    let mut out = g.clone_without_nodes();
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
    let mut node = Some(node);
    for (v, n) in g.nodes.iter().enumerate() {
        if v == at {
            nodes.extend(node.take());
        } else if !region.nodes.contains(&v) {
            nodes.push(n.clone());
        }
    }
    out.nodes = nodes;
    Some(out)
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
    use crate::ir::Values;
    use crate::{compile, Options};
    use std::path::Path;

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
        use crate::plan::evaluate;
        use crate::plan::work::Budget;
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
            // A tenth of the default planning work for each plan.
            let budget = || Budget::new(crate::DEFAULT_WORK / 10, None);
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
                            &budget(),
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
