//! A streamed stage's program as generated code (see [`super::StreamOp`]): the band calls'
//! helper functions, shared between calls whose bodies differ only in offsets or in the band's
//! geometry, and the program as a table run by one loop or as straight-line statements.

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::quote;

use super::super::usize_lit;
use crate::codegen::Helpers;
use crate::kernels::stream::RowCopy;

/// A band call whose body goes into a helper function of the stage: the body (the arena views
/// and the kernel call, the views' byte offsets written `o0`, `o1`, ...) and the offsets.
#[derive(Clone)]
pub(super) struct BandCall {
    pub(super) body: TokenStream,
    pub(super) offsets: Vec<usize>,
}

/// The calls of `calls`' helpers, in order. Bodies alike but for the band's geometry (the
/// rows of a window or a band: a [`Window2d`](crate::kernels::Window2d)'s fields, a view's
/// length) share one helper that takes the literals that differ as arguments after the
/// offsets: a stage's first, middle and last bands of an op are the same code (DS-CNN's
/// stage: 38 helpers → 11). The kernel's parameters are then built on the stack at each call,
/// a few dozen instructions beside the kernel's thousands, instead of one constant per band
/// in flash (104 bytes for an int8 convolution's). Bodies alike but for their constant data
/// too (another layer of the same shape: its weights, biases and requantisation constants)
/// share one helper that takes the layer's number among them as one more argument and picks
/// the data by a `match` (DS-CNN's four pointwise layers one helper, its four depthwise
/// layers another).
pub(super) fn band_calls(
    calls: &[BandCall],
    helpers: &mut Helpers,
    arena: TokenStream,
) -> Vec<TokenStream> {
    let split: Vec<Holes> = calls.iter().map(|c| holes(&c.body)).collect();
    // Groups in order of their first call, so that helpers are numbered the same in every
    // build (a hash map's order is not).
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, h) in split.iter().enumerate() {
        let next = groups.len();
        let g = *index.entry(h.template.to_string()).or_insert(next);
        if g == next {
            groups.push(Vec::new());
        }
        groups[g].push(i);
    }
    let mut out = vec![TokenStream::new(); calls.len()];
    for members in &groups {
        let values = |i: usize| &split[i].values;
        let n = values(members[0]).len();
        // The distinct sets of constant data among the group's calls, in order of first use
        // (each call's is its layer's); more than one: a parameter says which.
        let mut layers: Vec<String> = Vec::new();
        let layer_of: Vec<usize> = members
            .iter()
            .map(|&i| {
                let key = split[i]
                    .statics
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(";");
                match layers.iter().position(|l| *l == key) {
                    Some(k) => k,
                    None => {
                        layers.push(key);
                        layers.len() - 1
                    }
                }
            })
            .collect();
        // Each constant datum: one value, or a `match` on the layer's number over the values
        // of the group's layers (in their order).
        let layer_param = |offsets: usize, varying: usize| {
            Ident::new(&format!("o{}", offsets + varying), Span::call_site())
        };
        // The holes whose value differs between the group's calls become parameters.
        let varying: Vec<usize> = (0..n)
            .filter(|&h| {
                members
                    .iter()
                    .any(|&i| values(i)[h] != values(members[0])[h])
            })
            .collect();
        for (m, &i) in members.iter().enumerate() {
            let Holes {
                template,
                values: vals,
                ..
            } = &split[i];
            let offsets = calls[i].offsets.len();
            let fills: Vec<TokenTree> = (0..n)
                .map(|h| match varying.iter().position(|&v| v == h) {
                    Some(j) => TokenTree::Ident(Ident::new(
                        &format!("o{}", offsets + j),
                        Span::call_site(),
                    )),
                    None => TokenTree::Literal(usize_lit(vals[h])),
                })
                .collect();
            let statics: Vec<TokenStream> = (0..split[i].statics.len())
                .map(|d| {
                    let value = |m: usize| split[members[m]].statics[d].to_string();
                    if (0..members.len()).all(|m| value(m) == value(0)) {
                        return split[i].statics[d].clone();
                    }
                    let param = layer_param(offsets, varying.len());
                    // The first call of each layer in the group holds its data.
                    let arms = (0..layers.len()).map(|l| {
                        let first = members[layer_of.iter().position(|&x| x == l).expect("a call")];
                        let value = &split[first].statics[d];
                        if l + 1 == layers.len() {
                            quote!(_ => #value,)
                        } else {
                            let l = usize_lit(l);
                            quote!(#l => #value,)
                        }
                    });
                    quote!((match #param { #(#arms)* }))
                })
                .collect();
            let body = fill(template, &fills, &statics);
            let mut args = calls[i].offsets.clone();
            args.extend(varying.iter().map(|&h| vals[h]));
            if layers.len() > 1 {
                args.push(layer_of[m]);
            }
            out[i] = helpers.call("band", body, &args, arena.clone());
        }
    }
    out
}

/// A band call's body with its geometry and its constant data taken out (see [`holes`]).
struct Holes {
    /// The body, each geometry literal an identifier `__hole{n}`, each datum `__static{n}`.
    template: TokenStream,
    /// The geometry literals' values, in order.
    values: Vec<usize>,
    /// The data, in order: a weight tensor's view (`W12.i8()`) or an array literal of
    /// constants behind a `&` (requantisation constants).
    statics: Vec<TokenStream>,
}

/// `body` with each geometry literal (a view's length: the last argument of `Region::…(…)`; a
/// field of a `Window2d { … }`) replaced by an identifier `__hole{n}`, and each datum (a
/// static weight tensor's view `W<n>.<type>()`, a `&[…]` array literal of constants)
/// by `__static{n}`.
fn holes(body: &TokenStream) -> Holes {
    let (mut values, mut statics) = (Vec::new(), Vec::new());
    let template = walk(body.clone(), &mut values, &mut statics, false);
    Holes {
        template,
        values,
        statics,
    }
}

/// Whether `t` is the name of a weight tensor's static (`W` and a number).
fn weight_static(t: &TokenTree) -> bool {
    matches!(t, TokenTree::Ident(id) if id.to_string().strip_prefix('W').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// Whether `tokens` are constants: no identifier that names a variable (an offset `o<n>`,
/// a view, a hole), only paths, literals and punctuation.
fn constant(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().all(|t| match t {
        TokenTree::Ident(id) => {
            let id = id.to_string();
            let numbered = |c: char| {
                id.strip_prefix(c)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            };
            !id.starts_with("__")
                && !numbered('o')
                && !numbered('x')
                && id != "out"
                && id != "scratch"
        }
        TokenTree::Group(g) => constant(&g.stream()),
        _ => true,
    })
}

/// [`holes`] of one token list; `fields`: the list is a `Window2d`'s fields.
fn walk(
    tokens: TokenStream,
    values: &mut Vec<usize>,
    statics: &mut Vec<TokenStream>,
    fields: bool,
) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut skip = 0;
    for (i, t) in tokens.iter().enumerate() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        let mut datum = |n: usize| {
            statics.push(tokens[i..i + n].iter().cloned().collect());
            TokenTree::Ident(Ident::new(
                &format!("__static{}", statics.len() - 1),
                Span::call_site(),
            ))
        };
        // `W12.i8()`: a weight tensor's view.
        if weight_static(t)
            && matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '.')
            && matches!(tokens.get(i + 2), Some(TokenTree::Ident(_)))
            && matches!(tokens.get(i + 3), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis && g.stream().is_empty())
        {
            out.push(datum(4));
            skip = 3;
            continue;
        }
        // `&[…]` of constants: a layer's requantisation constants.
        if matches!(t, TokenTree::Punct(p) if p.as_char() == '&')
            && matches!(tokens.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket && constant(&g.stream()))
        {
            out.push(datum(2));
            skip = 1;
            continue;
        }
        let ident_at = |k: usize, name: Option<&str>| match (i.checked_sub(k), name) {
            (Some(j), Some(n)) => matches!(&tokens[j], TokenTree::Ident(id) if id == n),
            (Some(j), None) => matches!(&tokens[j], TokenTree::Ident(_)),
            (None, _) => false,
        };
        let colon_at = |k: usize| matches!(i.checked_sub(k).map(|j| &tokens[j]), Some(TokenTree::Punct(p)) if p.as_char() == ':');
        out.push(match t {
            TokenTree::Group(g) => {
                let inner = if g.delimiter() == Delimiter::Parenthesis
                    && ident_at(1, None)
                    && colon_at(2)
                    && colon_at(3)
                    && ident_at(4, Some("Region"))
                {
                    length_hole(g.stream(), values)
                } else {
                    let window = g.delimiter() == Delimiter::Brace && ident_at(1, Some("Window2d"));
                    walk(g.stream(), values, statics, window)
                };
                let mut group = Group::new(g.delimiter(), inner);
                group.set_span(g.span());
                TokenTree::Group(group)
            }
            TokenTree::Literal(l) if fields && colon_at(1) && ident_at(2, None) => {
                hole(l, values).unwrap_or_else(|| t.clone())
            }
            _ => t.clone(),
        });
    }
    out.into_iter().collect()
}

/// A `Region::…(offset, length)` call's arguments with the length a hole.
fn length_hole(args: TokenStream, values: &mut Vec<usize>) -> TokenStream {
    let mut tokens: Vec<TokenTree> = args.into_iter().collect();
    if let Some(TokenTree::Literal(l)) = tokens.last() {
        if let Some(h) = hole(l, values) {
            *tokens.last_mut().expect("a last token") = h;
        }
    }
    tokens.into_iter().collect()
}

/// The hole for an unsuffixed integer literal (its value pushed to `values`), else `None`.
fn hole(l: &Literal, values: &mut Vec<usize>) -> Option<TokenTree> {
    let v: usize = l.to_string().parse().ok()?;
    let ident = Ident::new(&format!("__hole{}", values.len()), Span::call_site());
    values.push(v);
    Some(TokenTree::Ident(ident))
}

/// `template` with `__hole{n}` replaced by `fills[n]` and `__static{n}` by `statics[n]`.
fn fill(template: &TokenStream, fills: &[TokenTree], statics: &[TokenStream]) -> TokenStream {
    template
        .clone()
        .into_iter()
        .flat_map(|t| -> Vec<TokenTree> {
            match t {
                TokenTree::Group(g) => {
                    let mut group = Group::new(g.delimiter(), fill(&g.stream(), fills, statics));
                    group.set_span(g.span());
                    vec![TokenTree::Group(group)]
                }
                TokenTree::Ident(ref id) => {
                    let id = id.to_string();
                    if let Some(n) = id.strip_prefix("__hole") {
                        vec![fills[n.parse::<usize>().expect("a hole number")].clone()]
                    } else if let Some(n) = id.strip_prefix("__static") {
                        statics[n.parse::<usize>().expect("a datum number")]
                            .clone()
                            .into_iter()
                            .collect()
                    } else {
                        vec![t]
                    }
                }
                _ => vec![t],
            }
        })
        .collect()
}

/// One step of a stage's program as generated code.
pub(super) enum Action {
    /// A row copy between arena places (absolute byte offsets): data, a row of the stage's
    /// copy table, when the program is a table.
    Copy(RowCopy),
    /// A statement: a band call.
    Code(TokenStream),
    /// A copy of the caller's rows into the arena: the statement (`code`), and the same
    /// statement with its numbers read from a table row `r` (`template`) and those numbers
    /// (`fields`: the window's offset and length, then the copy's channels, bytes, source,
    /// source stride and destination stride), for a program that is a table.
    Read {
        code: TokenStream,
        template: TokenStream,
        fields: [usize; 7],
    },
}

/// Programs of at least this many steps (a repeated block's counted once) are emitted as a
/// table run by one loop (see [`program_table`]); shorter ones as straight-line code.
pub(super) const TABLE_MIN_STEPS: usize = 16;

/// Distinct reads of the caller's rows of one kind from which they go to a table (see
/// [`program_table`]): ResNet-8's 31 do (1.4 KiB less flash), DS-CNN's 4 do not.
const READ_TABLE_MIN: usize = 8;

/// The template of a read of the caller's rows, as text (a key); empty for other actions.
fn template_key(a: &Action) -> String {
    match a {
        Action::Read { template, .. } => template.to_string(),
        _ => String::new(),
    }
}

/// The fields of `c` in declaration order.
fn copy_fields(c: &RowCopy) -> [usize; 6] {
    [
        c.channels,
        c.bytes,
        c.src,
        c.src_channel,
        c.dst,
        c.dst_channel,
    ]
}

/// The program as straight-line statements (a repeated block as a `for` loop).
pub(super) fn straight_line(blocks: &[(usize, Vec<Action>)]) -> TokenStream {
    let blocks = blocks.iter().map(|(repeat, steps)| {
        let steps = steps.iter().map(|a| match a {
            Action::Copy(c) => {
                let [channels, bytes, src, src_channel, dst, dst_channel] =
                    copy_fields(c).map(usize_lit);
                quote! {
                    ::microarena::kernels::stream::copy_rows(
                        self.arena.bytes_mut(),
                        &::microarena::kernels::stream::RowCopy {
                            channels: #channels, bytes: #bytes, src: #src,
                            src_channel: #src_channel, dst: #dst, dst_channel: #dst_channel,
                        },
                    );
                }
            }
            Action::Code(code) | Action::Read { code, .. } => code.clone(),
        });
        if *repeat == 1 {
            quote!(#(#steps)*)
        } else {
            let n = usize_lit(*repeat);
            quote!(for _ in 0..#n { #(#steps)* })
        }
    });
    quote!(#(#blocks)*)
}

/// The program as data (reads of the caller's rows: one arm per kind, a table of their
/// numbers). A stage runs each op once per band and moves rows between passes:
/// hundreds of steps, on which straight-line code spends 8–12 bytes of flash each, plus a
/// 24-byte `RowCopy` per distinct copy (ResNet-8: 837 steps, 13 KiB of code). Here each
/// distinct statement is one arm of a `match`, each distinct row copy one row of a static
/// table (`u16` fields when every offset fits), and the program a static list of step
/// numbers (a byte each up to 256 distinct steps) that one loop runs, its blocks (start,
/// end, repeat) an outer one. A step costs a few instructions more than a direct call, next
/// to a band's kernel call or a row copy nothing.
pub(super) fn program_table(blocks: &[(usize, Vec<Action>)]) -> TokenStream {
    let mut arms: Vec<TokenStream> = Vec::new();
    let mut arm_index: std::collections::HashMap<String, usize> = Default::default();
    let mut copies: Vec<RowCopy> = Vec::new();
    let mut copy_index: std::collections::HashMap<[usize; 6], usize> = Default::default();
    // Reads of the caller's rows: per statement template, its distinct rows.
    let mut reads: Vec<(TokenStream, Vec<[usize; 7]>)> = Vec::new();
    let mut read_index: std::collections::HashMap<(String, [usize; 7]), (usize, usize)> =
        Default::default();
    // Each step: an arm (`Arm`), a read (`Read`: template, row) or a copy (`Copy`), numbered
    // once all arms and reads are known.
    enum Num {
        Arm(usize),
        Read(usize, usize),
        Copy(usize),
    }
    let mut steps: Vec<Num> = Vec::new();
    // Reads of one kind go to a table when there are enough distinct ones to pay for the
    // table's arm (its window and copy built at run time: a few hundred bytes).
    let mut distinct: std::collections::HashMap<String, std::collections::HashSet<[usize; 7]>> =
        Default::default();
    for a in blocks.iter().flat_map(|(_, actions)| actions) {
        if let Action::Read { fields, .. } = a {
            distinct.entry(template_key(a)).or_default().insert(*fields);
        }
    }
    let tabled: std::collections::HashSet<String> = distinct
        .into_iter()
        .filter(|(_, rows)| rows.len() >= READ_TABLE_MIN)
        .map(|(key, _)| key)
        .collect();
    let mut spans = Vec::new();
    for (repeat, actions) in blocks {
        let start = steps.len();
        for a in actions {
            steps.push(match a {
                Action::Code(code) => {
                    let next = arms.len();
                    let k = *arm_index.entry(code.to_string()).or_insert(next);
                    if k == next {
                        arms.push(code.clone());
                    }
                    Num::Arm(k)
                }
                Action::Read { code, .. } if !tabled.contains(&template_key(a)) => {
                    let next = arms.len();
                    let k = *arm_index.entry(code.to_string()).or_insert(next);
                    if k == next {
                        arms.push(code.clone());
                    }
                    Num::Arm(k)
                }
                Action::Read {
                    template, fields, ..
                } => {
                    let key = template.to_string();
                    let group = match reads.iter().position(|(t, _)| t.to_string() == key) {
                        Some(g) => g,
                        None => {
                            reads.push((template.clone(), Vec::new()));
                            reads.len() - 1
                        }
                    };
                    let next = (group, reads[group].1.len());
                    let at = *read_index.entry((key, *fields)).or_insert(next);
                    if at == next {
                        reads[group].1.push(*fields);
                    }
                    Num::Read(at.0, at.1)
                }
                Action::Copy(c) => {
                    let next = copies.len();
                    let k = *copy_index.entry(copy_fields(c)).or_insert(next);
                    if k == next {
                        copies.push(*c);
                    }
                    Num::Copy(k)
                }
            });
        }
        spans.push((start, steps.len(), *repeat));
    }
    let n_arms = arms.len();
    // Numbers: the arms, then each read group's rows, then the copies.
    let mut read_first = Vec::new();
    let mut next = n_arms;
    for (_, rows) in &reads {
        read_first.push(next);
        next += rows.len();
    }
    let copy_first = next;
    let step_type = if copy_first + copies.len() <= 256 {
        quote!(u8)
    } else {
        quote!(u16)
    };
    let numbers = steps.iter().map(|s| match s {
        Num::Arm(k) => usize_lit(*k),
        Num::Read(g, r) => usize_lit(read_first[*g] + r),
        Num::Copy(k) => usize_lit(copy_first + k),
    });
    let read_arms = reads
        .iter()
        .zip(&read_first)
        .map(|((template, rows), &first)| {
            let short = rows.iter().flatten().all(|&v| v <= usize::from(u16::MAX));
            let field_type = if short { quote!(u16) } else { quote!(u32) };
            let n = usize_lit(rows.len());
            let last = usize_lit(first + rows.len() - 1);
            let rows = rows.iter().map(|f| {
                let f = f.map(usize_lit);
                quote!([#(#f),*])
            });
            let first = usize_lit(first);
            quote! {
                k @ #first..=#last => {
                    static READS: [[#field_type; 7]; #n] = [#(#rows),*];
                    let r = &READS[k as usize - #first];
                    #template
                }
            }
        });
    let n_steps = usize_lit(steps.len());
    let n_spans = usize_lit(spans.len());
    let spans = spans.iter().map(|&(s, e, r)| {
        let (s, e, r) = (usize_lit(s), usize_lit(e), usize_lit(r));
        quote!((#s, #e, #r))
    });
    let arm_numbers = (0..n_arms).map(usize_lit);
    let copy_arm = if copies.is_empty() {
        quote!(_ => {})
    } else {
        let short = copies
            .iter()
            .all(|c| copy_fields(c).iter().all(|&v| v <= usize::from(u16::MAX)));
        let field_type = if short { quote!(u16) } else { quote!(u32) };
        let rows = copies.iter().map(|c| {
            let f = copy_fields(c).map(usize_lit);
            quote!([#(#f),*])
        });
        let n_copies = usize_lit(copies.len());
        let first = usize_lit(copy_first);
        quote! {
            k => {
                static COPIES: [[#field_type; 6]; #n_copies] = [#(#rows),*];
                let c = &COPIES[k as usize - #first];
                ::microarena::kernels::stream::copy_rows(
                    self.arena.bytes_mut(),
                    &::microarena::kernels::stream::RowCopy {
                        channels: c[0] as usize, bytes: c[1] as usize, src: c[2] as usize,
                        src_channel: c[3] as usize, dst: c[4] as usize,
                        dst_channel: c[5] as usize,
                    },
                );
            }
        }
    };
    quote! {
        static PROGRAM: [#step_type; #n_steps] = [#(#numbers),*];
        const BLOCKS: [(usize, usize, usize); #n_spans] = [#(#spans),*];
        for &(start, end, repeat) in BLOCKS.iter() {
            for _ in 0..repeat {
                for &k in &PROGRAM[start..end] {
                    match k {
                        #(#arm_numbers => { #arms })*
                        #(#read_arms)*
                        #copy_arm
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(in_h: usize, len: usize, act: u32) -> TokenStream {
        let (in_h, len) = (usize_lit(in_h), usize_lit(len));
        quote! {
            let ([x0], out) = arena.views_i8([::microarena::Region::i8(o0, #len)], ::microarena::Region::i8(o1, 64));
            kernel(&::microarena::kernels::Window2d { in_h: #in_h, in_w: 5, k_h: 3 }, #act, x0, out);
        }
    }

    fn read(src: usize) -> Action {
        let fields = [0, 32, 1, 32, src, 490, 32];
        Action::Read {
            code: quote!(read(#src);),
            template: quote!(read(r);),
            fields,
        }
    }

    /// Reads of the caller's rows become one table arm when a stage has at least
    /// `READ_TABLE_MIN` distinct ones, and stay statements below that; either way every step
    /// is in the program.
    #[test]
    fn many_reads_are_a_table() {
        for (n, table) in [(READ_TABLE_MIN, true), (READ_TABLE_MIN - 1, false)] {
            let mut actions: Vec<Action> = (0..n).map(|i| read(32 * i)).collect();
            actions.extend((0..TABLE_MIN_STEPS).map(|_| Action::Code(quote!(band();))));
            let code = program_table(&[(1, actions)]).to_string();
            assert_eq!(code.contains("static READS"), table, "{n}: {code}");
            assert_eq!(
                code.matches("read (").count(),
                if table { 1 } else { n },
                "{code}"
            );
            let steps = n + TABLE_MIN_STEPS;
            assert!(code.contains(&format!("[u8 ; {steps}]")), "{code}");
        }
    }

    /// A band of another layer of the same shape: another weight tensor and other constants.
    fn layer_body(w: &str, m: i32, kept: TokenStream) -> TokenStream {
        let w = Ident::new(w, Span::call_site());
        quote! {
            let ([x0], out) = arena.views_i8([::microarena::Region::i8(o0, 160)], ::microarena::Region::i8(o1, 64));
            kernel(#kept, x0, #w.i8(), &[Q31 { multiplier: #m, round: -8160i32 }], out);
        }
    }

    /// Bands of layers alike but for their data share one helper that takes the layer's
    /// number as its last argument and picks each datum that differs by a `match`; data the
    /// layers share (here the empty `&[]`) stays as it is.
    #[test]
    fn layers_alike_but_for_their_data_share_a_helper() {
        let calls = [("W3", 7), ("W5", 9), ("W3", 7)].map(|(w, m)| BandCall {
            body: layer_body(w, m, quote!(&[])),
            offsets: vec![0, 400],
        });
        let mut helpers = Helpers::default();
        let code: Vec<String> = band_calls(&calls, &mut helpers, quote!(self.arena))
            .iter()
            .map(|t| t.to_string())
            .collect();
        let defs = helpers.definitions().to_string();
        assert_eq!(defs.matches("fn band_").count(), 1, "{defs}");
        for (call, layer) in code.iter().zip([0, 1, 0]) {
            let args = format!("(& mut self . arena , 0 , 400 , {layer})");
            assert!(call.contains(&args), "{call}");
        }
        assert!(
            defs.contains("(match o2 { 0 => W3 . i8 () , _ => W5 . i8 () , })"),
            "{defs}"
        );
        assert!(defs.contains("multiplier : 7i32") && defs.contains("multiplier : 9i32"));
        assert!(defs.contains("kernel (& [] , x0"), "{defs}");
        // A view's data (`x0`) is not constant: bodies differing there are other helpers.
        let mut helpers = Helpers::default();
        let other = BandCall {
            body: layer_body("W3", 7, quote!(&[x0])),
            offsets: vec![0, 400],
        };
        band_calls(&[calls[0].clone(), other], &mut helpers, quote!(self.arena));
        let defs = helpers.definitions().to_string();
        assert_eq!(defs.matches("fn band_").count(), 2, "{defs}");
    }

    /// Bands whose bodies differ in a window's rows and a view's length share one helper that
    /// takes those two as arguments after the offsets; the literals they agree on stay
    /// literals; a difference elsewhere (a suffixed literal: not geometry) is another helper.
    #[test]
    fn bands_differing_in_geometry_share_a_helper() {
        let calls = [
            BandCall {
                body: body(2, 160, 7),
                offsets: vec![0, 400],
            },
            BandCall {
                body: body(3, 240, 7),
                offsets: vec![16, 400],
            },
            BandCall {
                body: body(3, 240, 7),
                offsets: vec![32, 400],
            },
            BandCall {
                body: body(2, 160, 8),
                offsets: vec![0, 400],
            },
        ];
        let mut helpers = Helpers::default();
        let code: Vec<String> = band_calls(&calls, &mut helpers, quote!(self.arena))
            .iter()
            .map(|t| t.to_string())
            .collect();
        let defs = helpers.definitions().to_string();
        assert_eq!(defs.matches("fn band_").count(), 2, "{defs}");
        assert!(
            code[0].contains("(& mut self . arena , 0 , 400 , 160 , 2)"),
            "{}",
            code[0]
        );
        assert!(
            code[1].contains("(& mut self . arena , 16 , 400 , 240 , 3)"),
            "{}",
            code[1]
        );
        // The shared helper reads the rows from its parameters; `in_w` stays a literal.
        assert!(
            defs.contains("in_h : o3") && defs.contains("in_w : 5"),
            "{defs}"
        );
        assert!(defs.contains("Region :: i8 (o0 , o2)"), "{defs}");
        // The fourth differs in `act` (7u32 against 8u32): its own helper, no extra arguments.
        assert!(
            code[3].contains("(& mut self . arena , 0 , 400)"),
            "{}",
            code[3]
        );
    }
}
