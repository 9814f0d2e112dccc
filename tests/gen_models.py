#!/usr/bin/env python3
"""Generate the whole-model test networks in tests/models/ and their reference outputs.

Every network is built with onnx.helper and numpy (fixed seeds), checked with onnx.checker,
and run with onnxruntime on a deterministic input. For a model NAME this writes:

  NAME.onnx         the model (opset 14, float32, NCHW, batch 1)
  NAME.input.bin    the input tensor, float32 little-endian, C order
  NAME.output.bin   onnxruntime's output for that input, float32 little-endian, C order

Run:  python3 tests/gen_models.py [NAME ...]   (needs: pip install onnx onnxruntime numpy)
The output is deterministic for a given onnxruntime version; the committed files came from
the versions printed at the end of the run.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
OPSET = 14


class Net:
    """A tiny graph builder: every method adds one node and returns its output name."""

    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.counter = 0

    def fresh(self, base):
        self.counter += 1
        return f"{base}_{self.counter}"

    def const(self, arr, base="w"):
        n = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), n))
        return n

    def const_i64(self, arr, base="shape"):
        n = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.int64), n))
        return n

    def node(self, op, inputs, base=None, n_out=1, **attrs):
        outs = [self.fresh(base or op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.fresh(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def weights(self, shape, fan_in):
        return self.rng.normal(0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)

    def conv(self, x, cin, cout, k, stride=1, pad=None, group=1, dilation=1, bias=True, auto_pad=None):
        w = self.const(self.weights((cout, cin // group, k, k), cin // group * k * k))
        ins = [x, w]
        if bias:
            ins.append(self.const(self.rng.normal(0, 0.1, size=cout)))
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], group=group,
                     dilations=[dilation, dilation])
        if auto_pad is not None:
            attrs["auto_pad"] = auto_pad
        else:
            p = (k // 2) * dilation if pad is None else pad
            attrs["pads"] = [p, p, p, p]
        return self.node("Conv", ins, "conv", **attrs)

    def bn(self, x, c):
        scale = self.const(self.rng.uniform(0.5, 1.5, size=c))
        bias = self.const(self.rng.normal(0, 0.1, size=c))
        mean = self.const(self.rng.normal(0, 0.1, size=c))
        var = self.const(self.rng.uniform(0.5, 1.5, size=c))
        return self.node("BatchNormalization", [x, scale, bias, mean, var], "bn", epsilon=1e-5)

    def relu(self, x):
        return self.node("Relu", [x])

    def relu6(self, x):
        return self.node("Clip", [x, self.const(0.0, "min"), self.const(6.0, "max")], "relu6")

    def gemm(self, x, k, n, trans_b=1, alpha=1.0, beta=1.0):
        w = self.weights((n, k) if trans_b else (k, n), k)
        return self.node("Gemm", [x, self.const(w), self.const(self.rng.normal(0, 0.1, size=n))],
                         "fc", transB=trans_b, alpha=alpha, beta=beta)

    def build(self, x_shape, out_name, out_shape=None):
        x = helper.make_tensor_value_info("input", TensorProto.FLOAT, x_shape)
        y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)
        graph = helper.make_graph(self.nodes, self.name, [x], [y], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="microarena-tests")
        model.ir_version = 8
        # The output shape is left to shape inference; the checker wants it stated.
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        model.graph.output[0].CopyFrom(inferred.graph.output[0])
        onnx.checker.check_model(model, full_check=True)
        return model


def chain():
    """The seed report's network: conv-relu-conv-relu-maxpool-flatten-dense-relu-dense-softmax."""
    n = Net("chain", 1)
    x = n.relu(n.conv("input", 3, 16, 3, pad=0))
    x = n.relu(n.conv(x, 16, 16, 3, pad=0))
    x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = n.node("Flatten", [x], axis=1)
    x = n.relu(n.gemm(x, 16 * 14 * 14, 128))
    x = n.gemm(x, 128, 10)
    y = n.node("Softmax", [x], "probs", axis=1)
    return n.build([1, 3, 32, 32], y), [1, 3, 32, 32]


