//! Streamed stages: a region of row-local ops run band by band, its intermediate feature
//! maps held only as windows of rows (mirrors `kernels/src/stream.rs`).
//!
//! `crate::plan::stream` chooses the region and works out the program: which op computes
//! which output rows when, with which band geometry, and the row copies that keep every
//! window in the layout the op's ordinary kernel reads. This module holds that program
//! ([`StreamOp`]) as one op of the graph, emits it (a table of steps run by one loop, or
//! straight-line calls for a short program; the repeating middle a loop either way) and runs
//! it on the host.
//!
//! Every band call is an ordinary op of another family with fewer rows (see
//! [`Op::band`](crate::ir::Op::band)): the same kernels, the same per-element arithmetic, so
//! a streamed plan computes bit for bit what the unstreamed one does.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{usize_lit, Call, Inputs, Kernel};
use crate::codegen::Helpers;

mod program;
use crate::codegen::HelperCall;
use program::{program_table, straight_line, Action, TABLE_MIN_STEPS};

/// A step emitted but for its band helper's call, which waits until every band call of the
/// stage is known (see [`Helpers::shared_calls`]).
enum Pending {
    Done(Action),
    /// Index in the stage's list of [`HelperCall`]s.
    Band(usize),
}
use crate::ir::{DType, Node, Op, Values};
use crate::kernels::stream::{copy_rows, RowCopy};

/// A span of the stage's scratch (byte offset from the scratch's start, element count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buf {
    /// Byte offset within the stage's scratch.
    pub offset: usize,
    /// Elements.
    pub len: usize,
    /// Element type.
    pub dtype: DType,
}

impl Buf {
    /// Bytes it spans.
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size()
    }
}

/// What a row copy's byte offsets are relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The stage's scratch.
    Scratch,
    /// The stage node's input `k` (a whole tensor in the arena).
    Input(usize),
    /// The stage node's input `k`, a graph input read where the caller passes it (never in
    /// the arena), through a `RowSource` of the window's element type (the caller's array,
    /// quantized on the way for a float interface: `run` sets that up). Only ever a copy's
    /// source.
    Caller(usize, DType),
    /// The stage node's output (a whole tensor in the arena).
    Output,
}

/// An operand of a band call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// Rows in the stage's scratch.
    Buf(Buf),
    /// The stage node's input `k` (a weight).
    Input(usize),
}

/// One step of a stage's program.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Whole rows moved per channel (offsets relative to `from` and `to`).
    Copy {
        /// Where the rows are.
        from: Place,
        /// Where they go.
        to: Place,
        /// Which rows (byte offsets relative to the places).
        rows: RowCopy,
    },
    /// An op computing one band of output rows.
    Call {
        /// Index of the op in [`StreamOp::nodes`].
        node: usize,
        /// The op with the band's geometry.
        op: Box<Op>,
        /// Per input of the original node: where the band reads it (`None`: absent bias).
        inputs: Vec<Option<Operand>>,
        /// Where the band's rows go (`[channels][rows][width]`).
        output: Buf,
        /// The kernel's scratch, for ops that have one.
        scratch: Option<Buf>,
    },
}

/// Steps run `repeat` times in a row.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// How many times.
    pub repeat: usize,
    /// What.
    pub steps: Vec<Step>,
}

/// A buffer of the stage's scratch, for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageBuffer {
    /// What it holds (`conv1 → conv2 (rows)`, `band`, `kernel scratch`).
    pub what: String,
    /// Byte offset within the scratch.
    pub offset: usize,
    /// Bytes.
    pub bytes: usize,
}

/// A streamed stage as one op: `[external inputs and weights ...]` → the stage's output,
/// written whole, with a scratch ([`crate::ir::Node::scratch`]) holding every window.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamOp {
    /// The ops of the region, as they were (inputs and outputs are graph tensors; only the
    /// stage's inputs and output stay in the arena).
    pub nodes: Vec<Node>,
    /// The program.
    pub program: Vec<Block>,
    /// Bytes of scratch the program uses.
    pub scratch_bytes: usize,
    /// The scratch's buffers.
    pub buffers: Vec<StageBuffer>,
    /// Output rows computed per pass of the loop.
    pub band_rows: usize,
}

