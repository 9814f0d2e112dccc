//! Codegen: the planned graph as Rust items — weight statics, constants, and a `Model` whose
//! `run` is a straight line of kernel calls at constant arena offsets.
//!
//! Each node's statement comes from its op family (`crate::ops::<family>`, mirroring
//! `kernels/src/<family>.rs`): this module works out where the node's operands are
//! (arena regions at their planned offsets, weight statics) as a [`Call`] and asks the op.

use std::path::Path;

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use crate::ir::{DType, Graph, Op, TensorId, TensorKind, Values};
use crate::ops::{f32_lit, usize_array, usize_lit, Call};
use crate::place::ArenaPlan;
use crate::schedule::Schedule;
use crate::self_test::{SelfTest, DEVICE_F32_TOLERANCE};

mod helpers;
pub(crate) use helpers::{HelperCall, Helpers};

fn weight_ident(t: TensorId) -> Ident {
    format_ident!("W{}", t.0)
}

/// `Region::new(offset, len)` (f32) or `Region::i8(offset, len)` of an arena tensor.
fn region(g: &Graph, plan: &ArenaPlan, t: TensorId) -> TokenStream {
    let off = usize_lit(plan.offsets[t.0].unwrap_or(0));
    region_at(g, t, quote!(#off))
}

/// [`region`] at the byte offset `off` (a literal, or a helper function's argument).
fn region_at(g: &Graph, t: TensorId, off: TokenStream) -> TokenStream {
    let len = usize_lit(g.tensor(t).len());
    match g.tensor(t).dtype {
        DType::I8 => quote!(::microarena::Region::i8(#off, #len)),
        _ => quote!(::microarena::Region::new(#off, #len)),
    }
}

/// The weight static of `t` as a slice of its element type.
fn weight_operand(g: &Graph, t: TensorId) -> TokenStream {
    let w = weight_ident(t);
    match g.tensor(t).kind {
        // A graph input the caller's array holds: `run`'s (or `steps`') argument.
        TensorKind::Caller(k) => {
            let arg = input_arg(g, k);
            quote!(#arg)
        }
        TensorKind::WeightI8(_) => quote!(#w.i8()),
        TensorKind::WeightI32(_) => quote!(#w.i32()),
        _ => quote!(#w.f32()),
    }
}

/// The name of `run`'s argument for graph input `k` (`input` when the model has one input
/// and one output).
fn input_arg(g: &Graph, k: usize) -> Ident {
    let inputs = g.call_inputs();
    let pos = inputs.iter().position(|&i| i == k).unwrap_or(k);
    if is_single(g) {
        format_ident!("input")
    } else {
        format_ident!("input_{}", pos)
    }
}

/// Whether `run` takes one input and writes one output (then named `input`, `output`,
/// `INPUT_SHAPE`, ..., else numbered).
fn is_single(g: &Graph) -> bool {
    g.call_inputs().len() == 1 && g.call_outputs().len() == 1
}

/// The `Model` field holding carried state number `j` (see [`Graph::carry`]).
fn state_field(j: usize) -> Ident {
    format_ident!("state_{}", j)
}

/// The `Arena` method that borrows inputs of `input` type and an output of `output` type.
pub(crate) fn views_method(input: DType, output: DType) -> Ident {
    match (input, output) {
        (DType::F32, DType::I8) => format_ident!("views_f32_i8"),
        (DType::I8, DType::F32) => format_ident!("views_i8_f32"),
        (DType::I8, DType::I32) => format_ident!("views_i8_i32"),
        (DType::I32, DType::I8) => format_ident!("views_i32_i8"),
        (DType::I8, _) | (_, DType::I8) => format_ident!("views_i8"),
        _ => format_ident!("views"),
    }
}

/// Where node `v`'s operands are: its arena inputs borrowed with the output (an input
/// overwritten in place is the output itself; a concatenation input already in its slice is
/// not read), its weights from their statics.
fn call_of(g: &Graph, plan: &ArenaPlan, v: usize) -> Call {
    call_of_with(g, plan, v, None)
}

/// [`call_of`]; with `params`, for a helper function taking the arena as `arena` and every
/// view's byte offset as an argument (`o0`, `o1`, ...: their values pushed on `params`).
fn call_of_with(g: &Graph, plan: &ArenaPlan, v: usize, params: Option<&mut Vec<usize>>) -> Call {
    let node = &g.nodes[v];
    let params = std::cell::RefCell::new(params);
    // The byte offset of a view: a literal, or the next helper argument.
    let offset = |bytes: usize| -> TokenStream {
        match params.borrow_mut().as_deref_mut() {
            Some(p) => {
                let ident = format_ident!("o{}", p.len());
                p.push(bytes);
                quote!(#ident)
            }
            None => {
                let lit = usize_lit(bytes);
                quote!(#lit)
            }
        }
    };
    let arena_expr = if params.borrow().is_some() {
        quote!(arena)
    } else {
        quote!(self.arena)
    };
    let region = |g: &Graph, plan: &ArenaPlan, t: TensorId| {
        let off = offset(plan.offsets[t.0].unwrap_or(0));
        region_at(g, t, off)
    };
    let out_region = region(g, plan, node.output);
    let in_place = plan.in_place[v];
    // Arena inputs of one kernel share an element type: the first one's decides.
    let out_dtype = g.tensor(node.output).dtype;
    let in_dtype = node
        .inputs
        .iter()
        .map(|&t| g.tensor(t))
        .find(|t| t.in_arena())
        .map_or(out_dtype, |t| t.dtype);
    let views = views_method(in_dtype, out_dtype);
    let borrow = |regions: &[TokenStream], idents: &[Ident]| quote!(let ([#(#idents),*], out) = #arena_expr.#views([#(#regions),*], #out_region););
    let mut regions = Vec::new();
    let mut idents = Vec::new();
    let mut operands = Vec::new();
    let mut parts = Vec::new();
    for (pos, &t) in node.inputs.iter().enumerate() {
        let arena = g.tensor(t).in_arena();
        parts.push(if arena {
            (
                borrow(&[region(g, plan, t)], &[format_ident!("x")]),
                quote!(x),
            )
        } else {
            (borrow(&[], &[]), weight_operand(g, t))
        });
        if in_place == Some(pos) || plan.is_zero_copy(g, v, pos) {
            operands.push(None);
        } else if arena {
            let ident = format_ident!("x{}", regions.len());
            regions.push(region(g, plan, t));
            operands.push(Some(quote!(#ident)));
            idents.push(ident);
        } else {
            operands.push(Some(weight_operand(g, t)));
        }
    }
    let (borrow, scratch) = match node.scratch {
        Some(s) => {
            let off = offset(plan.offsets[s.0].unwrap_or(0));
            let len = usize_lit(g.tensor(s).bytes() / 2);
            (
                quote!(let ([#(#idents),*], out, scratch) = #arena_expr.views_i8_scratch(
                    [#(#regions),*], #out_region, ::microarena::Region::i16(#off, #len));),
                Some(quote!(scratch)),
            )
        }
        None => (borrow(&regions, &idents), None),
    };
    Call {
        operands,
        borrow,
        parts,
        out: quote!(out),
        in_place,
        scratch,
        offsets: node
            .inputs
            .iter()
            .map(|&t| {
                g.tensor(t)
                    .in_arena()
                    .then(|| plan.offsets[t.0].unwrap_or(0))
            })
            .collect(),
        out_offset: plan.offsets[node.output.0].unwrap_or(0),
        scratch_offset: node.scratch.map(|s| plan.offsets[s.0].unwrap_or(0)),
        depthwise_shared: crate::ops::conv::depthwise_shared(g),
    }
}

/// The statement running one node.
fn node_call(g: &Graph, plan: &ArenaPlan, v: usize) -> TokenStream {
    let node = &g.nodes[v];
    match node.op.kernel() {
        Some(kernel) => kernel.emit(&call_of(g, plan, v)),
        // `compile` refuses graphs with opaque nodes at import; this is a second fence.
        None => {
            let what = match &node.op {
                Op::Opaque { what } => what.as_str(),
                _ => "?",
            };
            let msg = format!(
                "microarena: node `{}` ({}) has no kernel (tract op `{what}`)",
                node.name, node.op_type
            );
            quote!(::core::compile_error!(#msg);)
        }
    }
}

/// The statement running node `v` in `run`: `Err`, the body of a call of a helper function
/// (see [`Helpers::shared_calls`]) shared by every node whose code differs only in its views'
/// arena offsets (a recurrent layer's steps, unrolled over time, run the same kernels on the
/// same weights at other offsets), its geometry or its layer's constant data (layers of one
/// shape); `Ok`, the node's code inline where it reads the caller's arrays or the model's own
/// fields (`self`: carried state, streamed stages).
fn node_statement(g: &Graph, plan: &ArenaPlan, v: usize) -> Result<TokenStream, HelperCall> {
    let node = &g.nodes[v];
    let reads_caller = node
        .inputs
        .iter()
        .any(|&t| matches!(g.tensor(t).kind, TensorKind::Caller(_)));
    let Some(kernel) = node.op.kernel().filter(|_| !reads_caller) else {
        return Ok(node_call(g, plan, v));
    };
    let mut offsets = Vec::new();
    let body = kernel.emit(&call_of_with(g, plan, v, Some(&mut offsets)));
    if names_self(body.clone()) {
        return Ok(node_call(g, plan, v));
    }
    Err(HelperCall { body, offsets })
}

/// True when `code` names `self`.
fn names_self(code: TokenStream) -> bool {
    code.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == "self",
        proc_macro2::TokenTree::Group(g) => names_self(g.stream()),
        _ => false,
    })
}

/// `<WHAT>_SCALE` and `<WHAT>_ZERO_POINT` of a quantized graph input or output (the int8
/// values behind a float interface, or the int values the caller passes): what firmware
/// needs to quantize its own data or to read a result in steps. A uint8 interface gets the
/// uint8 zero point.
fn quant_consts(
    quant: Option<crate::ir::Quant>,
    single: bool,
    what: &str,
    i: usize,
    unsigned: bool,
) -> Vec<TokenStream> {
    let Some(q) = quant else {
        return Vec::new();
    };
    let (scale_id, zero_id) = if single {
        (
            format_ident!("{}_SCALE", what),
            format_ident!("{}_ZERO_POINT", what),
        )
    } else {
        (
            format_ident!("{}_{}_SCALE", what, i),
            format_ident!("{}_{}_ZERO_POINT", what, i),
        )
    };
    let scale = f32_lit(q.scale);
    let zero = if unsigned { q.zero + 128 } else { q.zero };
    vec![
        quote!(pub const #scale_id: f32 = #scale;),
        quote!(pub const #zero_id: i32 = #zero;),
    ]
}

/// The schedule and the arena layout as Markdown tables, for the generated `Model`'s rustdoc:
/// `cargo doc` on a firmware crate shows how its RAM is used.
fn memory_tables(g: &Graph, schedule: &Schedule, plan: &ArenaPlan) -> String {
    use std::fmt::Write;
    let mut d = String::new();
    let _ = writeln!(
        d,
        "# Memory\n\nArena: {} bytes; peak live bytes {} (alignment {}).\n",
        plan.arena_bytes,
        plan.step_live_bytes.iter().max().copied().unwrap_or(0),
        plan.alignment
    );
    for t in &g.tensors {
        if let TensorKind::Caller(_) = t.kind {
            let _ = writeln!(
                d,
                "Graph input `{}` ({} bytes) is read by a streamed stage where `run`'s caller \
                 passes it: not in the arena.\n",
                t.name.replace('|', "\\|"),
                t.bytes()
            );
        }
    }
    let _ = writeln!(d, "## Schedule\n\n| step | ONNX node | op | live bytes |");
    let _ = writeln!(d, "|---:|---|---|---:|");
    for (k, n) in schedule.order.iter().enumerate() {
        let node = &g.nodes[n.0];
        let live = plan.step_live_bytes.get(k).copied().unwrap_or(0);
        let how = if plan.in_place[n.0].is_some() {
            " (in place)"
        } else {
            ""
        };
        let _ = writeln!(
            d,
            "| {} | `{}` | {}{how} | {live} |",
            k + 1,
            node.name.replace('|', "\\|"),
            node.op.family()
        );
    }
    let _ = writeln!(
        d,
        "\n## Arena\n\n| tensor | shape | type | bytes | offset | live in steps |"
    );
    let _ = writeln!(d, "|---|---|---|---:|---:|---|");
    for (i, t) in g.tensors.iter().enumerate() {
        let (Some(offset), Some(life)) = (plan.offsets[i], plan.lifetimes[i]) else {
            continue;
        };
        let _ = writeln!(
            d,
            "| `{}` | `{:?}` | {:?} | {} | {offset} | {}–{} |",
            t.name.replace('|', "\\|"),
            t.shape,
            t.dtype,
            t.bytes(),
            life.first + 1,
            life.last + 1
        );
    }
    d
}

/// A `static` of constant bytes in flash (`Weights`: 16-aligned, viewed as f32/i8/i32).
fn bytes_static(ident: &Ident, bytes: &[u8], doc: &str) -> TokenStream {
    let n = usize_lit(bytes.len());
    let lit = Literal::byte_string(bytes);
    quote! {
        #[doc = #doc]
        static #ident: ::microarena::Weights<#n> = ::microarena::Weights(*#lit);
    }
}

/// The embedded input and expected output of the self-test (statics in flash, as the arena
/// holds them) and `Model::self_test`.
fn self_test_code(g: &Graph, plan: &ArenaPlan, st: &SelfTest) -> (TokenStream, TokenStream) {
    let blob = |ident: &Ident, v: &Values, doc: String| bytes_static(ident, &v.to_bytes(), &doc);
    let mut items = Vec::new();
    let mut load = Vec::new();
    let mut caller_args = Vec::new();
    let mut compare = Vec::new();
    for (k, (&t, v)) in g.inputs.iter().zip(&st.inputs).enumerate() {
        let ident = format_ident!("SELF_TEST_INPUT_{}", k);
        items.push(blob(
            &ident,
            v,
            format!(
                "Self-test input `{}` (as the arena holds it).",
                g.tensor(t).name
            ),
        ));
        if matches!(g.tensor(t).kind, TensorKind::Caller(_)) {
            // Read where the caller's array would be: the stage reads the embedded input
            // (as the arena holds it) through the same `RowSource` interface.
            caller_args.push(match v {
                Values::F32(_) => quote!(#ident.f32()),
                _ => quote!(#ident.i8()),
            });
            continue;
        }
        let r = region(g, plan, t);
        load.push(match v {
            Values::F32(_) => quote!(self.arena.f32_mut(#r).copy_from_slice(#ident.f32());),
            _ => quote!(self.arena.i8_mut(#r).copy_from_slice(#ident.i8());),
        });
    }
    let tolerance = f32_lit(DEVICE_F32_TOLERANCE);
    for (k, (&t, v)) in g.outputs.iter().zip(&st.outputs).enumerate() {
        let ident = format_ident!("SELF_TEST_OUTPUT_{}", k);
        items.push(blob(
            &ident,
            v,
            format!(
                "Self-test expected output `{}` (as the arena holds it).",
                g.tensor(t).name
            ),
        ));
        let r = region(g, plan, t);
        compare.push(match v {
            Values::F32(_) => quote!(
                ::microarena::self_test::matches_f32(self.arena.f32(#r), #ident.f32(), #tolerance)
            ),
            _ => quote!(::microarena::self_test::matches_i8(self.arena.i8(#r), #ident.i8())),
        });
    }
    let checked = if st.checked_against_tract {
        " (and tract confirmed, running the same ONNX file)"
    } else {
        ""
    };
    let doc = format!(
        "Re-runs the plan on an input embedded at build time and compares the result with the \
         one the host computed at build time with the same kernels{checked}: int8 outputs \
         exactly, f32 outputs within {DEVICE_F32_TOLERANCE:e} of the output's largest \
         magnitude (at least 1).\n\nReturns `false` when the device computes something else: \
         corrupted weights in flash, a miscompiled kernel, a misconfigured FPU. Overwrites \
         the arena, like [`Model::run`]; no other memory is used."
    );
    let f = quote! {
        #[doc = #doc]
        pub fn self_test(&mut self) -> bool {
            #(#load)*
            self.steps(#(#caller_args),*);
            true #(& #compare)*
        }
    };
    (quote!(#(#items)*), f)
}

fn shape_const(name: &Ident, shape: &[usize]) -> TokenStream {
    let rank = shape.len();
    let dims = usize_array(shape);
    quote!(pub const #name: [usize; #rank] = #dims;)
}

/// The statement copying graph output `o` (arena region `r`) into `dest`, a `&mut` array
/// of the interface's element type (dequantized, or shifted to uint8, as the interface is).
fn output_copy(g: &Graph, o: usize, r: &TokenStream, dest: &Ident) -> TokenStream {
    if let Some(q) = g.output_quant(o) {
        let (scale, zero) = (f32_lit(q.scale), q.zero);
        quote!(::microarena::kernels::quant::dequantize(
            &::microarena::kernels::quant::Dequantize { scale: #scale, zero: #zero },
            self.arena.i8(#r), #dest,
        );)
    } else if g.output_is_unsigned(o) {
        quote!(
            for (d, s) in #dest.iter_mut().zip(self.arena.i8(#r)) {
                *d = (*s as u8) ^ 0x80;
            }
        )
    } else if g.tensor(g.outputs[o]).dtype == DType::I8 {
        quote!(#dest.copy_from_slice(self.arena.i8(#r));)
    } else {
        quote!(#dest.copy_from_slice(self.arena.f32(#r));)
    }
}

/// The items of the generated module.
///
/// `model_path`, when given, is `include_bytes!`-ed so that Cargo rebuilds when the model
/// file changes.
pub fn generate(
    g: &Graph,
    schedule: &Schedule,
    plan: &ArenaPlan,
    model_path: Option<&Path>,
    self_test: Option<&SelfTest>,
) -> TokenStream {
    let arena_bytes = usize_lit(plan.arena_bytes);
    let mut used = vec![false; g.tensors.len()];
    for n in &g.nodes {
        for t in &n.inputs {
            used[t.0] = true;
        }
    }
    let weights = g
        .tensors
        .iter()
        .enumerate()
        .filter(|(i, _)| used[*i])
        .filter_map(|(i, t)| {
            let (bytes, ty): (Vec<u8>, &str) = match &t.kind {
                TensorKind::Weight(d) => (d.iter().flat_map(|v| v.to_le_bytes()).collect(), "f32"),
                TensorKind::WeightI8(d) => (d.iter().map(|&v| v as u8).collect(), "i8"),
                TensorKind::WeightI32(d) => {
                    (d.iter().flat_map(|v| v.to_le_bytes()).collect(), "i32")
                }
                _ => return None,
            };
            let doc = format!("`{}`: {:?} {ty}", t.name, t.shape);
            Some(bytes_static(&weight_ident(TensorId(i)), &bytes, &doc))
        });

    let single = is_single(g);
    let mut consts = Vec::new();
    let mut params = Vec::new();
    let mut copy_in = Vec::new();
    let mut copy_out = Vec::new();
    // Graph inputs read where the caller passes them, as `steps` takes them.
    let mut steps_params = Vec::new();
    let mut steps_args = Vec::new();
    // Carried state: per pair, the `Model` field, its element type and length.
    let mut state_fields = Vec::new();
    let mut state_bytes = 0usize;
    let carried_input = |i: usize| g.carry.iter().position(|&(_, j)| j == i);
    let carried_output = |o: usize| g.carry.iter().position(|&(p, _)| p == o);
    for (j, &(_, i)) in g.carry.iter().enumerate() {
        let t = g.tensor(g.inputs[i]);
        let (ty, zero, size) = match crate::carry::input_type(g, i) {
            "u8" => (quote!(u8), quote!(0), 1),
            "i8" => (quote!(i8), quote!(0), 1),
            _ => (quote!(f32), quote!(0.0), 4),
        };
        state_bytes += size * t.len();
        state_fields.push((state_field(j), ty, zero, usize_lit(t.len())));
    }
    let call_inputs = g.call_inputs();
    let call_outputs = g.call_outputs();
    for (i, &t) in g.inputs.iter().enumerate() {
        let pos = call_inputs.iter().position(|&k| k == i);
        let arg = match (carried_input(i), pos) {
            (Some(j), _) => state_field(j),
            (None, _) => input_arg(g, i),
        };
        let (shape_id, len_id) = match pos {
            None => {
                let j = carried_input(i).unwrap_or(i);
                (
                    format_ident!("STATE_{}_SHAPE", j),
                    format_ident!("STATE_{}_LEN", j),
                )
            }
            Some(_) if single => (format_ident!("INPUT_SHAPE"), format_ident!("INPUT_LEN")),
            Some(p) => (
                format_ident!("INPUT_{}_SHAPE", p),
                format_ident!("INPUT_{}_LEN", p),
            ),
        };
        consts.push(shape_const(&shape_id, &g.input_shape(i)));
        let len = usize_lit(g.tensor(t).len());
        consts.push(quote!(pub const #len_id: usize = #len;));
        let quant = g.input_quant(i).or(g.tensor(t).quant);
        // A channels-last input: channels and pixels per image of the NCHW tensor.
        let channels_last = g.input_is_channels_last(i).then(|| {
            let s = &g.tensor(t).shape;
            (usize_lit(s[1]), usize_lit(s[2] * s[3]))
        });
        match (pos, carried_input(i)) {
            (Some(p), _) => consts.extend(quant_consts(
                quant,
                single,
                "INPUT",
                p,
                g.input_is_unsigned(i),
            )),
            (None, Some(j)) => consts.extend(quant_consts(
                quant,
                false,
                "STATE",
                j,
                g.input_is_unsigned(i),
            )),
            (None, None) => {}
        }
        if matches!(g.tensor(t).kind, TensorKind::Caller(_)) {
            // A streamed stage reads it where it is, no copy: as a `RowSource` of the
            // arena's element type (quantizing the rows it reads for a float interface).
            let stream = quote!(::microarena::kernels::stream);
            let (ty, elem, source) = match (g.input_quant(i), g.tensor(t).dtype) {
                (Some(q), _) => {
                    let (scale, zero) = (f32_lit(q.scale), q.zero);
                    (
                        quote!(f32),
                        quote!(i8),
                        quote!(#stream::QuantizedRows {
                            values: &#arg[..],
                            quantize: ::microarena::kernels::quant::Quantize {
                                scale: #scale, zero: #zero,
                            },
                        }),
                    )
                }
                (None, dtype) => {
                    let ty = if dtype == DType::I8 {
                        quote!(i8)
                    } else {
                        quote!(f32)
                    };
                    let source = match &channels_last {
                        Some((c, plane)) => quote!(#stream::ChannelsLast {
                            values: &#arg[..], channels: #c, plane: #plane,
                        }),
                        None => quote!(&#arg[..]),
                    };
                    (ty.clone(), ty, source)
                }
            };
            params.push(quote!(#arg: &[#ty; #len_id]));
            copy_in.push(quote!(let #arg = #source;));
            steps_params.push(quote!(#arg: impl #stream::RowSource<#elem>));
            steps_args.push(quote!(#arg));
            continue;
        }
        let r = region(g, plan, t);
        if pos.is_some() {
            params.push(
                match (g.input_quant(i), g.input_is_unsigned(i), g.tensor(t).dtype) {
                    (Some(_), _, _) => quote!(#arg: &[f32; #len_id]),
                    (None, true, _) => quote!(#arg: &[u8; #len_id]),
                    (None, false, DType::I8) => quote!(#arg: &[i8; #len_id]),
                    _ => quote!(#arg: &[f32; #len_id]),
                },
            );
        } else {
            copy_in.push(quote!(let #arg = &self.#arg;));
        }
        if let Some(q) = g.input_quant(i) {
            let (scale, zero) = (f32_lit(q.scale), q.zero);
            copy_in.push(quote!(::microarena::kernels::quant::quantize(
                &::microarena::kernels::quant::Quantize { scale: #scale, zero: #zero },
                #arg, self.arena.i8_mut(#r),
            );));
        } else if g.input_is_unsigned(i) {
            // uint8 at the interface, int8 in the arena: the same reals with zero points
            // 128 apart, so flipping the top bit converts.
            copy_in.push(quote!(
                for (d, s) in self.arena.i8_mut(#r).iter_mut().zip(#arg.iter()) {
                    *d = (*s ^ 0x80) as i8;
                }
            ));
        } else if let Some((c, plane)) = &channels_last {
            let view = if g.tensor(t).dtype == DType::I8 {
                quote!(self.arena.i8_mut(#r))
            } else {
                quote!(self.arena.f32_mut(#r))
            };
            copy_in.push(quote!(
                ::microarena::kernels::shape::channels_last_to_first(#arg, #view, #c, #plane);
            ));
        } else if g.tensor(t).dtype == DType::I8 {
            copy_in.push(quote!(self.arena.i8_mut(#r).copy_from_slice(#arg);));
        } else {
            copy_in.push(quote!(self.arena.f32_mut(#r).copy_from_slice(#arg);));
        }
    }
    for (i, &t) in g.outputs.iter().enumerate() {
        let r = region(g, plan, t);
        if let Some(j) = carried_output(i) {
            // The next call's state, into the `Model`'s field.
            let field = state_field(j);
            copy_out.push(quote!(let #field = &mut self.#field;));
            copy_out.push(output_copy(g, i, &r, &field));
            continue;
        }
        let pos = call_outputs.iter().position(|&k| k == i).unwrap_or(i);
        let (shape_id, len_id, arg) = if single {
            (
                format_ident!("OUTPUT_SHAPE"),
                format_ident!("OUTPUT_LEN"),
                format_ident!("output"),
            )
        } else {
            (
                format_ident!("OUTPUT_{}_SHAPE", pos),
                format_ident!("OUTPUT_{}_LEN", pos),
                format_ident!("output_{}", pos),
            )
        };
        consts.push(shape_const(&shape_id, &g.output_shapes[i]));
        let len = usize_lit(g.tensor(t).len());
        consts.push(quote!(pub const #len_id: usize = #len;));
        let quant = g.output_quant(i).or(g.tensor(t).quant);
        consts.extend(quant_consts(
            quant,
            single,
            "OUTPUT",
            pos,
            g.output_is_unsigned(i),
        ));
        params.push(
            match (
                g.output_quant(i),
                g.output_is_unsigned(i),
                g.tensor(t).dtype,
            ) {
                (Some(_), _, _) => quote!(#arg: &mut [f32; #len_id]),
                (None, true, _) => quote!(#arg: &mut [u8; #len_id]),
                (None, false, DType::I8) => quote!(#arg: &mut [i8; #len_id]),
                _ => quote!(#arg: &mut [f32; #len_id]),
            },
        );
        copy_out.push(output_copy(g, i, &r, &arg));
    }
    let statements: Vec<Result<TokenStream, HelperCall>> = schedule
        .order
        .iter()
        .map(|n| node_statement(g, plan, n.0))
        .collect();
    let shared: Vec<HelperCall> = statements
        .iter()
        .filter_map(|s| s.as_ref().err().cloned())
        .collect();
    let mut helpers = Helpers::default();
    let mut shared = helpers
        .shared_calls("node", &shared, quote!(self.arena))
        .into_iter();
    let calls: Vec<TokenStream> = statements
        .into_iter()
        .map(|s| s.unwrap_or_else(|_| shared.next().expect("a call per helper body")))
        .collect();
    let helpers = helpers.definitions();
    // With a self-test the steps are one private method that `run` and `self_test` share.
    let (body, self_test_items, self_test_fn) = match self_test {
        Some(st) => {
            let (items, f) = self_test_code(g, plan, st);
            (quote!(self.steps(#(#steps_args),*);), items, f)
        }
        None => (quote!(#(#calls)*), quote!(), quote!()),
    };
    let steps_fn = self_test.map(|_| {
        quote! {
            #[allow(clippy::all, clippy::pedantic, unused_variables)]
            fn steps(&mut self, #(#steps_params),*) {
                #(#calls)*
            }
        }
    });
    let track = model_path.and_then(|p| p.to_str()).map(|p| {
        quote!(
            const _: &[u8] = include_bytes!(#p);
        )
    });
    let run_doc = if single {
        "Runs the model on `input`, writing `output`. Nothing can fail at run time: every shape and offset was checked at compile time."
    } else {
        "Runs the model: one argument per graph input (in ONNX order), then one per graph output."
    };
    let state_decls = state_fields
        .iter()
        .map(|(f, ty, _, n)| quote!(#f: [#ty; #n],));
    let state_inits: Vec<TokenStream> = state_fields
        .iter()
        .map(|(f, _, zero, n)| quote!(#f: [#zero; #n],))
        .collect();
    let state_resets = state_fields
        .iter()
        .map(|(f, _, zero, n)| quote!(self.#f = [#zero; #n];));
    let carried_doc = if g.carry.is_empty() {
        String::new()
    } else {
        let pairs: Vec<String> = g
            .carry
            .iter()
            .map(|&(o, i)| format!("`{}` → `{}`", g.output_name(o), g.tensor(g.inputs[i]).name))
            .collect();
        format!(
            " The model carries state from call to call ({}): each call starts from the \
             state the previous one left, [`Model::new`] and [`Model::reset`] zero it.",
            pairs.join(", ")
        )
    };
    let run_doc = format!("{run_doc}{carried_doc}");
    let state_bytes = usize_lit(state_bytes);
    let steps = usize_lit(schedule.len());
    let macs = proc_macro2::Literal::u64_unsuffixed(g.macs());
    let weight_bytes = usize_lit(g.weight_bytes());
    let memory_doc = memory_tables(g, schedule, plan);
    quote! {
        #track

        #helpers

        /// Bytes of the activation arena each [`Model`] owns.
        pub const ARENA_BYTES: usize = #arena_bytes;
        /// Bytes of carried state each [`Model`] keeps between calls, outside the arena
        /// (graph outputs that are the next call's inputs, e.g. a recurrent layer's `hN` →
        /// `h`); 0 when it carries none. The RAM of one model is `ARENA_BYTES + STATE_BYTES`.
        pub const STATE_BYTES: usize = #state_bytes;
        /// Number of kernel steps in the schedule.
        pub const STEPS: usize = #steps;
        /// Multiply-accumulates of one inference: every tap of every convolution and matrix
        /// product (as MLPerf Tiny counts them).
        pub const MACS: u64 = #macs;
        /// Bytes of the weights in flash as the kernels read them (packed and padded; int8
        /// convolution weights the tiled kernels widen to 16 bits count twice). The code and
        /// the requantisation tables are not included.
        pub const WEIGHT_BYTES: usize = #weight_bytes;
        #(#[allow(missing_docs)] #consts)*

        #(#weights)*

        #self_test_items

        /// The compiled network with its own activation arena (no heap, no global state).
        ///
        #[doc = #memory_doc]
        pub struct Model {
            arena: ::microarena::Arena<ARENA_BYTES>,
            #(#state_decls)*
        }

        impl ::core::default::Default for Model {
            fn default() -> Self {
                Self::new()
            }
        }

        impl Model {
            /// A model with a zeroed arena; `const`, so it can live in a `static`.
            pub const fn new() -> Self {
                Model { arena: ::microarena::Arena::new(), #(#state_inits)* }
            }

            /// Zeroes the carried state (see [`STATE_BYTES`]): the next call starts afresh,
            /// as after [`Model::new`]. Nothing to do for a model that carries none.
            pub fn reset(&mut self) {
                #(#state_resets)*
            }

            #[doc = #run_doc]
            #[allow(clippy::all, clippy::pedantic, unused_variables)]
            pub fn run(&mut self, #(#params),*) {
                #(#copy_in)*
                #body
                #(#copy_out)*
            }

            #steps_fn

            #self_test_fn
        }
    }
}
