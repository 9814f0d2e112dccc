#!/usr/bin/env python3
"""The tf2onnx twins of the MLPerf Tiny .tflite files (tests/models/tflite/twins/), made as a
new user makes them: `python -m tf2onnx.convert --tflite X.tflite --opset 17` (tf2onnx 1.17,
which needs tensorflow-cpu). Then, for each, onnxruntime on the committed inputs against the
TFLite interpreter's committed outputs (the largest difference printed, in steps for int8), and
onnxruntime's outputs written beside each twin (`NAME.output{k}.bin`): the reference
`tests/tflite_twins.rs` checks our code against. They are onnxruntime's with its graph
optimisations off, the graph's own arithmetic (each DequantizeLinear → float op →
QuantizeLinear as written): its fused int8 kernels (QLinearAdd, ...) round differently and
move ResNet-8's softmax output by up to 14 steps on one input. onnxruntime runs a QDQ graph in
ONNX's arithmetic (float requantisation, float softmax), not TFLite's fixed point, so its int8
outputs differ from the interpreter's by up to several steps (28 on ResNet-8's softmax).
tf2onnx's output is not byte-for-byte reproducible (names), the graphs are.

    pip install tf2onnx==1.17.0 tensorflow-cpu onnxruntime numpy
    python3 tests/make_tflite_twins.py
"""
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "models", "tflite")
OUT = os.path.join(SRC, "twins")

FILES = [
    "ad01_fp32", "ad01_int8", "kws_ref_model", "kws_ref_model_float32", "pretrainedResnet",
    "pretrainedResnet_quant", "str_ww_ref_model", "vww_96_float", "vww_96_int8",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in FILES:
        dst = os.path.join(OUT, name + ".onnx")
        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--tflite", os.path.join(SRC, name + ".tflite"),
             "--opset", "17", "--output", dst],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(dst, options, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        dtype = np.int8 if "int8" in inp.type else np.float32
        # tf2onnx leaves the batch symbolic: one image.
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        worst = 0.0
        for k in range(3):
            x = np.fromfile(os.path.join(SRC, f"{name}.input{k}.bin"), dtype=dtype)
            want = np.fromfile(os.path.join(SRC, f"{name}.output{k}.bin"), dtype=dtype)
            y = sess.run(None, {inp.name: x.reshape(shape)})[0].reshape(-1)
            y.astype(dtype).tofile(os.path.join(OUT, f"{name}.output{k}.bin"))
            if dtype == np.int8:
                worst = max(worst, float(np.abs(y.astype(int) - want.astype(int)).max()))
            else:
                worst = max(worst, float((np.abs(y - want) / np.maximum(np.abs(want), 1e-5)).max()))
        unit = "steps" if dtype == np.int8 else "relative"
        print(f"{name}: onnxruntime against the TFLite interpreter, largest difference {worst:g} {unit}")


if __name__ == "__main__":
    main()
