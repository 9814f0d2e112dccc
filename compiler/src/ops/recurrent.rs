//! Recurrent cells (`kernels::recurrent`): the gates of an LSTM or a GRU step.
//!
//! tract imports an ONNX `LSTM` as its matrix products and adds (lowered by the `gemm` and
//! `elementwise` families) and one fused gate op, `LstmEpilogue`, with two outputs: the
//! hidden and the cell state. Our graph's nodes have one output each, so the epilogue
//! becomes two nodes: the cell state first, then the hidden state from it. A `GRU` with
//! `linear_before_reset` ends in `GruEpilogue` (one output); without it, tract writes its
//! gates as ordinary elementwise ops.

use proc_macro2::TokenStream;
use quote::quote;
use tract_onnx::prelude::OutletId;
use tract_onnx::tract_core::ops::gru_cell::GruEpilogue;
use tract_onnx::tract_core::ops::lstm_cell::LstmEpilogue;

use super::{no_qdq, usize_lit as u, Call, Family, Inputs, Kernel};
use crate::error::Result;
use crate::import::typed::{At, TypedLowering};
use crate::ir::{Op, Values};
use crate::kernels::recurrent::{self, Cell};

/// The family's entry in the registry.
pub(crate) const FAMILY: Family = Family {
    name: "recurrent",
    onnx: &[
        "GRU (forward, one step; sigmoid/tanh)",
        "LSTM (forward, one step; sigmoid/tanh, no peepholes)",
    ],
    qdq: &[],
    lower,
    lower_qdq: no_qdq,
};

/// The recurrent family's ops.
#[derive(Clone, Debug, PartialEq)]
pub enum RecurrentOp {
    /// `[preact, c_prev]` → the new cell state.
    LstmCellState(Cell),
    /// `[preact, c]` → the new hidden state.
    LstmHidden(Cell),
    /// `[xh, rh, h_prev]` → the new hidden state of a GRU with `linear_before_reset`.
    GruHidden(Cell),
}

/// True when the recurrent family lowers this multi-output tract node.
pub(crate) fn claims(at: &At) -> bool {
    at.op::<LstmEpilogue>().is_some()
}

fn lower(cx: &mut TypedLowering, at: &At) -> Option<Result<()>> {
    if let Some(e) = at.op::<GruEpilogue>() {
        return Some(lower_gru(cx, at, e.hidden));
    }
    let e = at.op::<LstmEpilogue>()?;
    Some((|| {
        cx.check_f32_node(at)?;
        let hidden = e.hidden;
        let c_shape = cx.in_shape(at, 1)?;
        let pre_shape = cx.in_shape(at, 0)?;
        let c_len: usize = c_shape.iter().product();
        let rows = c_len / hidden.max(1);
        if hidden == 0 || rows * hidden != c_len || pre_shape.iter().product::<usize>() != 4 * c_len
        {
            return Err(at.unsupported(format!(
                "LSTM gates of shape {pre_shape:?} for a state of shape {c_shape:?} (hidden {hidden})"
            )));
        }
        let p = Cell { rows, hidden };
        let pre = cx.tensor(at, at.input(0))?;
        let c_prev = cx.tensor(at, at.input(1))?;
        // Outlet 1, the cell state, first: the hidden state reads it.
        let cell = OutletId::new(at.node.id, 1);
        let c = cx.emit_outlet(
            at,
            cell,
            Op::Recurrent(RecurrentOp::LstmCellState(p)),
            vec![pre, c_prev],
            c_shape.clone(),
            "c",
        )?;
        cx.emit_outlet(
            at,
            at.output(),
            Op::Recurrent(RecurrentOp::LstmHidden(p)),
            vec![pre, c],
            cx.shape(at, at.output())?,
            "h",
        )?;
        Ok(())
    })())
}

fn lower_gru(cx: &mut TypedLowering, at: &At, hidden: usize) -> Result<()> {
    cx.check_f32_node(at)?;
    let h_shape = cx.in_shape(at, 2)?;
    let h_len: usize = h_shape.iter().product();
    let rows = h_len / hidden.max(1);
    for i in 0..2 {
        let s = cx.in_shape(at, i)?;
        if hidden == 0 || rows * hidden != h_len || s.iter().product::<usize>() != 3 * h_len {
            return Err(at.unsupported(format!(
                "GRU gates of shape {s:?} for a state of shape {h_shape:?} (hidden {hidden})"
            )));
        }
    }
    let ins = (0..3)
        .map(|i| cx.tensor(at, at.input(i)))
        .collect::<Result<Vec<_>>>()?;
    let p = Cell { rows, hidden };
    cx.emit(at, Op::Recurrent(RecurrentOp::GruHidden(p)), ins)
}

fn params(p: &Cell) -> TokenStream {
    let (rows, hidden) = (u(p.rows), u(p.hidden));
    quote!(&::microarena::kernels::recurrent::Cell { rows: #rows, hidden: #hidden })
}

impl Kernel for RecurrentOp {
    fn name(&self) -> &'static str {
        match self {
            RecurrentOp::LstmCellState(_) => "LstmCellState",
            RecurrentOp::LstmHidden(_) => "LstmHidden",
            RecurrentOp::GruHidden(_) => "GruHidden",
        }
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let (pre, state, out) = (call.operand(0), call.operand(1), &call.out);
        call.wrap(match self {
            RecurrentOp::LstmCellState(p) => {
                let p = params(p);
                quote!(::microarena::kernels::recurrent::lstm_cell_state(#p, #pre, #state, #out);)
            }
            RecurrentOp::LstmHidden(p) => {
                let p = params(p);
                quote!(::microarena::kernels::recurrent::lstm_hidden(#p, #pre, #state, #out);)
            }
            RecurrentOp::GruHidden(p) => {
                let (p, prev) = (params(p), call.operand(2));
                quote!(::microarena::kernels::recurrent::gru_hidden(#p, #pre, #state, #prev, #out);)
            }
        })
    }

    fn run(&self, ins: &Inputs, out: &mut Values) {
        match self {
            RecurrentOp::LstmCellState(p) => {
                recurrent::lstm_cell_state(p, ins.f32(0), ins.f32(1), out.f32_mut())
            }
            RecurrentOp::LstmHidden(p) => {
                recurrent::lstm_hidden(p, ins.f32(0), ins.f32(1), out.f32_mut())
            }
            RecurrentOp::GruHidden(p) => {
                recurrent::gru_hidden(p, ins.f32(0), ins.f32(1), ins.f32(2), out.f32_mut())
            }
        }
    }
}
