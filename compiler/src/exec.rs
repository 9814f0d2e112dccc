//! A host interpreter of a compiled plan: the same kernels, the same constants and the same
//! arena offsets the generated code uses, driven from data instead of generated source.
//!
//! It runs plans in tests (per-op conformance, the ONNX backend cases, int8 models) without a
//! macro expansion per model, and it checks the placement: the arena is one byte buffer, so a
//! tensor placed over one that is still live corrupts it here exactly as it would on the
//! device.

use crate::kernels::{quant, shape};

pub use crate::ir::Values;
use crate::ir::{Graph, TensorId, TensorKind};
use crate::ops::Inputs;
use crate::place::ArenaPlan;
use crate::schedule::Schedule;

/// Runs one op's kernel on plain values (`out` holds the output's element type), every input
/// given: what a node does, outside any plan (the latency benchmark times kernels with it).
///
/// # Panics
/// If `op` has no kernel ([`crate::ir::Op::Opaque`]) or the values do not fit it.
pub fn call_kernel(op: &crate::ir::Op, inputs: &[&Values], out: &mut Values) {
    let kernel = op
        .kernel()
        .unwrap_or_else(|| panic!("{} has no kernel", op.family()));
    let inputs = Inputs {
        values: inputs.iter().map(|&v| Some(v)).collect(),
    };
    kernel.run(&inputs, out);
}

/// Runs the plan on `inputs` (one slice per graph input) and returns the graph outputs.
///
/// # Panics
/// If the number, types or sizes of the inputs do not match the graph.
pub fn run(g: &Graph, schedule: &Schedule, plan: &ArenaPlan, inputs: &[&[f32]]) -> Vec<Vec<f32>> {
    let inputs: Vec<Values> = inputs.iter().map(|x| Values::F32(x.to_vec())).collect();
    run_values(g, schedule, plan, &inputs)
        .into_iter()
        .map(|v| v.f32().to_vec())
        .collect()
}

/// As [`run`], for graphs whose inputs or outputs are int8: values in each tensor's own type
/// (`U8` for a uint8 interface).
///
/// # Panics
/// If the number, types or sizes of the inputs do not match the graph.
pub fn run_values(
    g: &Graph,
    schedule: &Schedule,
    plan: &ArenaPlan,
    inputs: &[Values],
) -> Vec<Values> {
    run_traced(g, schedule, plan, inputs, |_, _| {})
}

/// As [`run_values`], also handing every node's output to `trace` right after the node ran
/// (`(tensor, values)`), for comparing intermediate tensors with another runtime.
///
/// # Panics
/// If the number, types or sizes of the inputs do not match the graph.
pub fn run_traced(
    g: &Graph,
    schedule: &Schedule,
    plan: &ArenaPlan,
    inputs: &[Values],
    mut trace: impl FnMut(TensorId, &Values),
) -> Vec<Values> {
    let arena_in = arena_inputs(g, inputs);
    let raw = run_arena(g, schedule, plan, &arena_in, &mut trace);
    interface_outputs(g, raw)
}

/// The graph inputs as the arena holds them: `inputs` (interface values, as [`run_values`]
/// takes them) quantized where the generated `run` quantizes the caller's floats, uint8
/// moved to int8 (zero point 128 apart: the top bit flipped), and channels-last inputs
/// gathered into channels first.
///
/// # Panics
/// If the number, types or sizes of the inputs do not match the graph.
pub fn arena_inputs(g: &Graph, inputs: &[Values]) -> Vec<Values> {
    assert_eq!(inputs.len(), g.inputs.len(), "one value per graph input");
    inputs
        .iter()
        .zip(&g.inputs)
        .enumerate()
        .map(|(k, (x, &t))| {
            assert_eq!(x.len(), g.tensor(t).len(), "input size");
            if let Some(q) = g.input_quant(k) {
                let mut y = vec![0i8; x.len()];
                let p = quant::Quantize {
                    scale: q.scale,
                    zero: q.zero,
                };
                quant::quantize(&p, x.f32(), &mut y);
                return Values::I8(y);
            }
            if g.input_is_unsigned(k) {
                let Values::U8(v) = x else {
                    panic!("input type: expected u8 values, found {x:?}")
                };
                return Values::I8(v.iter().map(|&b| (b ^ 0x80) as i8).collect());
            }
            let expected = Values::zeros(g.tensor(t).dtype, 0);
            assert_eq!(
                std::mem::discriminant(x),
                std::mem::discriminant(&expected),
                "input type"
            );
            if g.input_is_channels_last(k) {
                // NHWC from the caller, NCHW in the arena (see `Graph::input_channels_last`).
                let s = &g.tensor(t).shape;
                let (c, plane) = (s[1], s[2] * s[3]);
                return match x {
                    Values::F32(v) => {
                        let mut y = vec![0.0; v.len()];
                        shape::channels_last_to_first(v, &mut y, c, plane);
                        Values::F32(y)
                    }
                    Values::I8(v) => {
                        let mut y = vec![0; v.len()];
                        shape::channels_last_to_first(v, &mut y, c, plane);
                        Values::I8(y)
                    }
                    _ => panic!("a channels-last input is f32 or i8, found {x:?}"),
                };
            }
            x.clone()
        })
        .collect()
}

