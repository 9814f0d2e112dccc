#!/usr/bin/env python3
"""Generate MLPerf-Tiny-shaped networks and their int8 (QDQ) twins in tests/models/.

The four MLPerf Tiny v1 benchmark architectures, built with random weights (fixed seeds) in
the shape of the reference models (github.com/mlcommons/tiny, benchmark/training):

  resnet8         image classification, CIFAR-10 32x32x3: conv 16, three residual stages of
                  16/32/64 channels (stride 2 with a 1x1 shortcut in the last two), global
                  average pooling, dense 10, softmax                        (12.5 M MACs)
  dscnn           keyword spotting, DS-CNN-S on 49x10x1 MFCC frames: conv 10x4 stride 2 to 64
                  channels, four depthwise-separable blocks of 64, average pooling, dense 12,
                  softmax                                                   (2.7 M MACs)
  mobilenet_v1    visual wake words, MobileNetV1 alpha 0.25 at 96x96x3, dense 2, softmax
                                                                            (7.5 M MACs)
  mobilenet_v2    visual wake words as MCU tools deploy it too: MobileNetV2 alpha 0.35 at
                  96x96x3 (inverted residuals, ReLU6, linear bottlenecks, last conv 1280),
                  dense 2, softmax (not an MLPerf Tiny model; its streaming figure)
                                                                            (11 M MACs)
  fc_autoencoder  anomaly detection: dense 640 -> 128 x3 -> 8 -> 128 x3 -> 640, ReLU between
                  (the reference's BatchNorm folded into the dense layers)  (0.27 M MACs)

For NAME this writes NAME.onnx, NAME.input.bin and NAME.output.bin (float, as
tests/gen_models.py does) and int8/NAME_qdq.onnx with int8/NAME_qdq.output.bin (onnxruntime's
static quantizer, QDQ, per-channel int8 weights, int8 activations, as
tests/quantize_models.py does), plus int8/NAME_qdq.trace.{bin,txt}.

Run:  python3 tests/gen_mlperf.py [NAME ...]   (needs: pip install onnx onnxruntime numpy)
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_models import OUT, Net  # noqa: E402
from quantize_models import Reader, write_trace  # noqa: E402


def conv_bn(n, x, cin, cout, kh, kw, stride=1, group=1, relu=True):
    """Conv (no bias) + BatchNorm (+ ReLU), 'same' padding as Keras exports it."""
    w = n.const(n.weights((cout, cin // group, kh, kw), cin // group * kh * kw))
    y = n.node("Conv", [x, w], "conv", kernel_shape=[kh, kw], strides=[stride, stride],
               group=group, pads=[(kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2])
    y = n.bn(y, cout)
    return n.relu(y) if relu else y


def resnet8():
    n = Net("resnet8", 21)

    def stage(x, cin, cout, stride):
        y = conv_bn(n, x, cin, cout, 3, 3, stride)
        y = conv_bn(n, y, cout, cout, 3, 3, relu=False)
        short = x if stride == 1 and cin == cout else conv_bn(n, x, cin, cout, 1, 1, stride, relu=False)
        return n.relu(n.node("Add", [y, short]))

    x = conv_bn(n, "input", 3, 16, 3, 3)
    x = stage(x, 16, 16, 1)
    x = stage(x, 16, 32, 2)
    x = stage(x, 32, 64, 2)
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Flatten", [x])
    y = n.node("Softmax", [n.gemm(x, 64, 10)], "probs", axis=1)
    return n.build([1, 3, 32, 32], y), [1, 3, 32, 32]


def dscnn():
    n = Net("dscnn", 22)
    x = conv_bn(n, "input", 1, 64, 10, 4, 2)
    for _ in range(4):
        x = conv_bn(n, x, 64, 64, 3, 3, group=64)
        x = conv_bn(n, x, 64, 64, 1, 1)
    x = n.node("AveragePool", [x], kernel_shape=[25, 5])
    x = n.node("Flatten", [x])
    y = n.node("Softmax", [n.gemm(x, 64, 12)], "probs", axis=1)
    return n.build([1, 1, 49, 10], y), [1, 1, 49, 10]


def mobilenet_v1():
    n = Net("mobilenet_v1", 23)
    x = conv_bn(n, "input", 3, 8, 3, 3, 2)
    c = 8
    for cout, stride in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1),
                         (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]:
        x = conv_bn(n, x, c, c, 3, 3, stride, group=c)
        x = conv_bn(n, x, c, cout, 1, 1)
        c = cout
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Flatten", [x])
    y = n.node("Softmax", [n.gemm(x, c, 2)], "probs", axis=1)
    return n.build([1, 3, 96, 96], y), [1, 3, 96, 96]


def divisible(v, d=8):
    """Channels as MobileNetV2 rounds them: to a multiple of 8, never 10% below."""
    r = max(d, int(v + d / 2) // d * d)
    return r + d if r < 0.9 * v else r


def mobilenet_v2():
    n = Net("mobilenet_v2", 25)
    alpha = 0.35

    def conv(x, cin, cout, k, stride=1, group=1, act=True):
        w = n.const(n.weights((cout, cin // group, k, k), cin // group * k * k))
        p = (k - 1) // 2
        y = n.bn(n.node("Conv", [x, w], "conv", kernel_shape=[k, k], strides=[stride, stride],
                        group=group, pads=[p, p, p, p]), cout)
        return n.relu6(y) if act else y

    c = divisible(32 * alpha)
    x = conv("input", 3, c, 3, 2)
    for t, ch, reps, stride in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        cout = divisible(ch * alpha)
        for i in range(reps):
            s = stride if i == 0 else 1
            h = c * t
            y = conv(x, c, h, 1) if t != 1 else x
            y = conv(y, h, h, 3, s, group=h)
            y = conv(y, h, cout, 1, act=False)
            x = n.node("Add", [x, y]) if s == 1 and c == cout else y
            c = cout
    x = conv(x, c, 1280, 1)
    x = n.node("GlobalAveragePool", [x])
    x = n.node("Flatten", [x])
    y = n.node("Softmax", [n.gemm(x, 1280, 2)], "probs", axis=1)
    return n.build([1, 3, 96, 96], y), [1, 3, 96, 96]


def fc_autoencoder():
    n = Net("fc_autoencoder", 24)
    x = "input"
    widths = [640, 128, 128, 128, 8, 128, 128, 128]
    # The reference model's BatchNormalization layers fold into the dense layers at export.
    for k, m in zip(widths, widths[1:]):
        x = n.relu(n.gemm(x, k, m))
    y = n.gemm(x, 128, 640)
    return n.build([1, 640], y), [1, 640]


MODELS = [resnet8, dscnn, mobilenet_v1, mobilenet_v2, fc_autoencoder]


def main():
    int8 = os.path.join(OUT, "int8")
    os.makedirs(int8, exist_ok=True)
    only = sys.argv[1:]
    for make in MODELS:
        if only and make.__name__ not in only:
            continue
        model, in_shape = make()
        name = make.__name__
        path = os.path.join(OUT, name + ".onnx")
        onnx.save(model, path)
        rng = np.random.default_rng(1000)
        x = rng.uniform(-1, 1, size=in_shape).astype(np.float32)
        (y,) = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})
        x.astype("<f4").tofile(os.path.join(OUT, name + ".input.bin"))
        np.asarray(y, dtype="<f4").tofile(os.path.join(OUT, name + ".output.bin"))
        pre = os.path.join(int8, f"{name}_pre.onnx")
        quant_pre_process(path, pre, skip_symbolic_shape=True)
        dst = os.path.join(int8, f"{name}_qdq.onnx")
        quantize_static(pre, dst, Reader(in_shape, x), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)
        os.remove(pre)
        (yq,) = ort.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(None, {"input": x})
        np.asarray(yq, dtype="<f4").tofile(os.path.join(int8, f"{name}_qdq.output.bin"))
        write_trace(dst, x)
        print(f"{name}: {len(model.graph.node)} nodes, output {list(y.shape)}, "
              f"argmax f32 {int(np.argmax(y))} int8 {int(np.argmax(yq))}")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
