//! A host interpreter of a compiled plan: the same kernels, the same constants and the same
//! arena offsets the generated code uses, driven from data instead of generated source.
//!
//! It runs plans in tests (per-op conformance, the ONNX backend cases, int8 models) without a
//! macro expansion per model, and it checks the placement: the arena is one byte buffer, so a
//! tensor placed over one that is still live corrupts it here exactly as it would on the
//! device.

use crate::kernels::{
    activation, conv, elementwise, gemm, normalization, pool, quant, reduce, shape, softmax,
};

use crate::ir::{DType, Graph, Op, TensorId, TensorKind};
use crate::place::ArenaPlan;
use crate::schedule::Schedule;

/// The elements of one tensor, in its element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `i32` elements (biases of int8 models).
    I32(Vec<i32>),
    /// `u8` elements: the interface of a uint8 graph input or output (int8 in the arena).
    U8(Vec<u8>),
}

impl Values {
    /// Zeroed values of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Values {
        match dtype {
            DType::F32 => Values::F32(vec![0.0; len]),
            DType::I8 => Values::I8(vec![0; len]),
            DType::I32 => Values::I32(vec![0; len]),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I8(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::U8(v) => v.len(),
        }
    }

    /// True when there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `f32` elements; panics on another type (a compiler bug).
    pub fn f32(&self) -> &[f32] {
        match self {
            Values::F32(v) => v,
            other => panic!("expected f32 values, found {other:?}"),
        }
    }

    /// The `i8` elements; panics on another type (a compiler bug).
    pub fn i8(&self) -> &[i8] {
        match self {
            Values::I8(v) => v,
            other => panic!("expected i8 values, found {other:?}"),
        }
    }

    fn i32(&self) -> &[i32] {
        match self {
            Values::I32(v) => v,
            other => panic!("expected i32 values, found {other:?}"),
        }
    }

    fn f32_mut(&mut self) -> &mut [f32] {
        match self {
            Values::F32(v) => v,
            other => panic!("expected f32 output, found {other:?}"),
        }
    }

    fn i8_mut(&mut self) -> &mut [i8] {
        match self {
            Values::I8(v) => v,
            other => panic!("expected i8 output, found {other:?}"),
        }
    }

