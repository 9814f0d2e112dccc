"""Exporter-shaped models, each beside a clean twin of the same network, for
tests/exporters.rs. For a model NAME this writes, under tests/models/exporters/:

  NAME.onnx          the graph as an exporter writes it
  NAME_clean.onnx    the same network written plainly (NCHW, activations as ops): the
                     same function of the same input (weights permuted where layouts differ)
  NAME.input.bin     a deterministic input, float32 little-endian, C order
  NAME.output.bin    onnxruntime's output of NAME.onnx on it (graph optimisations off: the
                     graph's own arithmetic)

- keras_cnn: as tf2onnx writes a Keras CNN: a flat input reshaped to NHWC with one channel,
  a Transpose to NCHW before each convolution and pooling and one back after it (the
  activations between run channels last), BatchNorm folded into the convolutions,
  `LeakyRelu` then `Max(x, c)` with a `[1, 1, 1, 1]` constant as the clamp, MaxPool between
  blocks, NHWC flatten into the dense layer.
- tf_mobilenet: a MobileNetV1-style stack as tf2onnx writes it: NHWC input, a Transpose
  sandwich around every convolution, ReLU6 as `Clip` between them (channels last), and a
  Keras PReLU after the first (its slopes channels last, `[1, 1, C]`).
- gated_cnn: a MobileNetV3-style stack with its activations spelled as exporters write
  them (PRelu capped by `Min`, HardSwish as `x · HardSigmoid(x)` and `x · relu6(x + 3) / 6`,
  hard sigmoid as `relu6(x + 3) · (1 / 6)`, SiLU as `x · Sigmoid(x)`); its clean twin uses
  the ONNX ops.
- tf_stem: three stride-1 convolutions as tf2onnx writes them (NHWC input, sandwiches),
  ending in `ReduceMean` over the channels-last axes 1 and 2.
- torch_head: a wake-word head as PyTorch's exporter writes it: `Gemm → LayerNorm → ReLU`
  twice, then a classifier, the LayerNorm spelled out (ReduceMean, Sub, Pow, ReduceMean,
  Add, Sqrt, Div, Mul, Add); its clean twin uses ONNX `LayerNormalization`.

And an int8 (QDQ) twin of torch_head, for the int8 LayerNorm:

  torch_head_qdq.onnx         torch_head_clean quantized by onnxruntime's static quantizer
                              (QDQ, per-channel int8 weights, int8 activations): its
                              `LayerNormalization`s run between DequantizeLinear and
                              QuantizeLinear
  torch_head_qdq.output.bin   onnxruntime's output on torch_head.input.bin
  torch_head_qdq.ln.bin       onnxruntime's int8 value of each LayerNormalization's output
                              (its QuantizeLinear), in graph order, concatenated
  layer_norm_broadcast_qdq.*  a QDQ LayerNormalization over axes 1, 2 of [1, 4, 6] whose
                              scale and bias are [4, 1] (broadcast, not a trailing vector),
                              with onnxruntime's output

Run:  python3 tests/make_exporter_models.py   (needs: pip install onnx onnxruntime numpy)
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_models import Net  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "exporters")

TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]


def build(n, x_shape, out_name):
    """As `Net.build`, opset 17 (tf2onnx's default)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)
    graph = helper.make_graph(n.nodes, n.name, [x], [y], n.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="microarena-tests")
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    model.graph.output[0].CopyFrom(inferred.graph.output[0])
    onnx.checker.check_model(model, full_check=True)
    return model


def keras_cnn(exported):
    """Two blocks of two 3×3 convolutions (LeakyRelu 0.1, clamp at -0.5), MaxPool after each,
    a dense layer of 10 and a softmax; 28×28 single-channel input."""
    n = Net("keras_cnn" if exported else "keras_cnn_clean", 41)
    side, widths = 28, [(1, 16), (16, 16), (16, 32), (32, 32)]
    convs = [(n.weights((co, ci, 3, 3), ci * 9), n.rng.normal(0, 0.1, size=co).astype(np.float32))
             for ci, co in widths]
    dense_in = (side // 4) * (side // 4) * 32
    dense_w = n.weights((dense_in, 10), dense_in)  # rows in NHWC flatten order (h, w, c)
    dense_b = n.rng.normal(0, 0.1, size=10).astype(np.float32)
    clamp = n.const(np.full((1, 1, 1, 1), -0.5, dtype=np.float32), "clamp")
    if exported:
        x = n.node("Reshape", ["input", n.const_i64([1, side, side, 1])], "nhwc")
    else:
        x = n.node("Reshape", ["input", n.const_i64([1, 1, side, side])], "nchw")
    for i, (w, b) in enumerate(convs):
        if exported:
            x = n.node("Transpose", [x], perm=TO_NCHW)
        x = n.node("Conv", [x, n.const(w), n.const(b)], "conv", kernel_shape=[3, 3],
                   pads=[1, 1, 1, 1], strides=[1, 1])
        if exported:
            x = n.node("Transpose", [x], perm=TO_NHWC)
        x = n.node("LeakyRelu", [x], alpha=0.1)
        x = n.node("Max", [x, clamp], "clamp")
        if i % 2 == 1:
            if exported:
                x = n.node("Transpose", [x], perm=TO_NCHW)
            x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
            if exported:
                x = n.node("Transpose", [x], perm=TO_NHWC)
    q = side // 4
    if exported:
        x = n.node("Reshape", [x, n.const_i64([1, dense_in])], "flat")
        w = dense_w
    else:
        x = n.node("Flatten", [x], "flat", axis=1)
        # The same weights for the NCHW flatten order (c, h, w).
        w = dense_w.reshape(q, q, 32, 10).transpose(2, 0, 1, 3).reshape(dense_in, 10)
    x = n.node("MatMul", [x, n.const(w)], "dense")
    x = n.node("Add", [x, n.const(dense_b)], "logits")
    y = n.node("Softmax", [x], "probs", axis=-1)
    return build(n, [1, side * side], y), [1, side * side]


def tf_mobilenet(exported):
    """A MobileNetV1-0.25-style stack on 48×48 RGB: a strided 3×3 convolution (PReLU), then
    depthwise 3×3 + pointwise pairs (strides 1, 2, 1, 2, 1), ReLU6 after each, global
    average, dense."""
    n = Net("tf_mobilenet" if exported else "tf_mobilenet_clean", 42)
    side = 48

    def conv(x, ci, co, k, stride, group, prelu=False):
        w = n.const(n.weights((co, ci // group, k, k), ci // group * k * k))
        b = n.const(n.rng.normal(0, 0.1, size=co))
        if exported:
            x = n.node("Transpose", [x], perm=TO_NCHW)
        p = k // 2
        x = n.node("Conv", [x, w, b], "conv", kernel_shape=[k, k], strides=[stride, stride],
                   pads=[p, p, p, p], group=group)
        if exported:
            x = n.node("Transpose", [x], perm=TO_NHWC)
        if prelu:
            # Keras' PReLU: its slopes per channel, channels last where exported.
            slopes = n.rng.uniform(0.05, 0.3, size=co).astype(np.float32)
            shape = (1, 1, co) if exported else (co, 1, 1)
            return n.node("PRelu", [x, n.const(slopes.reshape(shape), "slope")])
        return n.relu6(x)

    x = conv("input", 3, 8, 3, 2, 1, prelu=True)
    c = 8
    for co, stride in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1)]:
        x = conv(x, c, c, 3, stride, c)
        x = conv(x, c, co, 1, 1, 1)
        c = co
    if exported:
        x = n.node("ReduceMean", [x], "mean", axes=[1, 2], keepdims=0)
    else:
        x = n.node("GlobalAveragePool", [x], "pool")
        x = n.node("Flatten", [x], "flat", axis=1)
    x = n.gemm(x, c, 2)
    y = n.node("Softmax", [x], "probs", axis=-1)
    shape = [1, side, side, 3] if exported else [1, 3, side, side]
    return build(n, shape, y), shape


def tf_stem(exported):
    """Three 3×3 convolutions at stride 1 on 32×32 RGB (ReLU after each) as tf2onnx writes
    them, NHWC input, a Transpose sandwich around each, then `ReduceMean` over the
    channels-last spatial axes 1 and 2 and a dense layer; the clean twin: NCHW,
    GlobalAveragePool."""
    n = Net("tf_stem" if exported else "tf_stem_clean", 45)
    x, c = "input", 3
    for co in [16, 16, 24]:
        if exported:
            x = n.node("Transpose", [x], perm=TO_NCHW)
        x = n.conv(x, c, co, 3)
        if exported:
            x = n.node("Transpose", [x], perm=TO_NHWC)
        x = n.relu(x)
        c = co
    if exported:
        x = n.node("ReduceMean", [x], "mean", axes=[1, 2], keepdims=0)
    else:
        x = n.node("Flatten", [n.node("GlobalAveragePool", [x], "pool")], "flat", axis=1)
    x = n.gemm(x, c, 4)
    shape = [1, 32, 32, 3] if exported else [1, 3, 32, 32]
    return build(n, shape, x), shape


def torch_head(exported):
    """64 features → 128 → 64 → 12 classes, a LayerNorm and a ReLU after each hidden layer."""
    n = Net("torch_head" if exported else "torch_head_clean", 43)

    def layer_norm(x, c):
        gamma = n.rng.uniform(0.5, 1.5, size=c).astype(np.float32)
        beta = n.rng.normal(0, 0.1, size=c).astype(np.float32)
        if not exported:
            return n.node("LayerNormalization", [x, n.const(gamma), n.const(beta)], "ln",
                          axis=-1, epsilon=1e-5)
        mean = n.node("ReduceMean", [x], "mean", axes=[-1], keepdims=1)
        d = n.node("Sub", [x, mean], "centred")
        sq = n.node("Pow", [d, n.const(2.0, "two")], "squared")
        var = n.node("ReduceMean", [sq], "var", axes=[-1], keepdims=1)
        std = n.node("Sqrt", [n.node("Add", [var, n.const(1e-5, "eps")], "var_eps")], "std")
        y = n.node("Div", [d, std], "normed")
        return n.node("Add", [n.node("Mul", [y, n.const(gamma)], "scaled"), n.const(beta)], "ln")

    x = "input"
    for k, m in [(64, 128), (128, 64)]:
        x = n.relu(layer_norm(n.gemm(x, k, m), m))
    x = n.gemm(x, 64, 12)
    y = n.node("Softmax", [x], "probs", axis=-1)
    return build(n, [1, 64], y), [1, 64]


def gated_cnn(exported):
    """A MobileNetV3-style stack on 48×48 RGB with the activations exporters spell out:
    PRelu (per-channel slopes) capped by `Min`; HardSwish as PyTorch's opset-13 exporter
    writes it (`x · HardSigmoid(x)`) and as tf2onnx writes Keras' `x · relu6(x + 3) / 6`;
    Keras' hard sigmoid `relu6(x + 3) · (1 / 6)`; SiLU as `x · Sigmoid(x)`; a PRelu after
    a MaxPool (no producer to fuse into). The clean twin has ONNX `HardSwish` and
    `HardSigmoid` ops (`Clip` for the cap); SiLU, which has no ONNX op at opset 17, is
    spelled the same in both."""
    n = Net("gated_cnn" if exported else "gated_cnn_clean", 44)
    side = 48

    def scalar(v, base):
        return n.const(np.float32(v).reshape(()), base)

    def prelu(x, c):
        return n.node("PRelu", [x, n.const(n.rng.uniform(0.05, 0.3, size=(c, 1, 1)), "slope")])

    def hard_swish(x, keras):
        if not exported:
            return n.node("HardSwish", [x])
        if keras:
            gate = n.node("Clip", [n.node("Add", [x, scalar(3.0, "three")]), scalar(0.0, "lo"),
                                   scalar(6.0, "hi")], "relu6")
            return n.node("Div", [n.node("Mul", [x, gate]), scalar(6.0, "six")], "hswish")
        return n.node("Mul", [x, n.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)], "hswish")

    x = prelu(n.conv("input", 3, 16, 3, stride=2), 16)
    if exported:
        x = n.node("Min", [x, n.const(np.full((1, 1, 1, 1), 4.0, np.float32), "cap")])
    else:
        x = n.node("Clip", [x, n.const(np.float32(-np.inf).reshape(()), "lo"), scalar(4.0, "hi")])
    x = hard_swish(n.conv(x, 16, 16, 3, group=16), keras=False)
    x = hard_swish(n.conv(x, 16, 24, 1), keras=True)
    x = n.conv(x, 24, 24, 3, group=24)
    if exported:
        x = n.node("Mul", [n.node("Clip", [n.node("Add", [x, scalar(3.0, "three")]),
                                           scalar(0.0, "lo"), scalar(6.0, "hi")], "relu6"),
                           scalar(1.0 / 6.0, "sixth")], "hsigmoid")
    else:
        x = n.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    x = n.conv(x, 24, 32, 1)
    x = n.node("Mul", [x, n.node("Sigmoid", [x])], "silu")
    x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = prelu(x, 32)
    x = hard_swish(n.conv(x, 32, 32, 3, stride=2), keras=True)
    x = n.node("GlobalAveragePool", [x], "pool")
    x = n.node("Flatten", [x], "flat", axis=1)
    y = n.node("Softmax", [n.gemm(x, 32, 5)], "probs", axis=-1)
    return build(n, [1, 3, side, side], y), [1, 3, side, side]


def torch_head_qdq():
    """torch_head_clean quantized (see the module's doc), with onnxruntime's outputs."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(2001)
            self.data = [{"input": rng.uniform(-1, 1, size=(1, 64)).astype(np.float32)}
                         for _ in range(32)]

        def get_next(self):
            return self.data.pop() if self.data else None

    src = os.path.join(OUT, "torch_head_clean.onnx")
    path = os.path.join(OUT, "torch_head_qdq.onnx")
    quantize_static(src, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    model = onnx.load(path)
    lns = [n.output[0] for n in model.graph.node if n.op_type == "LayerNormalization"]
    quantized = [n.output[0] for n in model.graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] in lns]
    assert len(quantized) == len(lns) == 2, (lns, quantized)
    for name in quantized:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.INT8, None))
    x = np.fromfile(os.path.join(OUT, "torch_head.input.bin"), dtype="<f4").reshape(1, 64)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, *ln = sess.run(None, {"input": x})
    np.asarray(y, dtype="<f4").tofile(os.path.join(OUT, "torch_head_qdq.output.bin"))
    np.concatenate([v.reshape(-1) for v in ln]).astype(np.int8).tofile(
        os.path.join(OUT, "torch_head_qdq.ln.bin"))
    print(f"torch_head_qdq: {len(model.graph.node)} nodes, output {list(y.shape)}")


def layer_norm_broadcast_qdq():
    """A QDQ `LayerNormalization` over axes 1 and 2 of `[1, 4, 6]` (after a MatMul) whose scale
    and bias are `[4, 1]`: numpy broadcasting along the normalised axes, not a trailing
    vector; a Relu after it. Writes layer_norm_broadcast_qdq.onnx, .input.bin and
    .output.bin (onnxruntime)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnx import numpy_helper
    rng = np.random.default_rng(2002)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, size=(4, 1)).astype(np.float32), "g"),
             numpy_helper.from_array(rng.normal(0, 0.2, size=(4, 1)).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 0.3, size=(6, 6)).astype(np.float32), "w")]
    nodes = [helper.make_node("MatMul", ["input", "w"], ["mm"]),
             helper.make_node("LayerNormalization", ["mm", "g", "b"], ["ln"], axis=1,
                              epsilon=1e-5),
             helper.make_node("Relu", ["ln"], ["out"])]
    graph = helper.make_graph(
        nodes, "layer_norm_broadcast",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 6])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    src = os.path.join(OUT, "layer_norm_broadcast.onnx")
    onnx.save(model, src)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = [{"input": rng.uniform(-1, 1, size=(1, 4, 6)).astype(np.float32)}
                         for _ in range(16)]

        def get_next(self):
            return self.data.pop() if self.data else None

    path = os.path.join(OUT, "layer_norm_broadcast_qdq.onnx")
    quantize_static(src, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=False,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    os.remove(src)
    x = rng.uniform(-1, 1, size=(1, 4, 6)).astype(np.float32)
    x.astype("<f4").tofile(os.path.join(OUT, "layer_norm_broadcast_qdq.input.bin"))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x})
    np.asarray(y, dtype="<f4").tofile(os.path.join(OUT, "layer_norm_broadcast_qdq.output.bin"))
    print(f"layer_norm_broadcast_qdq: output {list(y.shape)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for make in [keras_cnn, tf_mobilenet, tf_stem, torch_head, gated_cnn]:
        name = make.__name__
        rng = np.random.default_rng(2000)
        outputs = []
        for exported in [True, False]:
            model, shape = make(exported)
            file = name if exported else name + "_clean"
            path = os.path.join(OUT, file + ".onnx")
            onnx.save(model, path)
            if exported:
                x = rng.uniform(-1, 1, size=shape).astype(np.float32)
                x.astype("<f4").tofile(os.path.join(OUT, name + ".input.bin"))
                feed = x
            else:
                # The clean twin reads the same values channels first (where the exported
                # model reads them channels last).
                feed = x.transpose(0, 3, 1, 2) if x.ndim == 4 and list(x.shape) != shape else x
                feed = np.ascontiguousarray(feed).reshape(shape)
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            (y,) = sess.run(None, {"input": feed})
            outputs.append(y)
            if exported:
                np.asarray(y, dtype="<f4").tofile(os.path.join(OUT, name + ".output.bin"))
            print(f"{file}: {len(model.graph.node)} nodes, output {list(y.shape)}")
        gap = float(np.max(np.abs(outputs[0] - outputs[1])))
        assert gap < 1e-5, f"{name}: the clean twin differs by {gap}"
    torch_head_qdq()
    layer_norm_broadcast_qdq()
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
