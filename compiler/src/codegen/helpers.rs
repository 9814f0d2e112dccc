//! Helper functions of generated code: one per distinct kernel call body, shared by the
//! calls that differ only in their arena offsets, their geometry or their layer's constant
//! data (see [`Helpers::shared_calls`]).

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote};

use crate::ops::usize_lit;

/// A kernel call whose body goes into a helper function: the body (the arena views and the
/// kernel call, the views' byte offsets written `o0`, `o1`, ...) and the offsets.
#[derive(Clone)]
pub(crate) struct HelperCall {
    pub(crate) body: TokenStream,
    pub(crate) offsets: Vec<usize>,
}

/// Helper functions of generated code: each a kernel call's body (its arena views and the
/// kernel's call) taking the arena and the views' byte offsets as arguments (and, see
/// [`Helpers::shared_calls`], geometry and a layer number), one per distinct body, so that
/// calls differing only in offsets share one copy of the code (flash: a call
/// site is its offsets and a branch).
#[derive(Default)]
pub(crate) struct Helpers {
    list: Vec<Helper>,
    /// Each helper's body as text (the calls it serves have this body) → its index: one
    /// lookup per call, not a scan of the helpers (a 1,024-step recurrence has thousands).
    index: std::collections::HashMap<String, usize>,
}

struct Helper {
    name: Ident,
    params: usize,
    body: TokenStream,
    calls: usize,
}