impl StreamOp {
    /// Band calls the program makes when it runs (loops unrolled).
    pub fn calls(&self) -> usize {
        self.program
            .iter()
            .map(|b| {
                b.repeat
                    * b.steps
                        .iter()
                        .filter(|s| matches!(s, Step::Call { .. }))
                        .count()
            })
            .sum()
    }

    /// Instructions the stage costs on a Cortex-M4 beyond its ops run whole, estimated:
    /// what every band call but one per op pays again and every row copy (about 12 instructions a block,
    /// one per channel, and one per 3 bytes: whole-word blocks move four words per
    /// `LDM`/`STM`; blocks of 4 to 12 bytes, a window's kept rows, about 10; others about 16
    /// and one a byte, by unaligned words and bytes). Per call:
    /// the int8 depthwise kernel's per-channel set-up (its input rows copied into the padded
    /// plane, the channel's constants) about 150 instructions a channel, or, with rows of 4 to
    /// 8 bytes (its channel loop in assembly), 55 and 6 a kept row (fitted on DS-CNN's bands
    /// of 2 to 8 rows: estimated 1.08 to 1.24 times the measured overheads); a dense int8 convolution about 400, plus a pass over its
    /// weights when the band has an odd number of pixels (they go in pairs); the tiled f32
    /// one (register tiles in assembly since issue 37) about 600 and a quarter of an
    /// instruction a weight (refitted on streamed f32 networks against their unstreamed plans
    /// on the Cortex-M4: ResNet-8 +594 k instructions, `residual` +295 k, `wide_stem` +69 k,
    /// `chain` +41 k, a Keras-style CNN +49 k; 4 a weight had estimated ResNet-8's 1.97 M and
    /// the Keras CNN's 1.12 M); the f32 reference
    /// convolution (depthwise f32 among others) sets up each tap's valid rows and columns,
    /// about 80 instructions a weight, the f32 matrix product each weight's row loop, about
    /// 20; other ops about 150 (a call, a loop per channel). The constants are fitted to the
    /// `kernels` firmware binary (band shapes, one output row, against whole planes) and the
    /// `mlperf` binary (ResNet-8 and MobileNetV1 streamed, against unstreamed); the planner
    /// keeps streaming within a share of the model's cost with them.
    pub fn overhead_estimate(&self) -> u64 {
        let call = |op: &Op, len: usize, kept: usize| -> u64 {
            use super::conv::ConvOp;
            let plane = |w: &crate::kernels::Window2d| (w.out_h * w.out_w).max(1);
            let weights = |g: &crate::kernels::conv::Conv2d| {
                (g.out_c * g.in_c / g.groups.max(1) * g.window.k_h * g.window.k_w) as u64
            };
            match op {
                Op::Conv(ConvOp::F32(g)) if crate::kernels::conv::depthwise_3x3_f32(g) => {
                    80 * g.out_c as u64
                }
                Op::Conv(ConvOp::F32(g)) => 80 * weights(g),
                Op::Conv(ConvOp::F32Tiled(g)) => 600 + weights(g) / 4,
                Op::Conv(ConvOp::I8Depthwise(p, _)) if depthwise_short_rows(p) => {
                    // The channel loop in assembly: about 55 instructions a channel and 6 a
                    // kept row copied into the padded plane (fitted on DS-CNN's bands).
                    (55 + 6 * kept as u64) * (len / plane(&p.geom.window)) as u64
                }
                Op::Conv(c) if c.geometry().groups > 1 => {
                    150 * (len / plane(&c.geometry().window)) as u64
                }
                Op::Conv(c) => {
                    // Pixels go in pairs: an odd count computes one more (a pass over every
                    // weight); otherwise a call costs what the rows cost whole.
                    let pixels = len / c.geometry().out_c.max(1);
                    400 + if pixels % 2 == 1 {
                        weights(c.geometry())
                    } else {
                        weights(c.geometry()) / 16
                    }
                }
                Op::Gemm(super::gemm::GemmOp::F32(p)) => {
                    // The one to three pixels past the 4×4 tiles run in tiles of four
                    // channels by two and by one.
                    let tail = [0, 2, 1, 3][p.m % 4];
                    100 + tail * (p.n * p.k) as u64
                }
                Op::Pool(p) => 150 + 20 * (len / plane(&p.geometry().window)) as u64,
                _ => 150,
            }
        };
        // Each op run whole pays its set-up once too: the cheapest of its calls is not
        // overhead.
        let mut once = vec![u64::MAX; self.nodes.len()];
        let total: u64 = self
            .program
            .iter()
            .map(|b| {
                b.repeat as u64
                    * b.steps
                        .iter()
                        .map(|s| match s {
                            Step::Copy { rows, .. } => {
                                (rows.channels
                                    * if rows.whole_words() {
                                        12 + rows.bytes / 3
                                    } else if (4..=12).contains(&rows.bytes) {
                                        // Short blocks (kept rows saved apart): two or three
                                        // words each.
                                        10
                                    } else {
                                        16 + rows.bytes
                                    }) as u64
                            }
                            Step::Call {
                                node,
                                op,
                                output,
                                inputs,
                                ..
                            } => {
                                // A split window's kept rows (input 3 of a depthwise band).
                                let kept = match (&**op, inputs.get(3)) {
                                    (Op::Conv(c), Some(Some(Operand::Buf(b)))) => {
                                        let g = c.geometry();
                                        b.len / (g.in_c * g.window.in_w).max(1)
                                    }
                                    _ => 0,
                                };
                                let mut c = call(op, output.len, kept);
                                // A split f32 depthwise window: each channel's plane joined
                                // in the scratch, then a one-channel call.
                                if let (Op::Conv(super::conv::ConvOp::F32(g)), Some(Some(_))) =
                                    (&**op, inputs.get(3))
                                {
                                    let plane = g.window.in_h * g.window.in_w;
                                    c += (g.out_c * (100 + plane / 2)) as u64;
                                }
                                if let Some(o) = once.get_mut(*node) {
                                    *o = (*o).min(c);
                                }
                                c
                            }
                        })
                        .sum::<u64>()
            })
            .sum();
        let whole: u64 = once.iter().filter(|&&c| c != u64::MAX).sum();
        total.saturating_sub(whole)
    }