    /// The elements as little-endian bytes (the arena's and the weight statics' layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Values::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::U8(v) => v.iter().map(|&x| x ^ 0x80).collect(),
        }
    }

    fn from_bytes(dtype: DType, b: &[u8]) -> Values {
        match dtype {
            DType::F32 => Values::F32(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            DType::I8 => Values::I8(b.iter().map(|&x| x as i8).collect()),
            DType::I32 => Values::I32(
                b.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
        }
    }
}

/// Runs one node's kernel on plain values (`out` holds the output's element type).
pub fn call_kernel(op: &Op, inputs: &[&Values], out: &mut Values) {
    let f = |i: usize| inputs[i].f32();
    let fo = |i: usize| inputs.get(i).map(|v| v.f32());
    let q = |i: usize| inputs[i].i8();
    let bias = |i: usize| inputs.get(i).map(|v| v.i32());
    match op {
        Op::Conv(p) => conv::conv2d(p, f(0), f(1), fo(2), out.f32_mut()),
        Op::MatMul(p) => gemm::matmul(p, f(0), f(1), fo(2), out.f32_mut()),
        Op::Pool(p) => pool::pool2d(p, f(0), out.f32_mut()),
        Op::Reduce(p) => reduce::reduce(p, f(0), out.f32_mut()),
        Op::Softmax(p) => softmax::softmax(p, f(0), out.f32_mut()),
        Op::Unary(a) => activation::unary(*a, f(0), out.f32_mut()),
        Op::Binary(p) => elementwise::binary(p, f(0), f(1), out.f32_mut()),
        Op::ScaleShift(p) => normalization::scale_shift(p, f(0), f(1), f(2), out.f32_mut()),
        Op::Concat(parts) => {
            for (part, x) in parts.iter().zip(inputs) {
                match &mut *out {
                    Values::I8(o) => shape::concat_part(part, x.i8(), o),
                    o => shape::concat_part(part, x.f32(), o.f32_mut()),
                }
            }
        }
        Op::Copy(p) => match out {
            Values::I8(o) => shape::strided_copy(p, q(0), o),
            o => shape::strided_copy(p, f(0), o.f32_mut()),
        },
        Op::Pad(p) => shape::pad(p, f(0), out.f32_mut()),
        Op::Reshape => match out {
            Values::I8(o) => {
                let n = o.len();
                o.copy_from_slice(&q(0)[..n])
            }
            o => {
                let o = o.f32_mut();
                let n = o.len();
                o.copy_from_slice(&f(0)[..n])
            }
        },
        Op::ConvI8(p, rq) => conv::conv2d_i8(p, q(0), q(1), bias(2), rq, out.i8_mut()),
        Op::MatMulI8(p, rq) => gemm::matmul_i8(p, q(0), q(1), bias(2), rq, out.i8_mut()),
        Op::MaxPoolI8 { geom, lo, hi } => pool::max_pool_i8(geom, *lo, *hi, q(0), out.i8_mut()),
        Op::AvgPoolI8 {
            geom,
            quant,
            by_count,
        } => pool::avg_pool_i8(geom, quant, by_count, q(0), out.i8_mut()),
        Op::AddI8(p) => elementwise::add_i8(p, q(0), q(1), out.i8_mut()),
        Op::SoftmaxI8(p) => softmax::softmax_i8(p, q(0), out.i8_mut()),
        Op::Quantize(p) => quant::quantize(p, f(0), out.i8_mut()),
        Op::Dequantize(p) => quant::dequantize(p, q(0), out.f32_mut()),
        Op::Requantize(p) => quant::requantize_i8(p, q(0), out.i8_mut()),
        Op::Opaque { what } => panic!("node with no kernel (tract op `{what}`) cannot run"),
    }
}

/// Runs `op` with its output written over input `pos` (`io`); `others` are the remaining
/// inputs in order.
///
/// # Panics
/// If `op` has no in-place kernel (the planner only chooses in place for those that do).
pub fn call_kernel_in_place(op: &Op, pos: usize, io: &mut Values, others: &[&Values]) {
    match op {
        Op::Unary(a) => activation::unary_in_place(*a, io.f32_mut()),
        Op::Binary(p) => elementwise::binary_in_place(p, pos == 0, io.f32_mut(), others[0].f32()),
        Op::ScaleShift(p) => {
            normalization::scale_shift_in_place(p, io.f32_mut(), others[0].f32(), others[1].f32())
        }
        Op::Softmax(p) => softmax::softmax_in_place(p, io.f32_mut()),
        Op::AddI8(p) => {
            let p = if pos == 0 { *p } else { p.swapped() };
            elementwise::add_i8_in_place(&p, io.i8_mut(), others[0].i8())
        }
        Op::Requantize(p) => quant::requantize_i8_in_place(p, io.i8_mut()),
        other => panic!("no in-place kernel for {}", other.family()),
    }
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
/// takes them) quantized where the generated `run` quantizes the caller's floats, and
/// uint8 moved to int8 (zero point 128 apart: the top bit flipped).
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
        arena[region(t)].copy_from_slice(&x.to_bytes());
    }
    for n in &schedule.order {
        let node = &g.nodes[n.0];
        let out_t = node.output;
        if let Some(pos) = plan.in_place[n.0] {
            // The same in-place kernel the generated code calls, on the arena's bytes.
            assert_eq!(region(node.inputs[pos]), region(out_t));
            let others: Vec<Values> = node
                .inputs
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != pos)
                .map(|(_, &t)| read(&arena, t))
                .collect();
            let refs: Vec<&Values> = others.iter().collect();
            let mut io = read(&arena, out_t);
            call_kernel_in_place(&node.op, pos, &mut io, &refs);
            arena[region(out_t)].copy_from_slice(&io.to_bytes());
            trace(out_t, &io);
            continue;
        }
        if let Op::Concat(parts) = &node.op {
            // Zero-copy parts are already in place; copy the others into the live output.
            let mut out = read(&arena, out_t);
            for (pos, (part, &t)) in parts.iter().zip(&node.inputs).enumerate() {
                if !plan.is_zero_copy(g, n.0, pos) {
                    let x = read(&arena, t);
                    match &mut out {
                        Values::I8(o) => shape::concat_part(part, x.i8(), o),
                        o => shape::concat_part(part, x.f32(), o.f32_mut()),
                    }
                }
            }
            arena[region(out_t)].copy_from_slice(&out.to_bytes());
            trace(out_t, &out);
            continue;
        }
        let ins: Vec<Values> = node.inputs.iter().map(|&t| read(&arena, t)).collect();
        let refs: Vec<&Values> = ins.iter().collect();
        let mut out = Values::zeros(g.tensor(out_t).dtype, g.tensor(out_t).len());
        if let Values::F32(o) = &mut out {
            o.fill(f32::NAN);
        }
        call_kernel(&node.op, &refs, &mut out);
        arena[region(out_t)].copy_from_slice(&out.to_bytes());
        trace(out_t, &out);
    }
    g.outputs.iter().map(|&t| read(&arena, t)).collect()
}