impl Helpers {
    /// The call, through `arena`, of the helper (named `{prefix}_{k}`) whose body is `body`
    /// (written with `arena` and the offsets `o0`, `o1`, ...), with `offsets` as arguments.
    fn call(
        &mut self,
        prefix: &str,
        body: TokenStream,
        offsets: &[usize],
        arena: TokenStream,
    ) -> TokenStream {
        let next = self.list.len();
        let k = *self.index.entry(body.to_string()).or_insert(next);
        if k == next {
            self.list.push(Helper {
                name: format_ident!("{}_{}", prefix, next),
                params: offsets.len(),
                body,
                calls: 0,
            });
        }
        let h = &mut self.list[k];
        h.calls += 1;
        let name = &h.name;
        let args = offsets.iter().map(|&o| usize_lit(o));
        quote!(#name(&mut #arena, #(#args),*);)
    }

    /// The calls of `calls`' helpers (named `{prefix}_{k}`), in order. Bodies alike but for
    /// their geometry (the rows of a window or a band: a
    /// [`Window2d`](crate::kernels::Window2d)'s fields, a view's length) share one helper that
    /// takes the literals that differ as arguments after the offsets: a stage's first, middle
    /// and last bands of an op are the same code (DS-CNN's stage: 38 helpers → 11). The
    /// kernel's parameters are then built on the stack at each call, a few dozen instructions
    /// beside the kernel's thousands, instead of one constant per band in flash (104 bytes for
    /// an int8 convolution's). Bodies alike but for their constant data too (another layer of
    /// the same shape: its weights, biases and requantisation constants) share one helper
    /// that takes the layer's number among them as one more argument and picks each datum by
    /// a `match` (DS-CNN's four pointwise layers one helper, its four depthwise layers
    /// another; MobileNetV1's five middle blocks one pair).
    pub(crate) fn shared_calls(
        &mut self,
        prefix: &str,
        calls: &[HelperCall],
        arena: TokenStream,
    ) -> Vec<TokenStream> {
        let split: Vec<Holes> = calls.iter().map(|c| holes(&c.body)).collect();
        // Groups in order of their first call, so that helpers are numbered the same in every
        // build (a hash map's order is not).
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, h) in split.iter().enumerate() {
            let next = groups.len();
            let g = *index.entry(h.key()).or_insert(next);
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
                            let first =
                                members[layer_of.iter().position(|&x| x == l).expect("a call")];
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
                out[i] = self.call(prefix, body, &args, arena.clone());
            }
        }
        out
    }

    /// The helpers' definitions: out of line where several calls share one (a single call
    /// site is left to the inliner).
    pub(crate) fn definitions(&self) -> TokenStream {
        let defs = self.list.iter().map(|h| {
            let (name, body) = (&h.name, &h.body);
            let params = (0..h.params).map(|i| format_ident!("o{}", i));
            let attr = (h.calls > 1).then(|| quote!(#[inline(never)]));
            quote! {
                #attr
                #[allow(clippy::all, clippy::pedantic, unused_variables)]
                fn #name(arena: &mut ::microarena::Arena<ARENA_BYTES>, #(#params: usize),*) {
                    #body
                }
            }
        });
        quote!(#(#defs)*)
    }
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

impl Holes {
    /// What calls must agree on to share a helper: the template, and each datum's type (see
    /// [`skeleton`]), so that a `match` over their values is well typed.
    fn key(&self) -> String {
        let mut key = self.template.to_string();
        for s in &self.statics {
            key.push('|');
            key.push_str(&skeleton(s));
        }
        key
    }
}

/// `tokens` with each literal's value dropped (its suffix kept, so its type), each weight
/// static's name generalised and each array literal its first element: data with equal
/// skeletons have one type up to their arrays' lengths (a `&[T; N]` of any `N` is a `&[T]`
/// argument).
fn skeleton(tokens: &TokenStream) -> String {
    let mut out = String::new();
    for t in tokens.clone() {
        match &t {
            TokenTree::Literal(l) => {
                let text = l.to_string();
                let suffix = text.trim_start_matches(|c: char| {
                    c.is_ascii_digit() || c == '.' || c == '-' || c == '_'
                });
                out.push_str("lit");
                out.push_str(suffix);
            }
            TokenTree::Ident(_) if weight_static(&t) => out.push('W'),
            TokenTree::Ident(id) => out.push_str(&id.to_string()),
            // A negative literal's sign: its value, not its type.
            TokenTree::Punct(p) if p.as_char() == '-' => continue,
            TokenTree::Punct(p) => out.push(p.as_char()),
            TokenTree::Group(g) => {
                out.push_str(match g.delimiter() {
                    Delimiter::Parenthesis => "(",
                    Delimiter::Brace => "{",
                    Delimiter::Bracket => "[",
                    Delimiter::None => "<",
                });
                let inner = if g.delimiter() == Delimiter::Bracket {
                    g.stream()
                        .into_iter()
                        .take_while(|t| !matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
                        .collect()
                } else {
                    g.stream()
                };
                out.push_str(&skeleton(&inner));
                out.push(')');
            }
        }
        out.push(' ');
    }
    out
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

    /// The calls (as text) of `calls` shared as bands, and the helpers' definitions.
    fn shared(calls: &[HelperCall]) -> (Vec<String>, String) {
        let mut helpers = Helpers::default();
        let code = helpers
            .shared_calls("band", calls, quote!(self.arena))
            .iter()
            .map(|t| t.to_string())
            .collect();
        (code, helpers.definitions().to_string())
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
        let calls = [("W3", 7), ("W5", 9), ("W3", 7)].map(|(w, m)| HelperCall {
            body: layer_body(w, m, quote!(&[])),
            offsets: vec![0, 400],
        });
        let (code, defs) = shared(&calls);
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
        let other = HelperCall {
            body: layer_body("W3", 7, quote!(&[x0])),
            offsets: vec![0, 400],
        };
        let (_, defs) = shared(&[calls[0].clone(), other]);
        assert_eq!(defs.matches("fn band_").count(), 2, "{defs}");
    }

    /// Bands whose bodies differ in a window's rows and a view's length share one helper that
    /// takes those two as arguments after the offsets; the literals they agree on stay
    /// literals; a difference elsewhere (a suffixed literal: not geometry) is another helper.
    #[test]
    fn bands_differing_in_geometry_share_a_helper() {
        let calls = [
            HelperCall {
                body: body(2, 160, 7),
                offsets: vec![0, 400],
            },
            HelperCall {
                body: body(3, 240, 7),
                offsets: vec![16, 400],
            },
            HelperCall {
                body: body(3, 240, 7),
                offsets: vec![32, 400],
            },
            HelperCall {
                body: body(2, 160, 8),
                offsets: vec![0, 400],
            },
        ];
        let (code, defs) = shared(&calls);
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
