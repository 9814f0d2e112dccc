#!/usr/bin/env python3
"""Generate tests/models/interface/: models whose interface is as people export them.

  vad_like.onnx   three inputs, like Silero VAD's: `input` [batch, 16] float, `state`
                  [2, batch, 8] float and `sr`, an int64 scalar (the sample rate) that an
                  `If` tests; two outputs, `output` [batch, 1] and `stateN` [2, batch, 8]
                  (the next call's state). Built to be compiled with
                  `input_shape = { "input": [1, 16], "state": [2, 1, 8] }` and
                  `const_input = { "sr": 16000 }`.
  squeeze_if.onnx `x` [batch, 8] through `squeeze(0)` as torch exports it (an `If` on
                  `Shape(x)[0] == 1` whose branches differ in rank), then Relu.
  kws_lstm.onnx   keyword spotting as a streaming recurrent model: `mfcc` [1, 49, 10]
  kws_gru.onnx    (49 frames of 10 MFCCs, batch first as torch exports it), an LSTM (GRU,
                  `linear_before_reset = 1` as torch exports it) of 64 units over the 49
                  frames from the state `h` (and `c`) [1, 1, 64], then a dense layer to 12
                  classes: outputs `logits` [1, 12] and the next state `hN` (and `cN`).

For the keyword-spotting models, NAME.X.bin holds ten calls in a row instead, the state
carried from zeros (each call's `hN`/`cN` is the next call's `h`/`c`): `mfcc` 10 x 490
values, and per call the outputs onnxruntime computes.

For each model NAME this writes, per graph input and output X, NAME.X.bin (float32,
little-endian, C order): the inputs of a deterministic call and onnxruntime's outputs for it
with sr = 16000.

Run:  python3 tests/gen_interface.py   (needs: pip install onnx onnxruntime numpy)
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "interface")


def vad_like():
    rng = np.random.default_rng(31)

    def const(name, arr):
        return numpy_helper.from_array(np.asarray(arr), name)

    inits = [
        const("w1", rng.normal(0, 0.4, (16, 8)).astype(np.float32)),
        const("b1", rng.normal(0, 0.1, (8,)).astype(np.float32)),
        const("w2", rng.normal(0, 0.4, (8, 1)).astype(np.float32)),
        const("half", np.float32(0.5)),
        const("rate16k", np.int64(16000)),
        const("axis0", np.array([0], dtype=np.int64)),
    ]
    # The branches read `h` from the enclosing graph, as exported `If`s do.
    then_g = helper.make_graph(
        [helper.make_node("Mul", ["h", "k16"], ["g16"], name="scale16k")],
        "then", [], [helper.make_tensor_value_info("g16", TensorProto.FLOAT, None)],
        [const("k16", np.float32(1.0))])
    else_g = helper.make_graph(
        [helper.make_node("Mul", ["h", "k8"], ["g8"], name="scale8k")],
        "else", [], [helper.make_tensor_value_info("g8", TensorProto.FLOAT, None)],
        [const("k8", np.float32(2.0))])
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["xw"], name="dense1"),
        helper.make_node("Add", ["xw", "b1"], ["xb"], name="bias1"),
        helper.make_node("Relu", ["xb"], ["h"], name="relu1"),
        helper.make_node("Equal", ["sr", "rate16k"], ["is16k"], name="is16k"),
        helper.make_node("If", ["is16k"], ["g"], name="by_rate", then_branch=then_g,
                         else_branch=else_g),
        helper.make_node("Mul", ["state", "half"], ["decayed"], name="decay"),
        helper.make_node("Unsqueeze", ["g", "axis0"], ["g1"], name="lift"),
        helper.make_node("Add", ["decayed", "g1"], ["stateN"], name="carry"),
        helper.make_node("MatMul", ["g", "w2"], ["logit"], name="dense2"),
        helper.make_node("Sigmoid", ["logit"], ["output"], name="prob"),
    ]
    graph = helper.make_graph(
        nodes, "vad_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 16]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 8]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", 8])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    feeds = {
        "input": rng.uniform(-1, 1, (1, 16)).astype(np.float32),
        "state": rng.uniform(-1, 1, (2, 1, 8)).astype(np.float32),
        "sr": np.array(16000, dtype=np.int64),
    }
    return model, feeds


def squeeze_if():
    """`squeeze(dim)` as torch exports it: an `If` on `Shape(x)[0] == 1` whose branches
    (Squeeze, Identity) differ in rank, which only pinning the shape decides."""
    rng = np.random.default_rng(32)
    axes = numpy_helper.from_array(np.array([0], dtype=np.int64), "axes")
    then_g = helper.make_graph(
        [helper.make_node("Squeeze", ["x", "axes"], ["squeezed"], name="squeeze")],
        "then", [], [helper.make_tensor_value_info("squeezed", TensorProto.FLOAT, None)])
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["same"], name="same")],
        "else", [], [helper.make_tensor_value_info("same", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="batch", axis=0),
        helper.make_node("Equal", ["batch", "one"], ["single"], name="single"),
        helper.make_node("If", ["single"], ["y"], name="squeeze_if", then_branch=then_g,
                         else_branch=else_g),
        helper.make_node("Relu", ["y"], ["output"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "squeeze_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        # Rank 1 for a batch of one (the case pinned here), 2 otherwise: declared as rank 1.
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n"])],
        [axes, numpy_helper.from_array(np.int64(0), "zero"),
         numpy_helper.from_array(np.int64(1), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, {"x": rng.uniform(-1, 1, (1, 8)).astype(np.float32)}


def kws(cell):
    """A 49 x 10 MFCC keyword spotter around one recurrent layer of 64 units."""
    rng = np.random.default_rng(33 if cell == "LSTM" else 34)
    hidden, feats, frames, classes = 64, 10, 49, 12
    gates = 4 if cell == "LSTM" else 3
    lstm = cell == "LSTM"

    def const(name, arr):
        return numpy_helper.from_array(np.asarray(arr), name)

    inits = [
        const("W", rng.normal(0, 0.3, (1, gates * hidden, feats)).astype(np.float32)),
        const("R", rng.normal(0, 0.15, (1, gates * hidden, hidden)).astype(np.float32)),
        const("B", rng.normal(0, 0.1, (1, 2 * gates * hidden)).astype(np.float32)),
        const("fc_w", rng.normal(0, 0.2, (classes, hidden)).astype(np.float32)),
        const("fc_b", rng.normal(0, 0.1, (classes,)).astype(np.float32)),
        const("flat", np.array([1, hidden], dtype=np.int64)),
    ]
    attrs = {"hidden_size": hidden}
    if not lstm:
        attrs["linear_before_reset"] = 1
    rnn_in = ["x", "W", "R", "B", "", "h"] + (["c"] if lstm else [])
    rnn_out = ["y", "hN"] + (["cN"] if lstm else [])
    nodes = [
        helper.make_node("Transpose", ["mfcc"], ["x"], perm=[1, 0, 2], name="time_major"),
        helper.make_node(cell, rnn_in, rnn_out, name=cell.lower(), **attrs),
        helper.make_node("Reshape", ["hN", "flat"], ["last"], name="last"),
        helper.make_node("Gemm", ["last", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    state = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, hidden])
    inputs = [helper.make_tensor_value_info("mfcc", TensorProto.FLOAT, [1, frames, feats]),
              state("h")] + ([state("c")] if lstm else [])
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes]),
               state("hN")] + ([state("cN")] if lstm else [])
    graph = helper.make_graph(nodes, "kws_" + cell.lower(), inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    # Ten windows of smooth "MFCC" tracks (sines of random frequency) with noise.
    t = np.arange(frames)[None, :, None]
    calls = [(np.sin(t * rng.uniform(0.05, 0.5, (1, 1, feats)) + rng.uniform(0, 6, (1, 1, feats)))
              + rng.normal(0, 0.2, (1, frames, feats))).astype(np.float32) for _ in range(10)]
    return model, calls


def kws_sequence(cell):
    """Writes the model and its ten-call reference (state carried from zeros)."""
    model, calls = kws(cell)
    name = "kws_" + cell.lower()
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(model, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    states = {s: np.zeros((1, 1, 64), np.float32) for s in (["h", "c"] if cell == "LSTM" else ["h"])}
    outs = {o.name: [] for o in sess.get_outputs()}
    for mfcc in calls:
        got = sess.run(None, {"mfcc": mfcc, **states})
        for o, v in zip(sess.get_outputs(), got):
            outs[o.name].append(v)
        for s in states:
            states[s] = outs[s + "N"][-1]
    np.concatenate([c.ravel() for c in calls]).astype("<f4").tofile(
        os.path.join(OUT, f"{name}.mfcc.bin"))
    for k, vs in outs.items():
        np.concatenate([v.ravel() for v in vs]).astype("<f4").tofile(
            os.path.join(OUT, f"{name}.{k}.bin"))
    print(f"{name}: 10 calls, logits of the last {np.round(outs['logits'][-1].ravel()[:4], 3)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for make in [vad_like, squeeze_if]:
        model, feeds = make()
        name = make.__name__
        path = os.path.join(OUT, name + ".onnx")
        onnx.save(model, path)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        outs = sess.run(None, feeds)
        for k, v in feeds.items():
            if v.dtype == np.float32:
                v.astype("<f4").tofile(os.path.join(OUT, f"{name}.{k}.bin"))
        for o, v in zip(sess.get_outputs(), outs):
            np.asarray(v, dtype="<f4").tofile(os.path.join(OUT, f"{name}.{o.name}.bin"))
        print(f"{name}: outputs {[list(np.shape(v)) for v in outs]}")
    kws_sequence("LSTM")
    kws_sequence("GRU")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