    /// Bytes the program's row copies move when it runs.
    pub fn copied_bytes(&self) -> usize {
        self.program
            .iter()
            .map(|b| {
                b.repeat
                    * b.steps
                        .iter()
                        .map(|s| match s {
                            Step::Copy { rows, .. } => rows.channels * rows.bytes,
                            Step::Call { .. } => 0,
                        })
                        .sum::<usize>()
            })
            .sum()
    }
}

/// True when the int8 depthwise kernel runs `p`'s whole channel loop in assembly on the
/// Cortex-M4 (3×3 windows in two-pixel steps over rows of 4 to 8 bytes, see
/// `kernels::conv::DW_ROWS_SHORT`): its per-channel cost a band call pays again is a third
/// of the general loop's.
fn depthwise_short_rows(p: &crate::kernels::conv::ConvI8) -> bool {
    use crate::kernels::conv::{depthwise_variant, DW_ROWS_LONG, DW_ROWS_SHORT};
    let v = depthwise_variant(p);
    v & DW_ROWS_LONG == DW_ROWS_SHORT && matches!(v >> 2 & 3, 1 | 2)
}

/// `Region::..(offset, len)` of `len` elements of `dtype` at byte `offset` of the arena.
fn region(offset: usize, len: usize, dtype: DType) -> TokenStream {
    let off = usize_lit(offset);
    region_at(quote!(#off), len, dtype)
}

/// [`region`] at the byte offset `off` (a literal, or a band helper's parameter).
fn region_at(off: TokenStream, len: usize, dtype: DType) -> TokenStream {
    let len = usize_lit(len);
    match dtype {
        DType::I8 => quote!(::microarena::Region::i8(#off, #len)),
        DType::I16 => quote!(::microarena::Region::i16(#off, #len)),
        DType::I32 => quote!(::microarena::Region::i32(#off, #len)),
        _ => quote!(::microarena::Region::new(#off, #len)),
    }
}

impl StreamOp {
    /// Byte offset of `place` in the arena, given the stage node's operand offsets.
    fn base(place: Place, call: &Call) -> usize {
        match place {
            Place::Scratch => call.scratch_offset.expect("a stage has scratch"),
            Place::Input(k) => call.offsets[k].expect("a copied input is in the arena"),
            Place::Caller(..) => 0,
            Place::Output => call.out_offset,
        }
    }

    fn emit_step(&self, step: &Step, call: &Call, bands: &mut Vec<HelperCall>) -> Pending {
        match step {
            Step::Copy {
                from: Place::Caller(k, dtype),
                to,
                rows,
            } => {
                // Offsets in elements of the window's type (the caller's index the same).
                let es = dtype.size();
                let span = (rows.channels - 1) * rows.dst_channel + rows.bytes;
                let window = region(Self::base(*to, call) + rows.dst, span / es, *dtype);
                let (channels, bytes, src, src_channel, dst_channel) = (
                    usize_lit(rows.channels),
                    usize_lit(rows.bytes / es),
                    usize_lit(rows.src / es),
                    usize_lit(rows.src_channel / es),
                    usize_lit(rows.dst_channel / es),
                );
                // The source: `run`'s argument as a `RowSource` (see codegen: copied rows
                // or `QuantizedRows`), or the self-test's input as the arena holds it.
                let caller = call.operands[*k].clone();
                let view = match dtype {
                    DType::I8 => quote!(i8_mut),
                    _ => quote!(f32_mut),
                };
                let code = quote! {
                    ::microarena::kernels::stream::RowSource::read_rows(
                        &#caller,
                        self.arena.#view(#window),
                        &::microarena::kernels::stream::RowCopy {
                            channels: #channels, bytes: #bytes, src: #src,
                            src_channel: #src_channel, dst: 0, dst_channel: #dst_channel,
                        },
                    );
                };
                // The same read with its numbers from a table row `r` (see `program_table`).
                let field = |i: usize| quote!(r[#i] as usize);
                let window = region_at(field(0), 0, *dtype).into_iter().map(|t| match t {
                    proc_macro2::TokenTree::Group(g) => {
                        let (off, len) = (field(0), field(1));
                        proc_macro2::TokenTree::Group(proc_macro2::Group::new(
                            g.delimiter(),
                            quote!(#off, #len),
                        ))
                    }
                    t => t,
                });
                let [channels, bytes, src, src_channel, dst_channel] = [2, 3, 4, 5, 6].map(field);
                let template = quote! {
                    ::microarena::kernels::stream::RowSource::read_rows(
                        &#caller,
                        self.arena.#view(#(#window)*),
                        &::microarena::kernels::stream::RowCopy {
                            channels: #channels, bytes: #bytes, src: #src,
                            src_channel: #src_channel, dst: 0, dst_channel: #dst_channel,
                        },
                    );
                };
                Pending::Done(Action::Read {
                    code,
                    template,
                    fields: [
                        Self::base(*to, call) + rows.dst,
                        span / es,
                        rows.channels,
                        rows.bytes / es,
                        rows.src / es,
                        rows.src_channel / es,
                        rows.dst_channel / es,
                    ],
                })
            }
            Step::Copy { from, to, rows } => Pending::Done(Action::Copy(RowCopy {
                src: rows.src + Self::base(*from, call),
                dst: rows.dst + Self::base(*to, call),
                ..*rows
            })),
            Step::Call { .. } => match self.band_call(step, call) {
                Ok(inline) => Pending::Done(Action::Code(inline)),
                Err(band) => {
                    bands.push(band);
                    Pending::Band(bands.len() - 1)
                }
            },
        }
    }

    /// A band call: its body (the arena views and the kernel call) for a helper function of
    /// the stage that takes the views' byte offsets as arguments (and, see [`Helpers::shared_calls`],
    /// the band's rows where bands differ), so each call site is a few arguments and a branch
    /// (a stage calls each op once per band: straight-line bodies cost flash per call). Calls
    /// that read a graph input from the caller's array stay inline (the helper cannot name
    /// `run`'s arguments).
    /// `Ok`: the call's code, inline; `Err`: its body for a helper (see [`Helpers::shared_calls`]).
    fn band_call(&self, step: &Step, call: &Call) -> Result<TokenStream, HelperCall> {
        let Step::Call {
            op,
            inputs,
            output,
            scratch,
            ..
        } = step
        else {
            unreachable!("band_call takes a call")
        };
        let at = call.scratch_offset.expect("a stage has scratch");
        let kernel = op.kernel().expect("stages hold ops with kernels");
        // Constant operands (weights: `W…` statics) may be named by a helper; a caller's
        // array (`run`'s argument) may not.
        let hoist = inputs.iter().all(|o| match o {
            Some(Operand::Input(k)) => call.operands[*k]
                .as_ref()
                .is_some_and(|t| t.to_string().starts_with('W')),
            _ => true,
        });
        let mut offsets: Vec<usize> = Vec::new();
        let mut at_offset = |bytes: usize| {
            if hoist {
                let ident = format_ident!("o{}", offsets.len());
                offsets.push(bytes);
                quote!(#ident)
            } else {
                let lit = usize_lit(bytes);
                quote!(#lit)
            }
        };
        let mut regions = Vec::new();
        let mut idents = Vec::new();
        let mut in_dtype = None;
        let operands = inputs
            .iter()
            .map(|o| match o {
                None => None,
                Some(Operand::Input(k)) => call.operands[*k].clone(),
                Some(Operand::Buf(b)) => {
                    let ident = format_ident!("x{}", regions.len());
                    regions.push(region_at(at_offset(at + b.offset), b.len, b.dtype));
                    in_dtype.get_or_insert(b.dtype);
                    idents.push(ident.clone());
                    Some(quote!(#ident))
                }
            })
            .collect();
        let out_region = region_at(at_offset(at + output.offset), output.len, output.dtype);
        let arena = if hoist {
            quote!(arena)
        } else {
            quote!(self.arena)
        };
        let (borrow, scratch) = match scratch {
            Some(s) => {
                let r = region_at(at_offset(at + s.offset), s.len, s.dtype);
                let m = match s.dtype {
                    DType::F32 => quote!(views_f32_scratch),
                    _ => quote!(views_i8_scratch),
                };
                (
                    quote!(let ([#(#idents),*], out, scratch) =
                        #arena.#m([#(#regions),*], #out_region, #r);),
                    Some(quote!(scratch)),
                )
            }
            None => {
                let m =
                    crate::codegen::views_method(in_dtype.unwrap_or(output.dtype), output.dtype);
                (
                    quote!(let ([#(#idents),*], out) = #arena.#m([#(#regions),*], #out_region);),
                    None,
                )
            }
        };
        let body = kernel.emit(&Call {
            operands,
            borrow,
            parts: Vec::new(),
            out: quote!(out),
            in_place: None,
            scratch,
            offsets: Vec::new(),
            out_offset: 0,
            scratch_offset: None,
            depthwise_shared: call.depthwise_shared,
        });
        if !hoist {
            return Ok(body);
        }
        Err(HelperCall { body, offsets })
    }
}

impl Kernel for StreamOp {
    fn name(&self) -> &'static str {
        "Stream"
    }

    fn macs(&self) -> u64 {
        self.nodes.iter().map(|n| n.op.macs()).sum()
    }

    fn emit(&self, call: &Call) -> TokenStream {
        let mut bands = Vec::new();
        let pending: Vec<(usize, Vec<Pending>)> = self
            .program
            .iter()
            .map(|b| {
                let steps = b
                    .steps
                    .iter()
                    .map(|s| self.emit_step(s, call, &mut bands))
                    .collect();
                (b.repeat, steps)
            })
            .collect();
        let mut helpers = Helpers::default();
        let mut calls: Vec<Option<TokenStream>> = helpers
            .shared_calls("band", &bands, quote!(self.arena))
            .into_iter()
            .map(Some)
            .collect();
        let blocks: Vec<(usize, Vec<Action>)> = pending
            .into_iter()
            .map(|(repeat, steps)| {
                let steps = steps
                    .into_iter()
                    .map(|p| match p {
                        Pending::Done(a) => a,
                        Pending::Band(i) => Action::Code(calls[i].take().expect("each call once")),
                    })
                    .collect();
                (repeat, steps)
            })
            .collect();
        let steps: usize = blocks.iter().map(|(_, s)| s.len()).sum();
        let program = if steps >= TABLE_MIN_STEPS {
            program_table(&blocks)
        } else {
            straight_line(&blocks)
        };
        let helpers = helpers.definitions();
        quote!({ #helpers #program })
    }

    /// Runs the program on one byte buffer laid out as scratch, inputs, output (the same
    /// copies as on the device, at other offsets), band calls through the ops' own host
    /// kernels.
    fn run(&self, ins: &Inputs, out: &mut Values) {
        let mut bases = Vec::new();
        let mut buf = vec![0xa5u8; self.scratch_bytes];
        for v in &ins.values {
            bases.push(buf.len());
            if let Some(v) = v {
                buf.extend(v.to_bytes());
            }
        }
        let out_base = buf.len();
        let out_dtype = match out {
            Values::F32(_) => DType::F32,
            Values::I8(_) => DType::I8,
            Values::I16(_) => DType::I16,
            _ => DType::I32,
        };
        buf.extend(out.to_bytes());
        // A caller's input is here as the arena would hold it (`exec::arena_inputs`): the
        // conversion of whole arrays is the conversion of rows.
        let base = |p: Place| match p {
            Place::Scratch => 0,
            Place::Input(k) | Place::Caller(k, _) => bases[k],
            Place::Output => out_base,
        };
        for block in &self.program {
            for _ in 0..block.repeat {
                for step in &block.steps {
                    match step {
                        Step::Copy { from, to, rows } => {
                            let p = RowCopy {
                                src: rows.src + base(*from),
                                dst: rows.dst + base(*to),
                                ..*rows
                            };
                            copy_rows(&mut buf, &p);
                        }
                        Step::Call {
                            op, inputs, output, ..
                        } => {
                            let read = |b: &Buf| {
                                Values::from_bytes(b.dtype, &buf[b.offset..b.offset + b.bytes()])
                            };
                            let values: Vec<Option<Values>> = inputs
                                .iter()
                                .map(|o| match o {
                                    Some(Operand::Buf(b)) => Some(read(b)),
                                    _ => None,
                                })
                                .collect();
                            let inputs = Inputs {
                                values: inputs
                                    .iter()
                                    .zip(&values)
                                    .map(|(o, v)| match o {
                                        Some(Operand::Input(k)) => ins.get(*k),
                                        Some(Operand::Buf(_)) => v.as_ref(),
                                        None => None,
                                    })
                                    .collect(),
                            };
                            // What the buffer holds now: a running sum adds to it (other
                            // kernels overwrite every element).
                            let mut o = read(output);
                            op.kernel()
                                .expect("stages hold ops with kernels")
                                .run(&inputs, &mut o);
                            buf[output.offset..output.offset + output.bytes()]
                                .copy_from_slice(&o.to_bytes());
                        }
                    }
                }
            }
        }
        *out = Values::from_bytes(
            out_dtype,
            &buf[out_base..out_base + out.len() * out_dtype.size()],
        );
    }
}

/// How a row-local op's output rows depend on its input rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowRule {
    /// A sliding window over activation input 0: output row `r` reads input rows
    /// `r·stride_h + k·dil_h − pad_top` for `k < k_h` (those inside the input).
    Window(crate::kernels::Window2d),
    /// Output row `r` reads row `r` of every activation input (all of the output's shape).
    Flat,
}

impl Op {
    /// How the op maps rows, when it can run band by band inside a streamed stage: a
    /// convolution or pooling of one image, or an elementwise op whose activation inputs all
    /// have the output's shape. Every activation tensor it touches is `[1, C, H, W]`.
    pub fn row_rule(&self, g: &crate::ir::Graph, node: &Node) -> Option<RowRule> {
        use super::elementwise::ElementwiseOp;
        use super::normalization::NormalizationOp;
        let out = g.tensor(node.output);
        // One image, `[1, C, H, W]` or `[C, H, W]` (a pass may drop the batch axis).
        let image = |s: &[usize]| (s.len() == 4 && s[0] == 1 || s.len() == 3) && s[s.len() - 2] > 0;
        if !image(&out.shape) {
            return None;
        }
        let acts: Vec<&crate::ir::Tensor> = node
            .inputs
            .iter()
            .map(|&t| g.tensor(t))
            .filter(|t| t.in_arena())
            .collect();
        // The map a convolution or pooling reads, at any shape of its bytes (a flat or
        // channels-last graph input reshaped to one channel: see the stage's views).
        let reads = |t: &crate::ir::Tensor| match self {
            Op::Conv(c) => {
                let g = c.geometry();
                t.len() == g.batch * g.in_c * g.window.in_h * g.window.in_w
            }
            Op::Pool(p) => {
                let g = p.geometry();
                t.len() == g.batch * g.c * g.window.in_h * g.window.in_w
            }
            _ => false,
        };
        if acts.is_empty() || acts.iter().any(|t| !image(&t.shape) && !reads(t)) {
            return None;
        }
        let same = || acts.iter().all(|t| t.shape == out.shape);
        match self {
            // A hybrid convolution scales by its whole input's largest value: not row-local.
            Op::Conv(super::conv::ConvOp::Hybrid(..)) => None,
            Op::Conv(c) => (c.geometry().batch == 1 && acts.len() == 1)
                .then_some(RowRule::Window(c.geometry().window)),
            Op::Pool(p) => {
                (p.geometry().batch == 1).then_some(RowRule::Window(p.geometry().window))
            }
            Op::Activation(_) | Op::Quant(_) => same().then_some(RowRule::Flat),
            Op::Elementwise(ElementwiseOp::AddI8(_) | ElementwiseOp::AddI8Q31(_)) => {
                (same() && acts.len() == 2).then_some(RowRule::Flat)
            }
            Op::Elementwise(ElementwiseOp::Binary(_)) => {
                // Two maps of the output's shape, or one and a constant per channel (a
                // PRelu's slopes, a bias) or scalar, which every band reads whole.
                let per_channel = |t: &crate::ir::Tensor| {
                    let (s, o) = (&t.shape, &out.shape);
                    let c = o[o.len() - 3];
                    let at = |k: usize| if k < s.len() { s[s.len() - 1 - k] } else { 1 };
                    s.len() <= o.len()
                        && at(0) == 1
                        && at(1) == 1
                        && (at(2) == 1 || at(2) == c)
                        && (3..s.len()).all(|k| at(k) == 1)
                };
                let constant = node
                    .inputs
                    .iter()
                    .map(|&t| g.tensor(t))
                    .filter(|t| !t.in_arena())
                    .all(|t| t.is_weight() && per_channel(t));
                (same() && node.inputs.len() == 2 && constant).then_some(RowRule::Flat)
            }
            Op::Gemm(super::gemm::GemmOp::F32(p)) => {
                // A 1×1 convolution as a matrix product: weights × the `[C_in][H·W]` input.
                let (i, o) = (&acts[0].shape, &out.shape);
                let (i, o) = (&i[i.len() - 3..], &o[o.len() - 3..]);
                let plane = o[1] * o[2];
                (acts.len() == 1
                    && g.tensor(node.inputs[0]).in_arena()
                    && i[1..] == o[1..]
                    && (p.k, p.n, p.m) == (i[0], o[0], plane)
                    && (p.a_stride_m, p.a_stride_k) == (1, plane)
                    && (p.out_stride_m, p.out_stride_n) == (1, plane))
                    .then_some(RowRule::Flat)
            }
            Op::Shape(super::shape::ShapeOp::Copy(p)) => {
                // Rows (and columns) picked at a stride from the first: a downsampling, a
                // slice from the top-left corner. Passes may have merged the copy's axes, so
                // the row pattern is read off the copy's input index of each element.
                let (i, o) = (&acts[0].shape, &out.shape);
                let (r, ri) = (o.len(), i.len());
                let (c, h, w) = (i[ri - 3], i[ri - 2], i[ri - 1]);
                let (oc, oh, ow) = (o[r - 3], o[r - 2], o[r - 1]);
                let index = |k: usize| {
                    let (mut k, mut at) = (k, p.offset);
                    for a in (0..p.rank).rev() {
                        at += (k % p.shape[a].max(1)) * p.in_strides[a];
                        k /= p.shape[a].max(1);
                    }
                    at
                };
                let len = oc * oh * ow;
                if acts.len() != 1 || len == 0 || p.shape[..p.rank].iter().product::<usize>() != len
                {
                    return None;
                }
                let first = index(0);
                let sw = if ow > 1 {
                    index(1).checked_sub(first)?
                } else {
                    1
                };
                let sh = if oh > 1 {
                    index(ow).checked_sub(first)? / w.max(1)
                } else {
                    1
                };
                let fits = |n: usize, s: usize, from: usize, len: usize| from + (n - 1) * s < len;
                let rows = oc <= c
                    && sw >= 1
                    && sh >= 1
                    && first < w
                    && fits(oh, sh, 0, h)
                    && fits(ow, sw, first, w)
                    && (0..len).all(|k| {
                        let (x, y, ch) = (k % ow, k / ow % oh, k / (ow * oh));
                        index(k) == ch * h * w + y * sh * w + x * sw + first
                    });
                rows.then_some(RowRule::Window(crate::kernels::Window2d {
                    in_h: h,
                    in_w: w,
                    out_h: oh,
                    out_w: ow,
                    k_h: 1,
                    k_w: 1,
                    stride_h: sh,
                    stride_w: sw,
                    dil_h: 1,
                    dil_w: 1,
                    pad_top: 0,
                    pad_left: first,
                    pad_bottom: 0,
                    pad_right: 0,
                }))
            }
            Op::Normalization(NormalizationOp::ScaleShift(p)) => {
                (same() && p.outer == 1 && p.channels == out.shape[out.shape.len() - 3])
                    .then_some(RowRule::Flat)
            }
            _ => None,
        }
    }

    /// The op computing a band of rows: over `window` (a [`RowRule::Window`] op) or over
    /// the `[channels][rows][width]` elements of a band (a [`RowRule::Flat`] op); with the
    /// scratch bytes its kernel needs.
    pub fn band(
        &self,
        window: Option<crate::kernels::Window2d>,
        channels: usize,
        rows: usize,
        width: usize,
    ) -> (Op, usize) {
        use super::elementwise::ElementwiseOp;
        use super::normalization::NormalizationOp;
        match (self, window) {
            (Op::Conv(c), Some(w)) => {
                let (op, scratch) = c.with_window(w);
                (Op::Conv(op), scratch)
            }
            (Op::Pool(p), Some(w)) => (Op::Pool(p.with_window(w)), 0),
            (Op::Shape(super::shape::ShapeOp::Copy(_)), Some(w)) => {
                // The band as a three-axis copy from the window (`w.in_h` rows, no padding:
                // the first is the band's; `pad_left` carries the first column).
                let mut p = crate::kernels::shape::StridedCopy {
                    rank: 3,
                    shape: [0; crate::kernels::MAX_RANK],
                    in_strides: [0; crate::kernels::MAX_RANK],
                    offset: w.pad_left,
                };
                p.shape[..3].copy_from_slice(&[channels, w.out_h, w.out_w]);
                p.in_strides[..3].copy_from_slice(&[
                    w.in_h * w.in_w,
                    w.stride_h * w.in_w,
                    w.stride_w,
                ]);
                (Op::Shape(super::shape::ShapeOp::Copy(p)), 0)
            }
            (Op::Elementwise(ElementwiseOp::Binary(b)), None) => {
                // `[channels][rows · width]`: a map's band is contiguous; a constant (see
                // `row_rule`) steps once per channel, or never (a scalar).
                let plane = rows * width;
                let band_strides = |strides: &[usize; crate::kernels::MAX_RANK]| {
                    let s = &strides[..b.rank];
                    let mut t = [0; crate::kernels::MAX_RANK];
                    if super::elementwise::contiguous(&b.shape[..b.rank], s) {
                        t[..2].copy_from_slice(&[plane, 1]);
                    } else if s.iter().any(|&x| x != 0) {
                        t[0] = 1;
                    }
                    t
                };
                let mut band = *b;
                band.rank = 2;
                band.shape = [0; crate::kernels::MAX_RANK];
                band.shape[..2].copy_from_slice(&[channels, plane]);
                band.a_strides = band_strides(&b.a_strides);
                band.b_strides = band_strides(&b.b_strides);
                (Op::Elementwise(ElementwiseOp::Binary(band)), 0)
            }
            (Op::Gemm(super::gemm::GemmOp::F32(p)), None) => {
                let mut p = *p;
                p.m = rows * width;
                p.a_stride_k = p.m;
                p.out_stride_n = p.m;
                (Op::Gemm(super::gemm::GemmOp::F32(p)), 0)
            }
            (Op::Normalization(NormalizationOp::ScaleShift(p)), None) => {
                let mut p = *p;
                p.inner = rows * width;
                (Op::Normalization(NormalizationOp::ScaleShift(p)), 0)
            }
            (op, _) => (op.clone(), 0),
        }
    }
}
