//! `include_model!`: the procedural macro of [microarena](https://docs.rs/microarena).
//!
//! Thin by design: it parses its arguments, hands the model to `microarena-compiler`, and
//! turns the compiler's errors into `compile_error!` at the argument they concern. Use it
//! through the `microarena` crate, which re-exports it.

use std::path::PathBuf;

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, LitInt, LitStr, Token};

/// Compiles an ONNX model into items of the surrounding module.
///
/// ```ignore
/// mod net { microarena::include_model!("models/net.onnx"); }
/// mod dyn_net { microarena::include_model!("models/dyn.onnx", input_shape = [1, 3, 32, 32]); }
/// ```
///
/// The path is relative to the invoking crate's root (`CARGO_MANIFEST_DIR`). Options:
/// - `input_shape = [d0, d1, ...]`: the input shape, for models with symbolic dimensions
///   (a symbolic leading batch dimension defaults to 1); in a model of several inputs, by
///   name: `input_shape = { "input": [1, 512], "state": [2, 1, 128] }` (inputs not named
///   keep their declared shapes);
/// - `const_input = { "sr": 16000 }`: inputs that are constants of this build (a sample
///   rate, a mode flag), each one value: baked into the model before it is simplified, so
///   an `If` or shape arithmetic on them folds away; `run` no longer takes them;
/// - `carry = { "hN": "h", "cN": "c" }`: outputs that are the next call's inputs (a
///   recurrent state). The `Model` keeps them between calls (`STATE_BYTES`, outside the
///   arena; zeroed by `new()` and `reset()`) and `run` takes and writes only the others. By
///   default outputs are paired with inputs by name (`stateN` with `state`, `hn` with `h0`,
///   `state_out` with `state_in`, same shape and type); `carry = {}` carries nothing;
/// - `alignment = N`: byte alignment of arena offsets (default 16);
/// - `max_arena_bytes = N`: fail the build, naming the peak step, when the arena exceeds N
///   bytes (the same check as a `const` assertion on `ARENA_BYTES`, with a better message);
/// - `effort = N`: how much work planning may spend, in percent of the default (100, about
///   2 s of search on a 2026 desktop core; most models need a small part of it). Counted in
///   work, not time: the plan, and so `ARENA_BYTES`, is the same on every machine under any
///   load. A search cut short keeps the best order found.
/// - `budget_ms = N`: also stop planning after N ms of wall-clock time. Off by default; with
///   it the plan depends on the machine's speed and load (a loaded build server may get a
///   larger arena than a laptop), so a build is no longer reproducible.
/// - `streaming = false`: never run a region band by band. By default the planner may stream
///   the first stages (their feature maps held as windows of rows, see the README), keeping a
///   stage only where the arena shrinks.
/// - `stream_cost = N`: how much slower, in percent of one inference (estimated for the
///   Cortex-M4), streamed stages may make the model (default 8). Narrow bands save RAM and
///   cost calls: `stream_cost = 20` lets more of them through.
/// - `copy_input = true`: copy the graph input into the arena when `run` starts. By default,
///   when a streamed stage is the input's only reader, it reads the rows where the caller
///   passes them and `ARENA_BYTES` does not count the input.
/// - `self_test = true`: run the plan on the host at build time on a deterministic input
///   (with the runtime's own kernels) and, for float models, check the result against tract
///   running the same file — a disagreement fails the build; embed that input and output and
///   generate `Model::self_test(&mut self) -> bool`, which re-runs the model on the device
///   and compares (int8 exactly, f32 within 1e-5 of the largest output magnitude).
///
/// The module gains `ARENA_BYTES`, `INPUT_SHAPE`, `OUTPUT_SHAPE`, `INPUT_LEN`, `OUTPUT_LEN`,
/// `STEPS` and `Model` (`const fn new()`, `run(&mut self, &[f32; INPUT_LEN], &mut [f32; OUTPUT_LEN])`).
#[proc_macro]
pub fn include_model(input: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(input as Args);
    match expand(&args) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The macro's arguments, with the span of each for error messages.
struct Args {
    path: LitStr,
    input_shape: Option<(Vec<usize>, Span)>,
    /// `input_shape = { "name": [..], .. }`.
    input_shapes: Vec<(LitStr, Vec<usize>)>,
    /// `const_input = { "name": value, .. }`.
    const_inputs: Vec<(LitStr, microarena_compiler::import::Scalar)>,
    /// `carry = { "output": "input", .. }` (`{}`: none); `None` when not given.
    carry: Option<(Vec<(LitStr, LitStr)>, Span)>,
    alignment: Option<(usize, Span)>,
    budget_ms: Option<u64>,
    effort: Option<u64>,
    max_arena_bytes: Option<(usize, Span)>,
    self_test: Option<(bool, Span)>,
    streaming: Option<bool>,
    copy_input: Option<bool>,
    stream_cost: Option<u32>,
}

/// `true` or `false`, with a hint naming `what` and an `example` value.
fn parse_bool(input: ParseStream, what: &str, example: &str) -> syn::Result<bool> {
    let v: syn::LitBool = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("`{what}` takes `true` or `false`, e.g. `{what} = {example}`"),
        )
    })?;
    Ok(v.value)
}

