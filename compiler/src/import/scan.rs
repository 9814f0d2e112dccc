//! Unrolling tract's `Scan` loops into straight-line graphs.
//!
//! tract types an ONNX `LSTM`, `GRU` or `RNN` over a sequence (and an ONNX `Scan`) as a
//! `Scan` whose body runs once per time step. Our kernels run fixed, planned graphs, so the
//! loop is unrolled before tract declutters the model: the body is wired once per step, each
//! step reading its slice of the scanned inputs and the states the previous step wrote; the
//! scanned outputs are concatenated and the last values taken from the last step. Body nodes
//! that depend on no step (weights, their transposes) are wired once and shared, so the
//! weights are in flash once. Unrolling before the declutter also keeps tract from hoisting
//! the input projection of every step out of the loop into one tensor (49 steps × 4 gates of
//! a keyword-spotting LSTM: 50 kB of arena where one step needs 1 kB).
//!
//! Sequence lengths are known once the inputs are pinned; a longer sequence than
//! [`MAX_STEPS`] is refused with the node named.

use std::collections::HashMap;

use tract_onnx::tract_core;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Slice, TypedConcat};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::gru_cell::GruEpilogue;
use tract_onnx::tract_core::ops::gru_seq::GruSeq;
use tract_onnx::tract_core::ops::scan::{InputMapping, Scan};

/// Longest sequence unrolled: every step is a handful of kernel calls in the generated code.
pub const MAX_STEPS: usize = 1024;

/// Replaces every `Scan` of `model` by its unrolled body (nested loops too: an unrolled body
/// may hold a `Scan`, unrolled on a later round).
pub(crate) fn unroll(model: &mut TypedModel) -> TractResult<()> {
    while let Some(n) = model
        .nodes()
        .iter()
        .find(|n| n.op_is::<Scan>() || n.op_is::<GruSeq>())
    {
        let patch = if n.op_is::<Scan>() {
            unroll_scan(model, n.id)?
        } else {
            unroll_gru_seq(model, n.id)?
        };
        patch.apply(model)?;
        model.compact()?;
    }
    Ok(())
}

