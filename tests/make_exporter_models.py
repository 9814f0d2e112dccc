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
  sandwich around every convolution, ReLU6 as `Clip` between them (channels last).
- torch_head: a wake-word head as PyTorch's exporter writes it: `Gemm → LayerNorm → ReLU`
  twice, then a classifier, the LayerNorm spelled out (ReduceMean, Sub, Pow, ReduceMean,
  Add, Sqrt, Div, Mul, Add); its clean twin uses ONNX `LayerNormalization`.

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
    """A MobileNetV1-0.25-style stack on 48×48 RGB: a strided 3×3 convolution, then depthwise
    3×3 + pointwise pairs (strides 1, 2, 1, 2, 1), ReLU6 after each, global average, dense."""
    n = Net("tf_mobilenet" if exported else "tf_mobilenet_clean", 42)
    side = 48

    def conv(x, ci, co, k, stride, group):
        w = n.const(n.weights((co, ci // group, k, k), ci // group * k * k))
        b = n.const(n.rng.normal(0, 0.1, size=co))
        if exported:
            x = n.node("Transpose", [x], perm=TO_NCHW)
        p = k // 2
        x = n.node("Conv", [x, w, b], "conv", kernel_shape=[k, k], strides=[stride, stride],
                   pads=[p, p, p, p], group=group)
        if exported:
            x = n.node("Transpose", [x], perm=TO_NHWC)
        return n.relu6(x)

    x = conv("input", 3, 8, 3, 2, 1)
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


def main():
    os.makedirs(OUT, exist_ok=True)
    for make in [keras_cnn, tf_mobilenet, torch_head]:
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
                # The clean twin reads the same values channels first.
                feed = x.transpose(0, 3, 1, 2) if x.ndim == 4 else x
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
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