/// The graph outputs as the caller receives them from raw arena values: dequantized where
/// the generated `run` dequantizes, int8 moved to uint8 for a uint8 interface.
pub fn interface_outputs(g: &Graph, raw: Vec<Values>) -> Vec<Values> {
    raw.into_iter()
        .enumerate()
        .map(|(k, v)| match g.output_quant(k) {
            Some(q) => {
                let mut y = vec![0.0; v.len()];
                let p = quant::Dequantize {
                    scale: q.scale,
                    zero: q.zero,
                };
                quant::dequantize(&p, v.i8(), &mut y);
                Values::F32(y)
            }
            None if g.output_is_unsigned(k) => {
                Values::U8(v.i8().iter().map(|&x| (x as u8) ^ 0x80).collect())
            }
            None => v,
        })
        .collect()
}

/// The steps of the plan on inputs already in the arena's representation (see
/// [`arena_inputs`]), returning the output tensors as the arena holds them: what the
/// generated `self_test` compares.
///
/// # Panics
/// If the number, types or sizes of the inputs do not match the graph.
pub fn run_arena(
    g: &Graph,
    schedule: &Schedule,
    plan: &ArenaPlan,
    inputs: &[Values],
    mut trace: impl FnMut(TensorId, &Values),
) -> Vec<Values> {
    assert_eq!(inputs.len(), g.inputs.len(), "one value per graph input");
    // Poisoned: all-ones bytes are NaN as f32, so reading a tensor nobody wrote shows.
    let mut arena = vec![0xffu8; plan.arena_bytes];
    let region = |t: TensorId| {
        let start = plan.offsets[t.0].unwrap_or(0);
        start..start + g.tensor(t).bytes()
    };
    let read = |arena: &[u8], t: TensorId| -> Values {
        match &g.tensor(t).kind {
            TensorKind::Weight(w) => Values::F32(w.clone()),
            TensorKind::WeightI8(w) => Values::I8(w.clone()),
            TensorKind::WeightI32(w) => Values::I32(w.clone()),
            // Read where the caller passes it (here as the arena would hold it).
            TensorKind::Caller(k) => inputs[*k].clone(),
            _ => Values::from_bytes(g.tensor(t).dtype, &arena[region(t)]),
        }
    };
    for (x, &t) in inputs.iter().zip(&g.inputs) {
        assert_eq!(x.len(), g.tensor(t).len(), "input size");
        assert_eq!(
            std::mem::discriminant(x),
            std::mem::discriminant(&Values::zeros(g.tensor(t).dtype, 0)),
            "input type"
        );
        if g.tensor(t).in_arena() {
            arena[region(t)].copy_from_slice(&x.to_bytes());
        }
    }
    for n in &schedule.order {
        let node = &g.nodes[n.0];
        let out_t = node.output;
        let kernel = node.op.kernel().unwrap_or_else(|| {
            panic!(
                "node `{}` ({}) has no kernel and cannot run",
                node.name, node.op_type
            )
        });
        let in_place = plan.in_place[n.0];
        if let Some(s) = node.scratch {
            // The kernel's scratch holds garbage: a live tensor placed over it shows.
            arena[region(s)].fill(0xa5);
        }
        if let Some(pos) = in_place {
            // The same in-place kernel the generated code calls, on the arena's bytes.
            assert_eq!(region(node.inputs[pos]), region(out_t));
        }
        // Inputs the kernel reads: not the one it overwrites, not the concatenation parts
        // already in their slice of the output.
        let ins: Vec<Option<Values>> = node
            .inputs
            .iter()
            .enumerate()
            .map(|(pos, &t)| {
                (in_place != Some(pos) && !plan.is_zero_copy(g, n.0, pos)).then(|| read(&arena, t))
            })
            .collect();
        let inputs = Inputs {
            values: ins.iter().map(Option::as_ref).collect(),
        };
        let out = if let Some(pos) = in_place {
            let mut io = read(&arena, out_t);
            kernel.run_in_place(pos, &mut io, &inputs);
            io
        } else if ins.iter().any(Option::is_none) {
            // Zero-copy parts are already in place: the kernel completes the live output.
            let mut out = read(&arena, out_t);
            kernel.run(&inputs, &mut out);
            out
        } else {
            let mut out = Values::zeros(g.tensor(out_t).dtype, g.tensor(out_t).len());
            if let Values::F32(o) = &mut out {
                // NaN: an element the kernel does not write shows.
                o.fill(f32::NAN);
            }
            kernel.run(&inputs, &mut out);
            out
        };
        arena[region(out_t)].copy_from_slice(&out.to_bytes());
        trace(out_t, &out);
    }
    g.outputs.iter().map(|&t| read(&arena, t)).collect()
}