/// tract types a GRU with `linear_before_reset` over 4 steps or more as one whole-sequence
/// op (`GruSeq`) instead of a `Scan`; the same steps as its body would be, per step:
/// `xh = Xt·Wᵀ + Wb`, `rh = Ht-1·Rᵀ + Rb`, `Ht = GruEpilogue(xh, rh, Ht-1)`.
fn unroll_gru_seq(model: &TypedModel, id: usize) -> TractResult<TypedModelPatch> {
    let node = model.node(id);
    let op = node.op_as::<GruSeq>().context("a GruSeq")?;
    let name = node.name.clone();
    ensure!(!op.projected, "GRU `{name}`: already projected");
    let x_fact = model.outlet_fact(node.inputs[0])?;
    let steps = x_fact.shape[1]
        .to_usize()
        .with_context(|| format!("GRU `{name}`: its sequence length is not known"))?;
    ensure!(
        steps <= MAX_STEPS,
        "GRU `{name}` runs {steps} steps; at most {MAX_STEPS} are unrolled"
    );
    let h = op.hidden;
    let mut patch = TypedModelPatch::new(format!("unroll {name}"));
    let taps = patch.taps(model, &node.inputs)?;
    let (x, w, r) = (taps[0], taps[1], taps[2]);
    let h0 = *taps.last().context("GruSeq inputs")?;
    let matmul_t =
        || -> TractResult<EinSum> { Ok(EinSum::new("mk,nk->mn".parse()?, f32::datum_type())) };
    let biases = if op.has_bias {
        let b = taps[3];
        let rank = patch.outlet_fact(b)?.rank();
        let wb = patch.wire_node(format!("{name}.wb"), Slice::new(rank - 1, 0, 3 * h), &[b])?[0];
        let rb = patch.wire_node(
            format!("{name}.rb"),
            Slice::new(rank - 1, 3 * h, 6 * h),
            &[b],
        )?[0];
        Some((wb, rb))
    } else {
        None
    };
    let mut state = h0; // [batch, 1, h]
    let mut ys = Vec::new();
    for step in 0..steps {
        let t = if op.chunk < 0 { steps - 1 - step } else { step };
        let p = format!("{name}.t{step}");
        let xt = patch.wire_node(format!("{p}.xt"), Slice::new(1, t, t + 1), &[x])?[0];
        let xt = patch.wire_node(format!("{p}.xt_rm"), AxisOp::Rm(1), &[xt])?[0];
        let mut xh = patch.wire_node(format!("{p}.xw"), matmul_t()?, &[xt, w])?[0];
        let h_prev = patch.wire_node(format!("{p}.h_prev"), AxisOp::Rm(1), &[state])?[0];
        let mut rh = patch.wire_node(format!("{p}.rh"), matmul_t()?, &[h_prev, r])?[0];
        if let Some((wb, rb)) = biases {
            xh = patch.wire_node(format!("{p}.xh"), tract_core::ops::math::add(), &[xh, wb])?[0];
            rh = patch.wire_node(format!("{p}.rhb"), tract_core::ops::math::add(), &[rh, rb])?[0];
        }
        let ht = patch.wire_node(
            format!("{p}.gru_cell"),
            GruEpilogue { hidden: h },
            &[xh, rh, h_prev],
        )?[0];
        state = patch.wire_node(format!("{p}.h"), AxisOp::Add(1), &[ht])?[0];
        ys.push(state);
    }
    if op.chunk < 0 {
        ys.reverse();
    }
    let y = if !op.emit_y {
        // Read by no one (the ONNX `Y` output absent): an empty [batch, 0, h] stands in.
        let empty = Tensor::zero::<f32>(&[x_fact.shape[0].to_usize()?, 0, h])?;
        patch.add_const(format!("{name}.y_empty"), empty)?
    } else if ys.len() == 1 {
        ys[0]
    } else {
        patch.wire_node(format!("{name}.y"), TypedConcat::new(1), &ys)?[0]
    };
    patch.shunt_outside(model, OutletId::new(id, 0), y)?;
    patch.shunt_outside(model, OutletId::new(id, 1), state)?;
    Ok(patch)
}

