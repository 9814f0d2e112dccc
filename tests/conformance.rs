//! Per-op conformance: every supported ONNX op, with shapes, strides, pads, groups and
//! broadcasting varied at random (fixed seeds), compiled and run by microarena's host
//! interpreter, and compared with tract running the same model.

use microarena_tests::onnx::{Attr, OnnxBuilder, Rng};
use microarena_tests::{assert_close, microarena_run_bytes, tract_run_bytes};

/// The relative tolerance, with an absolute floor for values near zero (sums of
/// products of mixed sign lose relative precision in any summation order).
const REL: f32 = 1e-4;
const ABS: f32 = 1e-5;

/// Builds one model with `build` (given the input name and a builder), then checks it.
fn case(
    what: &str,
    seed: u64,
    shape: &[usize],
    build: impl FnOnce(&mut OnnxBuilder, &mut Rng) -> String,
) {
    let mut rng = Rng::new(seed);
    let mut b = OnnxBuilder::new(shape);
    let out = build(&mut b, &mut rng);
    let bytes = b.finish(&out);
    let n: usize = shape.iter().product();
    let x = rng.f32s(n, -2.0, 2.0);
    let want = tract_run_bytes(&bytes, shape, &x)
        .unwrap_or_else(|e| panic!("{what} (seed {seed}): tract: {e:?}"));
    let got =
        microarena_run_bytes(&bytes, &x).unwrap_or_else(|e| panic!("{what} (seed {seed}): {e}"));
    assert_close(&format!("{what} (seed {seed})"), &got, &want, REL, ABS);
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

#[test]
fn conv() {
    for seed in 0..60 {
        let mut r = Rng::new(seed);
        let one_d = seed % 7 == 3;
        let groups = r.pick(&[1, 1, 2, 3]);
        let depthwise = seed % 5 == 1;
        let cin = if depthwise {
            r.range(1, 6)
        } else {
            groups * r.range(1, 3)
        };
        let groups = if depthwise { cin } else { groups };
        let cout = groups * r.range(1, 3);
        let k = r.pick(&[1, 2, 3, 5]);
        let (kh, kw) = if one_d {
            (1, k)
        } else {
            (k, r.pick(&[k, 1, 3]))
        };
        let stride = r.range(1, 3);
        let dil = r.pick(&[1, 1, 2]);
        let h = r.range(kh * dil, 11);
        let w = r.range(kw * dil + 1, 12);
        let shape: Vec<usize> = if one_d {
            vec![1, cin, w]
        } else {
            vec![1, cin, h, w]
        };
        let auto_pad = r.pick(&["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]);
        let pads: Vec<usize> = (0..if one_d { 2 } else { 4 })
            .map(|_| r.range(0, 2))
            .collect();
        let bias = r.coin();
        case(
            &format!(
                "Conv g{groups} {cin}->{cout} k{kh}x{kw} s{stride} d{dil} {auto_pad} {pads:?}"
            ),
            seed,
            &shape,
            |b, r| {
                let kshape: Vec<usize> = if one_d {
                    vec![cout, cin / groups, kw]
                } else {
                    vec![cout, cin / groups, kh, kw]
                };
                let wt = b.f32s(&kshape, r.f32s(kshape.iter().product(), -1.0, 1.0));
                let mut ins = vec!["x".to_string(), wt];
                if bias {
                    ins.push(b.f32s(&[cout], r.f32s(cout, -1.0, 1.0)));
                }
                let spatial = if one_d { 1 } else { 2 };
                let ks: Vec<usize> = if one_d { vec![kw] } else { vec![kh, kw] };
                let mut attrs = vec![
                    ("kernel_shape", ints(&ks)),
                    ("strides", ints(&vec![stride; spatial])),
                    ("dilations", ints(&vec![dil; spatial])),
                    ("group", Attr::Int(groups as i64)),
                ];
                if auto_pad == "NOTSET" {
                    attrs.push(("pads", ints(&pads)));
                } else {
                    attrs.push(("auto_pad", Attr::Str(auto_pad)));
                }
                let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
                b.node("Conv", &refs, attrs)
            },
        );
    }
}

#[test]
fn gemm_and_matmul() {
    for seed in 0..24 {
        let mut r = Rng::new(100 + seed);
        let (m, k, n) = (r.range(1, 4), r.range(1, 9), r.range(1, 7));
        let trans_a = seed % 4 >= 2;
        let trans_b = seed % 2 == 1;
        let alpha = r.pick(&[1.0, 0.5, -2.0]);
        let beta = r.pick(&[1.0, 0.25, 3.0]);
        let c_shape = r.pick(&[vec![n], vec![1, n], vec![m, n], vec![1], vec![]]);
        let x_shape = if trans_a { vec![k, m] } else { vec![m, k] };
        case(
            &format!("Gemm m{m} k{k} n{n} tA{trans_a} tB{trans_b} α{alpha} β{beta} C{c_shape:?}"),
            seed,
            &x_shape,
            |b, r| {
                let w_shape = if trans_b { [n, k] } else { [k, n] };
                let wt = b.f32s(&w_shape, r.f32s(n * k, -1.0, 1.0));
                let mut ins = vec!["x".to_string(), wt];
                if !c_shape.is_empty() {
                    ins.push(b.f32s(&c_shape, r.f32s(c_shape.iter().product(), -1.0, 1.0)));
                }
                let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
                b.node(
                    "Gemm",
                    &refs,
                    vec![
                        ("transA", Attr::Int(trans_a as i64)),
                        ("transB", Attr::Int(trans_b as i64)),
                        ("alpha", Attr::Float(alpha)),
                        ("beta", Attr::Float(beta)),
                    ],
                )
            },
        );
        case(
            &format!("MatMul x·W m{m} k{k} n{n}"),
            seed,
            &[m, k],
            |b, r| {
                let wt = b.f32s(&[k, n], r.f32s(n * k, -1.0, 1.0));
                b.node("MatMul", &["x", &wt], vec![])
            },
        );
        case(
            &format!("MatMul W·x m{m} k{k} n{n}"),
            seed,
            &[k, n],
            |b, r| {
                let wt = b.f32s(&[m, k], r.f32s(m * k, -1.0, 1.0));
                b.node("MatMul", &[&wt, "x"], vec![])
            },
        );
        case(
            &format!("MatMul x·xᵀ m{m} k{k}"),
            seed,
            &[m, k],
            |b, _| {
                let t = b.node("Transpose", &["x"], vec![("perm", ints(&[1, 0]))]);
                let y = b.node("Relu", &[&t], vec![]);
                b.node("MatMul", &["x", &y], vec![])
            },
        );
    }
}

#[test]
fn batch_norm_folded_and_standalone() {
    for seed in 0..8 {
        let c = 2 + seed as usize % 3;
        let bn = |b: &mut OnnxBuilder, r: &mut Rng, x: &str| {
            let scale = b.f32s(&[c], r.f32s(c, 0.5, 1.5));
            let bias = b.f32s(&[c], r.f32s(c, -0.5, 0.5));
            let mean = b.f32s(&[c], r.f32s(c, -0.5, 0.5));
            let var = b.f32s(&[c], r.f32s(c, 0.5, 1.5));
            b.node(
                "BatchNormalization",
                &[x, &scale, &bias, &mean, &var],
                vec![("epsilon", Attr::Float(1e-3))],
            )
        };
        case(
            "BatchNormalization on the input",
            seed,
            &[1, c, 4, 5],
            |b, r| bn(b, r, "x"),
        );
        case(
            "Conv + BatchNormalization + Relu",
            seed,
            &[1, c, 6, 6],
            |b, r| {
                let w = b.f32s(&[c, c, 3, 3], r.f32s(c * c * 9, -1.0, 1.0));
                let y = b.node("Conv", &["x", &w], vec![("pads", ints(&[1, 1, 1, 1]))]);
                let y = bn(b, r, &y);
                b.node("Relu", &[&y], vec![])
            },
        );
        case(
            "Add + BatchNormalization (not foldable)",
            seed,
            &[1, c, 3, 3],
            |b, r| {
                let s = b.node("Relu", &["x"], vec![]);
                let y = b.node("Add", &["x", &s], vec![]);
                bn(b, r, &y)
            },
        );
    }
}

/// One step of an ONNX `LSTM` (sequence length 1, as a streaming detector runs it), with and
/// without initial states and bias, its new hidden and cell states: tract's matrix products
/// and our gate kernels.
#[test]
fn lstm_step() {
    for (i, (input, hidden, bias, initial)) in [
        (4usize, 8usize, true, true),
        (3, 5, false, false),
        (6, 2, true, false),
    ]
    .into_iter()
    .enumerate()
    {
        case(
            &format!("LSTM {input} -> {hidden}"),
            i as u64,
            &[1, 1, input],
            |b, r| {
                let w = b.f32s(
                    &[1, 4 * hidden, input],
                    r.f32s(4 * hidden * input, -0.6, 0.6),
                );
                let rr = b.f32s(
                    &[1, 4 * hidden, hidden],
                    r.f32s(4 * hidden * hidden, -0.6, 0.6),
                );
                let bb = b.f32s(&[1, 8 * hidden], r.f32s(8 * hidden, -0.3, 0.3));
                let h0 = b.f32s(&[1, 1, hidden], r.f32s(hidden, -1.0, 1.0));
                let c0 = b.f32s(&[1, 1, hidden], r.f32s(hidden, -1.0, 1.0));
                let mut ins: Vec<&str> = vec!["x", &w, &rr];
                if bias || initial {
                    ins.push(if bias { &bb } else { "" });
                }
                if initial {
                    ins.extend(["", &h0, &c0]);
                }
                let attrs = vec![("hidden_size", Attr::Int(hidden as i64))];
                // Both states out (tract keeps a `Scan` for an LSTM whose state it would carry
                // itself; a detector returns them to its caller): [h, c] side by side.
                let outs = b.node_n("LSTM", &ins, attrs, 3);
                b.node(
                    "Concat",
                    &[&outs[1], &outs[2]],
                    vec![("axis", Attr::Int(2))],
                )
            },
        );
    }
}

/// One step of an ONNX `GRU`, both `linear_before_reset` modes, its new hidden state.
#[test]
fn gru_step() {
    for (i, (input, hidden, lbr)) in [(4usize, 8usize, 0i64), (3, 5, 1), (6, 2, 0)]
        .into_iter()
        .enumerate()
    {
        case(
            &format!("GRU {input} -> {hidden} lbr {lbr}"),
            i as u64,
            &[1, 1, input],
            |b, r| {
                let w = b.f32s(
                    &[1, 3 * hidden, input],
                    r.f32s(3 * hidden * input, -0.6, 0.6),
                );
                let rr = b.f32s(
                    &[1, 3 * hidden, hidden],
                    r.f32s(3 * hidden * hidden, -0.6, 0.6),
                );
                let bb = b.f32s(&[1, 6 * hidden], r.f32s(6 * hidden, -0.3, 0.3));
                let h0 = b.f32s(&[1, 1, hidden], r.f32s(hidden, -1.0, 1.0));
                let attrs = vec![
                    ("hidden_size", Attr::Int(hidden as i64)),
                    ("linear_before_reset", Attr::Int(lbr)),
                ];
                let outs = b.node_n("GRU", &["x", &w, &rr, &bb, "", &h0], attrs, 2);
                outs[1].clone()
            },
        );
    }
}

/// ONNX `LSTM`, `GRU` and `RNN` over whole sequences (tract's `Scan`, and its whole-sequence
/// `GruSeq` for a `linear_before_reset` GRU of 4 steps or more, both unrolled step by step):
/// forward, reverse and bidirectional, with and without bias and initial state, the full
/// sequence output `Y` (the steps concatenated) and the last states.
#[test]
fn recurrent_sequences() {
    // (cell, steps, input, hidden, direction, bias and initial state, lbr, output)
    let cases = [
        ("LSTM", 5usize, 4usize, 6usize, "forward", true, 0i64, "Y"),
        ("LSTM", 4, 3, 5, "bidirectional", false, 0, "Y"),
        ("LSTM", 6, 2, 4, "reverse", true, 0, "Y_h"),
        ("GRU", 5, 4, 6, "forward", true, 1, "Y"),
        ("GRU", 6, 3, 5, "forward", false, 0, "Y"),
        ("GRU", 4, 5, 3, "bidirectional", true, 1, "Y"),
        ("GRU", 7, 2, 4, "reverse", true, 1, "Y_h"),
        ("GRU", 3, 4, 4, "forward", true, 1, "Y_h"),
        ("RNN", 6, 3, 5, "forward", true, 0, "Y"),
        ("RNN", 5, 4, 3, "bidirectional", false, 0, "Y_h"),
    ];
    for (i, (cell, steps, input, hidden, direction, full, lbr, out)) in
        cases.into_iter().enumerate()
    {
        let gates = match cell {
            "LSTM" => 4,
            "GRU" => 3,
            _ => 1,
        };
        let dirs = if direction == "bidirectional" { 2 } else { 1 };
        case(
            &format!("{cell} {direction} {steps} x {input} -> {hidden} ({out})"),
            i as u64,
            &[steps, 1, input],
            |b, r| {
                let w = b.f32s(
                    &[dirs, gates * hidden, input],
                    r.f32s(dirs * gates * hidden * input, -0.6, 0.6),
                );
                let rr = b.f32s(
                    &[dirs, gates * hidden, hidden],
                    r.f32s(dirs * gates * hidden * hidden, -0.6, 0.6),
                );
                let bb = b.f32s(
                    &[dirs, 2 * gates * hidden],
                    r.f32s(dirs * 2 * gates * hidden, -0.3, 0.3),
                );
                let h0 = b.f32s(&[dirs, 1, hidden], r.f32s(dirs * hidden, -1.0, 1.0));
                let c0 = b.f32s(&[dirs, 1, hidden], r.f32s(dirs * hidden, -1.0, 1.0));
                let mut ins: Vec<&str> = vec!["x", &w, &rr];
                if full {
                    ins.extend([bb.as_str(), "", h0.as_str()]);
                    if cell == "LSTM" {
                        ins.push(&c0);
                    }
                }
                let mut attrs = vec![
                    ("hidden_size", Attr::Int(hidden as i64)),
                    ("direction", Attr::Str(direction)),
                ];
                if cell == "GRU" {
                    attrs.push(("linear_before_reset", Attr::Int(lbr)));
                }
                let outs = b.node_n(cell, &ins, attrs, 2);
                if out == "Y" {
                    outs[0].clone()
                } else {
                    outs[1].clone()
                }
            },
        );
    }
}

/// `Pow` with a constant exponent of 2 (tract's `Square`), as audio front ends write power
/// spectra.
#[test]
fn pow_of_two() {
    case("Pow 2", 0, &[1, 3, 4, 5], |b, _| {
        let two = b.f32s(&[], vec![2.0]);
        b.node("Pow", &["x", &two], vec![])
    });
}

#[test]
fn unary_activations() {
    for (i, (op, attrs)) in [
        ("Relu", vec![]),
        ("LeakyRelu", vec![("alpha", Attr::Float(0.07))]),
        ("Sigmoid", vec![]),
        ("Tanh", vec![]),
        (
            "HardSigmoid",
            vec![("alpha", Attr::Float(0.3)), ("beta", Attr::Float(0.4))],
        ),
        ("HardSigmoid", vec![]),
        ("HardSwish", vec![]),
        ("Exp", vec![]),
        ("Abs", vec![]),
        ("Neg", vec![]),
        ("Erf", vec![]),
        ("Identity", vec![]),
        ("Dropout", vec![]),
        ("Elu", vec![]),
        ("Elu", vec![("alpha", Attr::Float(0.4))]),
        ("Selu", vec![]),
        (
            "Selu",
            vec![("alpha", Attr::Float(1.5)), ("gamma", Attr::Float(0.7))],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        case(op, i as u64, &[1, 3, 4, 5], |b, _| {
            b.node(op, &["x"], attrs)
        });
    }
    case("Sqrt(Abs)", 0, &[2, 7], |b, _| {
        let a = b.node("Abs", &["x"], vec![]);
        b.node("Sqrt", &[&a], vec![])
    });
    case("Log(Exp)", 0, &[2, 7], |b, _| {
        let a = b.node("Exp", &["x"], vec![]);
        b.node("Log", &[&a], vec![])
    });
    case("Reciprocal(Exp)", 0, &[2, 7], |b, _| {
        let a = b.node("Exp", &["x"], vec![]);
        b.node("Reciprocal", &[&a], vec![])
    });
    for (i, (lo, hi)) in [
        (Some(0.0), Some(6.0)),
        (Some(-0.5), None),
        (None, Some(0.25)),
        (Some(1.0), Some(1.5)),
    ]
    .into_iter()
    .enumerate()
    {
        case(
            &format!("Clip {lo:?} {hi:?}"),
            i as u64,
            &[1, 2, 3, 3],
            |b, _| {
                let lo = lo.map_or(String::new(), |v| b.f32s(&[], vec![v]));
                let hi = hi.map_or(String::new(), |v| b.f32s(&[], vec![v]));
                b.node("Clip", &["x", &lo, &hi], vec![])
            },
        );
    }
    for (i, slope) in [vec![3, 1, 1], vec![1], vec![], vec![3, 4, 5]]
        .into_iter()
        .enumerate()
    {
        case(
            &format!("PRelu slope {slope:?}"),
            i as u64,
            &[1, 3, 4, 5],
            |b, r| {
                let s = b.f32s(&slope, r.f32s(slope.iter().product(), 0.0, 0.5));
                b.node("PRelu", &["x", &s], vec![])
            },
        );
    }
}

#[test]
fn pools() {
    for seed in 0..40 {
        let mut r = Rng::new(300 + seed);
        let c = r.range(1, 3);
        let (kh, kw) = (r.range(1, 3), r.range(1, 3));
        let stride = r.range(1, 3);
        let ceil = r.coin();
        let cip = r.coin();
        let pads: Vec<usize> = vec![
            r.range(0, kh - 1),
            r.range(0, kw - 1),
            r.range(0, kh - 1),
            r.range(0, kw - 1),
        ];
        let (h, w) = (r.range(kh, 9), r.range(kw, 9));
        let max = seed % 2 == 0;
        let auto_pad = if seed % 9 == 4 {
            "SAME_UPPER"
        } else if seed % 9 == 8 {
            "SAME_LOWER"
        } else {
            "NOTSET"
        };
        let op = if max { "MaxPool" } else { "AveragePool" };
        case(
            &format!("{op} k{kh}x{kw} s{stride} {pads:?} ceil{ceil} cip{cip} {auto_pad}"),
            seed,
            &[1, c, h, w],
            |b, _| {
                let mut attrs = vec![
                    ("kernel_shape", ints(&[kh, kw])),
                    ("strides", ints(&[stride, stride])),
                    ("ceil_mode", Attr::Int(ceil as i64)),
                ];
                if auto_pad == "NOTSET" {
                    attrs.push(("pads", ints(&pads)));
                } else {
                    attrs.push(("auto_pad", Attr::Str(auto_pad)));
                }
                if !max {
                    attrs.push(("count_include_pad", Attr::Int(cip as i64)));
                } else if seed % 3 == 0 {
                    attrs.push(("dilations", ints(&[1, 2])));
                }
                b.node(op, &["x"], attrs)
            },
        );
    }
    case("GlobalAveragePool", 0, &[1, 3, 5, 4], |b, _| {
        b.node("GlobalAveragePool", &["x"], vec![])
    });
    case("GlobalMaxPool", 0, &[1, 3, 5, 4], |b, _| {
        b.node("GlobalMaxPool", &["x"], vec![])
    });
    case("MaxPool 1-D", 0, &[1, 2, 9], |b, _| {
        b.node(
            "MaxPool",
            &["x"],
            vec![("kernel_shape", ints(&[3])), ("strides", ints(&[2]))],
        )
    });
}

#[test]
fn binary_broadcasting() {
    let x = [1usize, 3, 4, 5];
    let consts: [&[usize]; 7] = [
        &[3, 1, 1],
        &[5],
        &[1, 1, 4, 1],
        &[1],
        &[],
        &[1, 3, 4, 5],
        &[4, 5],
    ];
    for (i, op) in ["Add", "Sub", "Mul", "Div", "Max", "Min"]
        .into_iter()
        .enumerate()
    {
        for (j, cs) in consts.iter().enumerate() {
            let seed = (i * 10 + j) as u64;
            case(&format!("{op}(x, c{cs:?})"), seed, &x, |b, r| {
                let c = b.f32s(cs, r.f32s(cs.iter().product(), 0.5, 2.0));
                b.node(op, &["x", &c], vec![])
            });
            case(&format!("{op}(c{cs:?}, x)"), seed, &x, |b, r| {
                let c = b.f32s(cs, r.f32s(cs.iter().product(), 0.5, 2.0));
                b.node(op, &[&c, "x"], vec![])
            });
        }
        case(&format!("{op}(x, relu(x) + 1)"), i as u64, &x, |b, r| {
            let one = b.f32s(&[], vec![1.0]);
            let y = b.node("Relu", &["x"], vec![]);
            let y = b.node("Add", &[&y, &one], vec![]);
            let _ = r;
            b.node(op, &["x", &y], vec![])
        });
        case(
            &format!("{op}(x[1,3,4,5], reduce(x)[1,1,4,5])"),
            i as u64,
            &x,
            |b, _| {
                let m = b.node(
                    "ReduceMax",
                    &["x"],
                    vec![("axes", ints(&[1])), ("keepdims", Attr::Int(1))],
                );
                let m = b.node("Abs", &[&m], vec![]);
                let one = b.f32s(&[], vec![1.0]);
                let m = b.node("Add", &[&m, &one], vec![]);
                b.node(op, &["x", &m], vec![])
            },
        );
    }
    case("Pow(|x|, c)", 0, &x, |b, r| {
        let a = b.node("Abs", &["x"], vec![]);
        let c = b.f32s(&[5], r.f32s(5, 0.5, 2.0));
        b.node("Pow", &[&a, &c], vec![])
    });
    case("Sum(x, relu(x), c)", 0, &x, |b, r| {
        let y = b.node("Relu", &["x"], vec![]);
        let c = b.f32s(&[3, 1, 1], r.f32s(3, -1.0, 1.0));
        b.node("Sum", &["x", &y, &c], vec![])
    });
    case("Mean(x, sigmoid(x))", 0, &x, |b, _| {
        let y = b.node("Sigmoid", &["x"], vec![]);
        b.node("Mean", &["x", &y], vec![])
    });
}

#[test]
fn shapes_and_data_movement() {
    let x = [1usize, 2, 3, 4];
    for axis in 0..4 {
        case(&format!("Flatten axis {axis}"), axis as u64, &x, |b, _| {
            b.node("Flatten", &["x"], vec![("axis", Attr::Int(axis))])
        });
    }
    case("Reshape", 0, &x, |b, _| {
        let s = b.i64s(vec![4, -1]);
        let y = b.node("Reshape", &["x", &s], vec![]);
        b.node("Relu", &[&y], vec![])
    });
    case("Squeeze + Unsqueeze", 0, &x, |b, _| {
        let a0 = b.i64s(vec![0]);
        let y = b.node("Squeeze", &["x", &a0], vec![]);
        let y = b.node("Sigmoid", &[&y], vec![]);
        let a2 = b.i64s(vec![2]);
        b.node("Unsqueeze", &[&y, &a2], vec![])
    });
    let perms: [[usize; 4]; 6] = [
        [0, 1, 3, 2],
        [0, 2, 3, 1],
        [0, 3, 1, 2],
        [3, 2, 1, 0],
        [1, 0, 2, 3],
        [0, 1, 2, 3],
    ];
    for (i, p) in perms.iter().enumerate() {
        case(&format!("Transpose {p:?}"), i as u64, &x, |b, _| {
            let y = b.node("Transpose", &["x"], vec![("perm", ints(p))]);
            b.node("Tanh", &[&y], vec![])
        });
    }
    for (i, (pads, value)) in [
        (vec![0, 0, 1, 2, 0, 0, 2, 1], 0.0),
        (vec![0, 1, 0, 0, 0, 0, 0, 3], -1.5),
        (vec![0, 0, 0, 0, 0, 0, 0, 0], 2.0),
    ]
    .into_iter()
    .enumerate()
    {
        case(
            &format!("Pad {pads:?} value {value}"),
            i as u64,
            &x,
            |b, _| {
                let p = b.i64s(pads.clone());
                let v = b.f32s(&[], vec![value]);
                b.node("Pad", &["x", &p, &v], vec![("mode", Attr::Str("constant"))])
            },
        );
    }
    // Reflect and edge: pads below each axis's size (reflection needs them smaller).
    for (i, (mode, pads)) in [
        ("reflect", vec![0, 0, 1, 2, 0, 0, 2, 1]),
        ("reflect", vec![0, 1, 0, 0, 0, 1, 1, 3]),
        ("edge", vec![0, 0, 3, 1, 0, 0, 0, 4]),
        ("edge", vec![0, 2, 1, 0, 0, 1, 0, 0]),
    ]
    .into_iter()
    .enumerate()
    {
        case(&format!("Pad {mode} {pads:?}"), i as u64, &x, |b, _| {
            let p = b.i64s(pads.clone());
            b.node("Pad", &["x", &p], vec![("mode", Attr::Str(mode))])
        });
    }
    // Elu and Selu after a convolution: fused into it.
    case("Conv then Selu", 3, &x, |b, r| {
        let c = x[1];
        let w = b.f32s(&[c, c, 3, 3], r.f32s(c * c * 9, -0.5, 0.5));
        let y = b.node("Conv", &["x", &w], vec![("pads", ints(&[1, 1, 1, 1]))]);
        b.node("Selu", &[&y], vec![])
    });
    for axis in 1..4 {
        case(&format!("Concat axis {axis}"), axis as u64, &x, |b, r| {
            let y = b.node("Relu", &["x"], vec![]);
            let mut cs = x.to_vec();
            cs[axis] = 2;
            let c = b.f32s(&cs, r.f32s(cs.iter().product(), -1.0, 1.0));
            let z = b.node("Sigmoid", &["x"], vec![]);
            b.node(
                "Concat",
                &[&y, &c, &z, "x"],
                vec![("axis", Attr::Int(axis as i64))],
            )
        });
    }
    case("Slice", 0, &x, |b, _| {
        let starts = b.i64s(vec![1, 0]);
        let ends = b.i64s(vec![3, 2]);
        let axes = b.i64s(vec![2, 3]);
        b.node("Slice", &["x", &starts, &ends, &axes], vec![])
    });
    // Gather with constant indices (`state[0]` as exporters write it): one index (the axis
    // goes), a progression of them, a negative one.
    for (i, (axis, indices)) in [
        (0usize, vec![]),
        (1, vec![1]),
        (2, vec![0, 1, 2]),
        (3, vec![1, 3]),
        (3, vec![-1]),
        (2, vec![2, 2]),
    ]
    .into_iter()
    .enumerate()
    {
        case(
            &format!("Gather axis {axis} {indices:?}"),
            i as u64,
            &x,
            |b, _| {
                let idx = if indices.is_empty() {
                    b.i64_scalar(0)
                } else {
                    b.i64s(indices.clone())
                };
                let y = b.node(
                    "Gather",
                    &["x", &idx],
                    vec![("axis", Attr::Int(axis as i64))],
                );
                b.node("Tanh", &[&y], vec![])
            },
        );
    }
    // Indices of rank 2 (a 2 × 2 block of the progression 0, 1, 2, 3).
    case("Gather axis 3 [[0, 1], [2, 3]]", 0, &x, |b, _| {
        let idx = b.i64s_shaped(&[2, 2], vec![0, 1, 2, 3]);
        let y = b.node("Gather", &["x", &idx], vec![("axis", Attr::Int(3))]);
        b.node("Tanh", &[&y], vec![])
    });
}

#[test]
fn softmax_and_reductions() {
    let x = [1usize, 3, 4, 5];
    for axis in [-1i64, 1, 2, 3] {
        case(&format!("Softmax axis {axis}"), 0, &x, |b, _| {
            b.node("Softmax", &["x"], vec![("axis", Attr::Int(axis))])
        });
        case(&format!("LogSoftmax axis {axis}"), 0, &x, |b, _| {
            b.node("LogSoftmax", &["x"], vec![("axis", Attr::Int(axis))])
        });
    }
    for (i, (axes, keep)) in [
        (vec![1], 1),
        (vec![2, 3], 1),
        (vec![2, 3], 0),
        (vec![1, 2], 0),
        (vec![3], 0),
        (vec![-1], 1),
    ]
    .into_iter()
    .enumerate()
    {
        for op in ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"] {
            case(
                &format!("{op} axes {axes:?} keepdims {keep}"),
                i as u64,
                &x,
                |b, _| {
                    if op == "ReduceSum" {
                        let a = b.i64s(axes.clone());
                        b.node(op, &["x", &a], vec![("keepdims", Attr::Int(keep))])
                    } else {
                        b.node(
                            op,
                            &["x"],
                            vec![
                                ("axes", Attr::Ints(axes.clone())),
                                ("keepdims", Attr::Int(keep)),
                            ],
                        )
                    }
                },
            );
        }
    }
}
