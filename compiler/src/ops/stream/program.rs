//! A streamed stage's program as generated code (see [`super::StreamOp`]): the program as a
//! table run by one loop or as straight-line statements (the band calls' helper functions are
//! [`Helpers::shared_calls`](crate::codegen::Helpers::shared_calls)).

use proc_macro2::TokenStream;
use quote::quote;

use super::super::usize_lit;
use crate::kernels::stream::RowCopy;

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
}