fn unroll_scan(model: &TypedModel, id: usize) -> TractResult<TypedModelPatch> {
    let node = model.node(id);
    let scan = node.op_as::<Scan>().context("a Scan")?;
    let name = node.name.clone();
    let facts = model.node_input_facts(id)?;
    let steps = scan
        .iteration_count(&facts)
        .context("a loop with no scanned input")?
        .to_usize()
        .with_context(|| format!("loop `{name}`: its sequence length is not known"))?;
    ensure!(scan.skip == 0, "loop `{name}` skips steps");
    ensure!(
        steps <= MAX_STEPS,
        "loop `{name}` runs {steps} steps; at most {MAX_STEPS} are unrolled"
    );
    let body = &scan.body;
    let mut patch = TypedModelPatch::new(format!("unroll {name}"));
    let taps: Vec<OutletId> = node
        .inputs
        .iter()
        .map(|&i| patch.tap_model(model, i))
        .collect::<TractResult<_>>()?;
    // Per scanned input: its length along the scanned axis (whole chunks only).
    for (slot, m) in scan.input_mapping.iter().enumerate() {
        if let InputMapping::Scan(info) = m {
            let len = facts[slot].shape[info.axis]
                .to_usize()
                .with_context(|| format!("loop `{name}`: a scanned length is not known"))?;
            ensure!(
                len == steps * info.chunk.unsigned_abs(),
                "loop `{name}`: a scanned input of length {len} is not whole chunks of {}",
                info.chunk.unsigned_abs()
            );
        }
    }
    let order = body.eval_order()?;
    let inputs: Vec<OutletId> = body.input_outlets()?.to_vec();
    // Body values that no step changes: the `Full` inputs and what depends only on them.
    let mut invariant: HashMap<OutletId, OutletId> = HashMap::new();
    for (slot, m) in scan.input_mapping.iter().enumerate() {
        if matches!(m, InputMapping::Full) {
            invariant.insert(inputs[slot], taps[slot]);
        }
    }
    for &n in &order {
        let bn = body.node(n);
        if inputs.iter().any(|i| i.node == n)
            || !bn.inputs.iter().all(|i| invariant.contains_key(i))
        {
            continue;
        }
        let wired: TVec<OutletId> = bn.inputs.iter().map(|i| invariant[i]).collect();
        let outs = patch.wire_node(format!("{name}.{}", bn.name), bn.op.clone(), &wired)?;
        for (k, o) in outs.into_iter().enumerate() {
            invariant.insert(OutletId::new(n, k), o);
        }
    }
    // The states, in input-mapping order: the k-th state input is fed by the k-th output
    // mapping marked `state` (tract's `Scan` semantics).
    let mut states: Vec<OutletId> = scan
        .input_mapping
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_state())
        .map(|(slot, _)| taps[slot])
        .collect();
    let mut scanned: Vec<Vec<OutletId>> = vec![Vec::new(); scan.output_mapping.len()];
    let mut last: Vec<OutletId> = Vec::new();
    for step in 0..steps {
        let mut value = invariant.clone();
        let mut state_ix = 0;
        for (slot, m) in scan.input_mapping.iter().enumerate() {
            match m {
                InputMapping::Full => {}
                InputMapping::State => {
                    value.insert(inputs[slot], states[state_ix]);
                    state_ix += 1;
                }
                InputMapping::Scan(info) => {
                    let chunk = info.chunk.unsigned_abs();
                    // A backward scan (negative chunk) reads the sequence from its end.
                    let at = if info.chunk < 0 {
                        steps - 1 - step
                    } else {
                        step
                    };
                    let slice = Slice::new(info.axis, at * chunk, (at + 1) * chunk);
                    let s = patch.wire_node(
                        format!("{name}.t{step}.in{slot}"),
                        slice,
                        &[taps[slot]],
                    )?;
                    value.insert(inputs[slot], s[0]);
                }
            }
        }
        for &n in &order {
            let bn = body.node(n);
            // Inputs and step-invariant nodes are wired already.
            if bn.outputs.is_empty() || value.contains_key(&OutletId::new(n, 0)) {
                continue;
            }
            let wired: TVec<OutletId> = bn.inputs.iter().map(|i| value[i]).collect();
            let outs =
                patch.wire_node(format!("{name}.t{step}.{}", bn.name), bn.op.clone(), &wired)?;
            for (k, o) in outs.into_iter().enumerate() {
                value.insert(OutletId::new(n, k), o);
            }
        }
        let outs: Vec<OutletId> = body.output_outlets()?.iter().map(|o| value[o]).collect();
        let mut next_states = Vec::new();
        for (k, m) in scan.output_mapping.iter().enumerate() {
            if m.state {
                next_states.push(outs[k]);
            }
            if m.scan.is_some() {
                scanned[k].push(outs[k]);
            }
        }
        states = next_states;
        last = outs;
    }
    for (k, m) in scan.output_mapping.iter().enumerate() {
        if let Some(slot) = m.last_value_slot {
            patch.shunt_outside(model, OutletId::new(id, slot), last[k])?;
        }
        if let Some((slot, info)) = m.scan {
            let mut parts = std::mem::take(&mut scanned[k]);
            if info.chunk < 0 {
                parts.reverse();
            }
            let whole = if parts.len() == 1 {
                parts[0]
            } else {
                patch.wire_node(
                    format!("{name}.out{slot}"),
                    TypedConcat::new(info.axis),
                    &parts,
                )?[0]
            };
            patch.shunt_outside(model, OutletId::new(id, slot), whole)?;
        }
    }
    Ok(patch)
}