/// `{ "name": item, .. }`, each name once.
fn parse_map<T>(
    input: ParseStream,
    what: &str,
    example: &str,
    item: impl Fn(ParseStream) -> syn::Result<T>,
) -> syn::Result<Vec<(LitStr, T)>> {
    let content;
    syn::braced!(content in input);
    let mut out: Vec<(LitStr, T)> = Vec::new();
    while !content.is_empty() {
        let name: LitStr = content.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("`{what}` takes input names as strings, e.g. `{what} = {example}`"),
            )
        })?;
        content.parse::<Token![:]>()?;
        let v = item(&content)?;
        if out.iter().any(|(n, _)| n.value() == name.value()) {
            return Err(syn::Error::new(
                name.span(),
                format!("`{what}` names input `{}` twice", name.value()),
            ));
        }
        out.push((name, v));
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    if out.is_empty() {
        return Err(syn::Error::new(
            input.span(),
            format!("`{what}` names no input, e.g. `{what} = {example}`"),
        ));
    }
    Ok(out)
}

/// One number (`16000`, `-1`, `0.5`) for `const_input`.
fn parse_scalar(input: ParseStream) -> syn::Result<microarena_compiler::import::Scalar> {
    use microarena_compiler::import::Scalar;
    let hint = |span: Span| {
        syn::Error::new(
            span,
            "`const_input` takes one number per input, e.g. `const_input = { \"sr\": 16000 }`",
        )
    };
    let negative = input.parse::<Option<Token![-]>>()?.is_some();
    let lit: syn::Lit = input.parse().map_err(|e| hint(e.span()))?;
    let v = match &lit {
        syn::Lit::Int(i) => Scalar::Int(i.base10_parse::<i64>().map_err(|_| hint(i.span()))?),
        syn::Lit::Float(f) => Scalar::Float(f.base10_parse::<f64>().map_err(|_| hint(f.span()))?),
        other => return Err(hint(other.span())),
    };
    Ok(match (negative, v) {
        (false, v) => v,
        (true, Scalar::Int(i)) => Scalar::Int(-i),
        (true, Scalar::Float(f)) => Scalar::Float(-f),
    })
}

fn parse_usize_list(input: ParseStream) -> syn::Result<Vec<usize>> {
    let hint = |e: syn::Error| {
        syn::Error::new(
            e.span(),
            "`input_shape` takes a list of dimensions, e.g. `input_shape = [1, 3, 32, 32]`",
        )
    };
    let content;
    bracketed!(content in input);
    let items: Punctuated<LitInt, Token![,]> = content
        .parse_terminated(|p| p.parse::<LitInt>(), Token![,])
        .map_err(hint)?;
    items
        .iter()
        .map(|l| l.base10_parse::<usize>().map_err(hint))
        .collect()
}