def residual():
    """A small ResNet: BN folded into convs, identity and 1x1-stride-2 projection shortcuts."""
    n = Net("residual", 2)

    def block(x, cin, cout, stride):
        y = n.relu(n.bn(n.conv(x, cin, cout, 3, stride=stride, bias=False), cout))
        y = n.bn(n.conv(y, cout, cout, 3, bias=False), cout)
        if stride != 1 or cin != cout:
            x = n.bn(n.conv(x, cin, cout, 1, stride=stride, pad=0, bias=False), cout)
        return n.relu(n.node("Add", [x, y]))

    x = n.relu(n.bn(n.conv("input", 3, 8, 3, bias=False), 8))
    x = block(x, 8, 8, 1)
    x = block(x, 8, 16, 2)
    x = block(x, 16, 16, 1)
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Flatten", [x])
    y = n.gemm(x, 16, 10)
    return n.build([1, 3, 24, 24], y), [1, 3, 24, 24]


def inception():
    """Inception-style modules: 1x1, 3x3, 5x5 (as dilated 3x3) and pool branches concatenated."""
    n = Net("inception", 3)

    def module(x, cin, c1, c3r, c3, c5r, c5, cp):
        b1 = n.relu(n.conv(x, cin, c1, 1, pad=0))
        b3 = n.relu(n.conv(n.relu(n.conv(x, cin, c3r, 1, pad=0)), c3r, c3, 3))
        b5 = n.relu(n.conv(n.relu(n.conv(x, cin, c5r, 1, pad=0)), c5r, c5, 3, dilation=2))
        bp = n.node("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
        bp = n.relu(n.conv(bp, cin, cp, 1, pad=0))
        return n.node("Concat", [b1, b3, b5, bp], axis=1), c1 + c3 + c5 + cp

    x = n.relu(n.conv("input", 3, 16, 3, stride=2, auto_pad="SAME_UPPER"))
    x, c = module(x, 16, 8, 12, 16, 4, 8, 8)
    x = n.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    x, c = module(x, c, 16, 16, 24, 4, 8, 8)
    x = n.node("AveragePool", [x], kernel_shape=[8, 8])
    x = n.node("Flatten", [x])
    y = n.gemm(x, c, 10)
    return n.build([1, 3, 32, 32], y), [1, 3, 32, 32]


def dwsep():
    """Depthwise-separable net (MobileNetV1 style) with BatchNorm and ReLU6 (Clip)."""
    n = Net("dwsep", 4)

    def dws(x, cin, cout, stride):
        x = n.relu6(n.bn(n.conv(x, cin, cin, 3, stride=stride, group=cin, bias=False), cin))
        return n.relu6(n.bn(n.conv(x, cin, cout, 1, pad=0, bias=False), cout))

    x = n.relu6(n.bn(n.conv("input", 3, 8, 3, stride=2, bias=False), 8))
    x = dws(x, 8, 16, 1)
    x = dws(x, 16, 32, 2)
    x = dws(x, 32, 32, 1)
    x = dws(x, 32, 64, 2)
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Reshape", [x, n.const_i64([1, -1])])
    y = n.gemm(x, 64, 10)
    return n.build([1, 3, 32, 32], y), [1, 3, 32, 32]


def mobilenetv2():
    """MobileNetV2-style inverted residuals with linear bottlenecks, HardSwish and SAME padding."""
    n = Net("mobilenetv2", 5)

    def inverted(x, cin, cout, expand, stride):
        h = cin * expand
        y = n.node("HardSwish", [n.bn(n.conv(x, cin, h, 1, pad=0, bias=False), h)])
        y = n.relu6(n.bn(n.conv(y, h, h, 3, stride=stride, group=h, bias=False), h))
        y = n.bn(n.conv(y, h, cout, 1, pad=0, bias=False), cout)
        if stride == 1 and cin == cout:
            y = n.node("Add", [x, y])
        return y

    x = n.relu6(n.bn(n.conv("input", 3, 8, 3, stride=2, bias=False), 8))
    x = inverted(x, 8, 8, 1, 1)
    x = inverted(x, 8, 12, 4, 2)
    x = inverted(x, 12, 12, 4, 1)
    x = inverted(x, 12, 16, 4, 2)
    x = inverted(x, 16, 16, 4, 1)
    x = n.relu6(n.bn(n.conv(x, 16, 64, 1, pad=0, bias=False), 64))
    x = n.node("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
               count_include_pad=0, ceil_mode=1)
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Flatten", [x])
    x = n.node("Dropout", [x])
    y = n.gemm(x, 64, 10)
    return n.build([1, 3, 32, 32], y), [1, 3, 32, 32]


def densenet():
    """A DenseNet-style block: every layer sees the concat of all earlier ones; transition pool."""
    n = Net("densenet", 6)
    growth = 6
    x = n.conv("input", 3, 12, 3, bias=False)
    c = 12
    for block in range(2):
        for _ in range(4):
            y = n.relu(n.bn(x, c))
            y = n.relu(n.bn(n.conv(y, c, 2 * growth, 1, pad=0, bias=False), 2 * growth))
            y = n.conv(y, 2 * growth, growth, 3, bias=False)
            x = n.node("Concat", [x, y], axis=1)
            c += growth
        if block == 0:
            x = n.relu(n.bn(x, c))
            x = n.conv(x, c, c // 2, 1, pad=0, bias=False)
            c //= 2
            x = n.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = n.relu(n.bn(x, c))
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Flatten", [x])
    y = n.gemm(x, c, 10)
    return n.build([1, 3, 16, 16], y), [1, 3, 16, 16]


def mlp():
    """A multi-layer perceptron: Gemm (both weight layouts, alpha/beta), MatMul+Add, varied activations."""
    n = Net("mlp", 7)
    x = n.node("Flatten", ["input"], axis=1)
    x = n.relu(n.gemm(x, 64, 48))
    x = n.node("Tanh", [n.gemm(x, 48, 40, trans_b=0, alpha=0.5, beta=2.0)])
    x = n.node("MatMul", [x, n.const(n.weights((40, 32), 40))])
    x = n.node("Add", [x, n.const(n.rng.normal(0, 0.1, size=32))])
    x = n.node("LeakyRelu", [x], alpha=0.1)
    x = n.node("Sigmoid", [n.gemm(x, 32, 24)])
    x = n.node("HardSigmoid", [n.gemm(x, 24, 16)], alpha=0.3, beta=0.4)
    x = n.gemm(x, 16, 10)
    y = n.node("LogSoftmax", [x], "logprobs", axis=1)
    return n.build([1, 4, 4, 4], y), [1, 4, 4, 4]


def random_dag():
    """A randomly wired DAG: each node takes one or two earlier tensors (channel counts and
    spatial sizes agree by construction) through a random op, NAS-cell style."""
    n = Net("random_dag", 8)
    rng = np.random.default_rng(42)
    c = 8
    x = n.relu(n.conv("input", 3, c, 3))
    pool = [x]
    for i in range(14):
        kind = rng.integers(0, 10)
        a = pool[rng.integers(0, len(pool))]
        b = pool[rng.integers(0, len(pool))]
        if kind == 0:
            y = n.relu(n.conv(a, c, c, 3))
        elif kind == 1:
            y = n.node("Add", [a, b])
        elif kind == 2:
            y = n.node("Mul", [n.node("Sigmoid", [a]), b])
        elif kind == 3:
            cat = n.node("Concat", [a, b], axis=1)
            y = n.conv(cat, 2 * c, c, 1, pad=0)
        elif kind == 4:
            y = n.node("PRelu", [n.conv(a, c, c, 3, group=2),
                                 n.const(n.rng.uniform(0, 0.3, size=(c, 1, 1)))])
        elif kind == 5:
            y = n.node("Sub", [a, n.node("ReduceMean", [a], axes=[1], keepdims=1)])
        elif kind == 6:
            y = n.node("Sum", [a, b, pool[0]])
        elif kind == 7:
            y = n.node("Div", [a, n.const(n.rng.uniform(1.0, 2.0, size=(c, 1, 1)))])
        elif kind == 8:
            p = n.node("Pad", [a, n.const_i64([0, 0, 1, 1, 0, 0, 1, 1])], mode="constant")
            y = n.conv(p, c, c, 3, pad=0)
        else:
            y = n.node("Max", [a, b])
        pool.append(y)
    # Every dangling tensor feeds the head so that none is dead code.
    used = set(i for node in n.nodes for i in node.input)
    tails = [t for t in pool if t not in used] or [pool[-1]]
    x = tails[0] if len(tails) == 1 else n.node("Concat", tails, axis=1)
    ct = c * max(1, len(tails))
    x = n.node("Transpose", [x], perm=[0, 2, 3, 1])
    x = n.node("GlobalMaxPool", [n.node("Transpose", [x], perm=[0, 3, 1, 2])])
    x = n.node("Flatten", [x])
    y = n.gemm(x, ct, 10)
    return n.build([1, 3, 16, 16], y), [1, 3, 16, 16]


def nas_cells():
    """Two NAS-style cells whose branches have very different widths, written stage by stage
    (every branch's expansion first, then every branch's reduction), the way a cell built
    from a list of (op, input) pairs exports. That file order holds every wide expansion at
    once; running branch by branch does not."""
    n = Net("nas_cells", 11)

    def cell(x, cin, widths, cout):
        ups = [n.relu(n.conv(x, cin, w, 1, pad=0)) for w in widths]
        downs = [n.relu(n.conv(u, w, cout, 3)) for u, w in zip(ups, widths)]
        return n.node("Concat", downs, axis=1), cout * len(widths)

    x = n.relu(n.conv("input", 3, 8, 3))
    x, c = cell(x, 8, [48, 32, 16, 8], 4)
    x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x, c = cell(x, c, [64, 24, 12], 8)
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Flatten", [x])
    y = n.gemm(x, c, 10)
    return n.build([1, 3, 16, 16], y), [1, 3, 16, 16]


def wide_stem():
    """A camera-style stem: the widest maps come first (64×64 after the input), few weights.
    Whole, two of its maps need 176 KiB; streamed row by row, the stem's maps are windows of
    a few rows (the fits-64k example's second model)."""
    n = Net("wide_stem", 12)
    x = n.relu(n.conv("input", 3, 8, 3))
    x = n.relu(n.conv(x, 8, 16, 3, stride=2))
    x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = n.relu(n.conv(x, 16, 32, 3))
    x = n.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Flatten", [x])
    y = n.gemm(x, 32, 10)
    return n.build([1, 3, 64, 64], y), [1, 3, 64, 64]


MODELS = [chain, residual, inception, dwsep, mobilenetv2, densenet, mlp, random_dag, nas_cells,
          wide_stem]


def ui_models():
    """Small models for the compile-fail tests in tests/ui/."""
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui", "data")
    os.makedirs(out, exist_ok=True)
    n = Net("conv_transpose", 9)
    w = n.const(n.weights((2, 2, 3, 3), 18))
    n.nodes.append(helper.make_node("ConvTranspose", ["input", w], ["up"], name="upsample"))
    onnx.save(n.build([1, 2, 4, 4], "up"), os.path.join(out, "unsupported_op.onnx"))
    with open(os.path.join(out, "not_onnx.onnx"), "wb") as f:
        f.write(b"\x08\x07\x12\x05hello\x3a\xff\xff\xff\xff\x0f garbage that is not a protobuf message")


def main():
    # Names on the command line: only those models (the others' files stay as they are).
    only = sys.argv[1:]
    if not only:
        ui_models()
    os.makedirs(OUT, exist_ok=True)
    for make in MODELS:
        if only and make.__name__ not in only:
            continue
        model, in_shape = make()
        name = make.__name__
        path = os.path.join(OUT, name + ".onnx")
        onnx.save(model, path)
        rng = np.random.default_rng(1000)
        x = rng.uniform(-1, 1, size=in_shape).astype(np.float32)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (y,) = sess.run(None, {"input": x})
        x.astype("<f4").tofile(os.path.join(OUT, name + ".input.bin"))
        np.asarray(y, dtype="<f4").tofile(os.path.join(OUT, name + ".output.bin"))
        print(f"{name}: {len(model.graph.node)} nodes, output {list(y.shape)}, argmax {int(np.argmax(y))}")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
