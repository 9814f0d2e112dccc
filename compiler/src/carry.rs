//! Carried state: graph outputs that are the next call's inputs.
//!
//! A recurrent model exported for streaming takes its state as inputs and returns the next
//! state as outputs (Silero VAD's `state` → `stateN`, a keyword spotter's `h`, `c` → `hN`,
//! `cN`). Carried, such a pair leaves `run`'s arguments: the generated `Model` keeps the
//! state between calls (outside the arena, zeroed by `new()` and `reset()`), copying it into
//! the arena when `run` starts and the new state back when it ends.
//!
//! Which pairs: by default every output whose name is an input's name with a suffix that
//! marks the next value (`N`, `n`, `_n`, `_next`, `_new`, `_out`), an input's name ending in
//! `0`, `_0`, `_in` or `_prev` counting without it (`h0` ↔ `hn`, `state_in` ↔ `state_out`),
//! and the same shape and element type; `carry = { "hN": "h" }` names them instead
//! (`carry = {}`: none).

use crate::error::{Error, Result};
use crate::ir::{DType, Graph};

/// The element type `run` passes for a tensor of `dtype` with (`quantized`) a float
/// interface over int8, or (`unsigned`) a uint8 interface: `"f32"`, `"u8"` or `"i8"`.
pub(crate) fn interface_type(quantized: bool, unsigned: bool, dtype: DType) -> &'static str {
    match (quantized, unsigned, dtype) {
        (true, _, _) => "f32",
        (false, true, _) => "u8",
        (false, false, DType::I8) => "i8",
        _ => "f32",
    }
}

/// What the interface passes for graph input `i` of `g`.
pub(crate) fn input_type(g: &Graph, i: usize) -> &'static str {
    let t = g.tensor(g.inputs[i]);
    interface_type(g.input_quant(i).is_some(), g.input_is_unsigned(i), t.dtype)
}

/// What the interface writes for graph output `o` of `g`.
fn output_type(g: &Graph, o: usize) -> &'static str {
    let t = g.tensor(g.outputs[o]);
    interface_type(
        g.output_quant(o).is_some(),
        g.output_is_unsigned(o),
        t.dtype,
    )
}

/// The name without a suffix of `suffixes` (the first that fits), or as it is.
fn stem<'a>(name: &'a str, suffixes: &[&str]) -> &'a str {
    suffixes
        .iter()
        .find_map(|s| name.strip_suffix(s).filter(|rest| !rest.is_empty()))
        .unwrap_or(name)
}

/// Whether output `output` names the next value of input `input`.
fn names_match(output: &str, input: &str) -> bool {
    const NEXT: [&str; 6] = ["_next", "_new", "_out", "_n", "N", "n"];
    const PREV: [&str; 4] = ["_prev", "_in", "_0", "0"];
    if output == input {
        return false;
    }
    let out_stem = stem(output, &NEXT);
    out_stem != output && (out_stem == input || out_stem == stem(input, &PREV))
}

fn describe_inputs(g: &Graph) -> String {
    let list: Vec<String> = g
        .inputs
        .iter()
        .map(|&t| format!("`{}` {:?}", g.tensor(t).name, g.tensor(t).shape))
        .collect();
    format!("its inputs are {}", list.join(", "))
}

fn describe_outputs(g: &Graph) -> String {
    let list: Vec<String> = (0..g.outputs.len())
        .map(|o| format!("`{}` {:?}", g.output_name(o), g.output_shapes[o]))
        .collect();
    format!("its outputs are {}", list.join(", "))
}

/// The carried pairs of `g` as (graph output index, graph input index): `given` pairs of
/// (output name, input name), or when `None` the pairs found by name.
pub fn resolve(g: &Graph, given: Option<&[(String, String)]>) -> Result<Vec<(usize, usize)>> {
    let out_name = |o: usize| g.output_name(o);
    let in_name = |i: usize| g.tensor(g.inputs[i]).name.as_str();
    let fits = |o: usize, i: usize| -> std::result::Result<(), String> {
        let (os, is) = (&g.output_shapes[o], &g.tensor(g.inputs[i]).shape);
        if os != is {
            return Err(format!(
                "output `{}` has shape {os:?} and input `{}` {is:?}; a carried state must have \
                 the same shape in and out",
                out_name(o),
                in_name(i)
            ));
        }
        let (ot, it) = (output_type(g, o), input_type(g, i));
        if ot != it {
            return Err(format!(
                "output `{}` is {ot} and input `{}` {it}; a carried state must have the same \
                 element type in and out",
                out_name(o),
                in_name(i)
            ));
        }
        Ok(())
    };
    let Some(given) = given else {
        let mut pairs = Vec::new();
        for o in 0..g.outputs.len() {
            let found = (0..g.inputs.len()).find(|&i| {
                names_match(out_name(o), in_name(i))
                    && fits(o, i).is_ok()
                    && !pairs.iter().any(|&(_, j)| j == i)
            });
            if let Some(i) = found {
                pairs.push((o, i));
            }
        }
        return Ok(pairs);
    };
    let bad = |output: &str, input: &str, why: String| Error::BadCarry {
        output: output.to_owned(),
        input: input.to_owned(),
        why,
        input_at_fault: false,
    };
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (output, input) in given {
        let o = (0..g.outputs.len())
            .find(|&o| out_name(o) == output)
            .ok_or_else(|| {
                bad(
                    output,
                    input,
                    format!(
                        "the model has no output `{output}`; {}",
                        describe_outputs(g)
                    ),
                )
            })?;
        let i = (0..g.inputs.len())
            .find(|&i| in_name(i) == input)
            .ok_or_else(|| {
                let baked = g.const_inputs.iter().any(|(n, _)| n == input);
                Error::BadCarry {
                    output: output.clone(),
                    input: input.clone(),
                    why: if baked {
                        format!("input `{input}` is a `const_input`, not a state")
                    } else {
                        format!("the model has no input `{input}`; {}", describe_inputs(g))
                    },
                    input_at_fault: true,
                }
            })?;
        if pairs.iter().any(|&(p, j)| p == o || j == i) {
            return Err(bad(
                output,
                input,
                "each output and each input is carried at most once".into(),
            ));
        }
        fits(o, i).map_err(|why| bad(output, input, why))?;
        pairs.push((o, i));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::names_match;

    #[test]
    fn next_state_names() {
        for (o, i) in [
            ("stateN", "state"),
            ("hN", "h"),
            ("cn", "c"),
            ("hn", "h0"),
            ("h_n", "h_0"),
            ("state_out", "state_in"),
            ("state_next", "state"),
            ("cache_new", "cache_prev"),
        ] {
            assert!(names_match(o, i), "{o} for {i}");
        }
        for (o, i) in [
            ("h", "h"),
            ("output", "input"),
            ("logits", "h"),
            ("N", ""),
            ("hN", "c"),
            ("state", "stateN"),
        ] {
            assert!(!names_match(o, i), "{o} for {i}");
        }
    }
}