/// A non-negative integer option value, with an error that names the option and the form.
fn parse_count(input: ParseStream, option: &str, example: &str) -> syn::Result<(usize, Span)> {
    let hint = |e: syn::Error| {
        syn::Error::new(
            e.span(),
            format!("`{option}` takes a non-negative integer, e.g. `{option} = {example}`"),
        )
    };
    let v: LitInt = input.parse().map_err(hint)?;
    Ok((v.base10_parse().map_err(hint)?, v.span()))
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let path: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected the model path as a string literal: include_model!(\"models/net.onnx\")",
            )
        })?;
        let mut args = Args {
            path,
            input_shape: None,
            input_shapes: Vec::new(),
            const_inputs: Vec::new(),
            carry: None,
            alignment: None,
            budget_ms: None,
            effort: None,
            max_arena_bytes: None,
            self_test: None,
            streaming: None,
            copy_input: None,
            stream_cost: None,
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: syn::Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let span = key.span();
            match key.to_string().as_str() {
                "input_shape" if input.peek(syn::token::Brace) => {
                    let shapes = parse_map(
                        input,
                        "input_shape",
                        "{ \"input\": [1, 512], \"state\": [2, 1, 128] }",
                        parse_usize_list,
                    )?;
                    if let Some((n, _)) = shapes.iter().find(|(_, s)| s.is_empty()) {
                        return Err(syn::Error::new(
                            n.span(),
                            "input_shape must list at least one dimension",
                        ));
                    }
                    args.input_shapes = shapes;
                }
                "const_input" => {
                    if !input.peek(syn::token::Brace) {
                        return Err(syn::Error::new(
                            input.span(),
                            "`const_input` takes a map of input names to numbers, e.g. `const_input = { \"sr\": 16000 }`",
                        ));
                    }
                    args.const_inputs =
                        parse_map(input, "const_input", "{ \"sr\": 16000 }", parse_scalar)?;
                }
                "carry" => {
                    const EXAMPLE: &str = "{ \"hN\": \"h\", \"cN\": \"c\" }";
                    let hint = |span: Span| {
                        syn::Error::new(
                            span,
                            format!("`carry` takes a map of output names to the input names they feed on the next call, e.g. `carry = {EXAMPLE}` (`carry = {{}}`: none)"),
                        )
                    };
                    if !input.peek(syn::token::Brace) {
                        return Err(hint(input.span()));
                    }
                    let empty = {
                        let fork = input.fork();
                        let content;
                        syn::braced!(content in fork);
                        content.is_empty()
                    };
                    let pairs = if empty {
                        let _content;
                        syn::braced!(_content in input);
                        Vec::new()
                    } else {
                        parse_map(input, "carry", EXAMPLE, |p| {
                            p.parse::<LitStr>().map_err(|e| hint(e.span()))
                        })?
                    };
                    args.carry = Some((pairs, span));
                }
                "input_shape" => {
                    if !input.peek(syn::token::Bracket) {
                        return Err(syn::Error::new(
                            input.span(),
                            "`input_shape` takes a list of dimensions, e.g. `input_shape = [1, 3, 32, 32]`",
                        ));
                    }
                    let shape = parse_usize_list(input)?;
                    if shape.is_empty() {
                        return Err(syn::Error::new(span, "input_shape must list at least one dimension"));
                    }
                    args.input_shape = Some((shape, span));
                }
                "alignment" => {
                    args.alignment = Some(parse_count(input, "alignment", "16")?);
                }
                "max_arena_bytes" => {
                    let (v, _) = parse_count(input, "max_arena_bytes", "65536")?;
                    args.max_arena_bytes = Some((v, span));
                }
                "self_test" => {
                    args.self_test = Some((parse_bool(input, "self_test", "true")?, span));
                }
                "streaming" => {
                    args.streaming = Some(parse_bool(input, "streaming", "false")?);
                }
                "copy_input" => {
                    args.copy_input = Some(parse_bool(input, "copy_input", "true")?);
                }
                "stream_cost" => {
                    let (v, _) = parse_count(input, "stream_cost", "20")?;
                    args.stream_cost = Some(u32::try_from(v).unwrap_or(u32::MAX));
                }
                "budget_ms" => {
                    args.budget_ms = Some(parse_count(input, "budget_ms", "2000")?.0 as u64);
                }
                "effort" => {
                    args.effort = Some(parse_count(input, "effort", "400")?.0 as u64);
                }
                other => {
                    return Err(syn::Error::new(
                        span,
                        format!("unknown option `{other}`; options are `input_shape = [..]` (or `{{ \"name\": [..] }}`), `const_input = {{ \"name\": N }}`, `carry = {{ \"output\": \"input\" }}`, `alignment = N`, `effort = N`, `budget_ms = N`, `max_arena_bytes = N`, `self_test = true`, `streaming = false`, `stream_cost = N` and `copy_input = true`"),
                    ))
                }
            }
        }
        Ok(args)
    }
}

fn expand(args: &Args) -> syn::Result<proc_macro2::TokenStream> {
    let given = args.path.value();
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| {
            syn::Error::new(
                args.path.span(),
                "CARGO_MANIFEST_DIR is not set: build with cargo",
            )
        })?;
    let path = root.join(&given);
    let mut options = microarena_compiler::Options {
        input_shape: args.input_shape.as_ref().map(|s| s.0.clone()),
        input_shapes: args
            .input_shapes
            .iter()
            .map(|(n, s)| (n.value(), s.clone()))
            .collect(),
        const_inputs: args
            .const_inputs
            .iter()
            .map(|(n, v)| (n.value(), *v))
            .collect(),
        ..Default::default()
    };
    if let Some((a, _)) = args.alignment {
        options.alignment = a;
    }
    if let Some((pairs, _)) = &args.carry {
        options.carry = Some(pairs.iter().map(|(o, i)| (o.value(), i.value())).collect());
    }
    if let Some(on) = args.streaming {
        options.streaming = on;
    }
    if let Some(on) = args.copy_input {
        options.copy_input = on;
    }
    if let Some(pct) = args.stream_cost {
        options.stream_cost_percent = pct;
    }
    if let Some(ms) = args.budget_ms {
        options.time_limit = Some(std::time::Duration::from_millis(ms));
    }
    if let Some(pct) = args.effort {
        options.work = (microarena_compiler::DEFAULT_WORK / 100).saturating_mul(pct);
    }
    let compiled = microarena_compiler::compile(&path, &options).map_err(|e| {
        use microarena_compiler::Error;
        // Point at the option the error is about; name the path as the user wrote it.
        // The name as written in a map of the macro's arguments.
        let named =
            |name: &str, map: &[LitStr]| map.iter().find(|n| n.value() == name).map(LitStr::span);
        let shape_names: Vec<LitStr> = args.input_shapes.iter().map(|(n, _)| n.clone()).collect();
        let const_names: Vec<LitStr> = args.const_inputs.iter().map(|(n, _)| n.clone()).collect();
        let span = match (&e, &args.input_shape, &args.alignment) {
            (Error::UnknownInput { option, name, .. }, _, _) => {
                let map = if *option == "const_input" {
                    &const_names
                } else {
                    &shape_names
                };
                named(name, map).unwrap_or(args.path.span())
            }
            (Error::BadConstInput { input, .. }, _, _) => {
                named(input, &const_names).unwrap_or(args.path.span())
            }
            (
                Error::BadCarry {
                    output,
                    input_at_fault,
                    ..
                },
                _,
                _,
            ) => args
                .carry
                .as_ref()
                .and_then(|(pairs, span)| {
                    pairs
                        .iter()
                        .find(|(o, _)| o.value() == *output)
                        .map(|(o, i)| if *input_at_fault { i.span() } else { o.span() })
                        .or(Some(*span))
                })
                .unwrap_or(args.path.span()),
            (Error::BadInputShape { input, .. } | Error::DynamicShape { input, .. }, _, _)
                if named(input, &shape_names).is_some() =>
            {
                named(input, &shape_names).unwrap_or(args.path.span())
            }
            (Error::BadInputShape { .. } | Error::DynamicShape { .. }, Some((_, s)), _) => *s,
            (Error::Model(m), Some((_, s)), _) if m.starts_with("input_shape") => *s,
            (Error::Model(m), _, Some((_, s))) if m.starts_with("alignment") => *s,
            _ => args.path.span(),
        };
        let message = e.to_string().replace(&path.display().to_string(), &given);
        let hint = match e {
            Error::Read { .. } => {
                "\n  the path is relative to the crate root (the directory of its Cargo.toml)"
            }
            _ => "",
        };
        syn::Error::new(span, format!("microarena: {message}{hint}"))
    })?;
    if let Some((max, span)) = args.max_arena_bytes {
        if compiled.plan.arena_bytes > max {
            return Err(syn::Error::new(span, over_budget(&compiled, max)));
        }
    }
    let tokens = match args.self_test {
        Some((true, span)) => {
            let st = microarena_compiler::self_test::build(&compiled, &path).map_err(|e| {
                let message = e.to_string().replace(&path.display().to_string(), &given);
                syn::Error::new(span, format!("microarena: {message}"))
            })?;
            compiled.to_tokens_with_self_test(Some(&path), &st)
        }
        _ => compiled.to_tokens(Some(&path)),
    };
    Ok(quote!(#tokens))
}

/// The message for a plan above `max_arena_bytes`: the best arena, and where it peaks.
fn over_budget(c: &microarena_compiler::Compiled, max: usize) -> String {
    let mut msg = format!(
        "microarena: the best plan found needs an arena of {} bytes, above max_arena_bytes = {max}",
        c.plan.arena_bytes
    );
    if let Some(p) = c.peak_step() {
        let held: Vec<String> = p
            .live
            .iter()
            .map(|(name, bytes)| format!("`{name}` ({bytes} B)"))
            .collect();
        msg.push_str(&format!(
            "\n  the peak is step {} of {}, ONNX node `{}` ({}), holding {} bytes: {}",
            p.step + 1,
            c.schedule.len(),
            p.node,
            p.op_type,
            p.bytes,
            held.join(", ")
        ));
    }
    msg.push_str(&format!(
        "\n  {}; shrink the tensors live at that step (fewer channels, a stride or pooling earlier), or raise the limit",
        if c.stats.optimal {
            "the order is proven optimal"
        } else {
            "the order search ran out of work (`effort = 400` lets it search four times longer)"
        }
    ));
    msg
}
