#!/usr/bin/env python3
"""Reference data for the MLPerf Tiny .tflite models in tests/models/tflite/.

For each model, three inputs and the TFLite interpreter's outputs on them (ai-edge-litert,
its reference kernels: `OpResolverType.BUILTIN_REF`, the arithmetic TFLite Micro runs):
NAME.inputK.bin and NAME.outputK.bin, raw little-endian in the model's own types and layout
(int8 models: int8 in, int8 out; float models: float32). The inputs are drawn from a fixed
seed among many candidates, keeping those whose outputs are least saturated (a classifier's
top probability furthest below 1), so that a wrong layer shows in the output.

Run:  python3 tests/tflite_reference.py   (needs: pip install ai-edge-litert numpy)
"""
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "tflite")
MODELS = [
    "ad01_fp32", "ad01_int8", "kws_ref_model", "kws_ref_model_float32", "pretrainedResnet",
    "pretrainedResnet_quant", "str_ww_ref_model", "vww_96_float", "vww_96_int8",
]
INPUTS = 3
CANDIDATES = 150


def interpreter(name):
    it = Interpreter(model_path=os.path.join(DIR, name + ".tflite"),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


def run(it, x):
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(i["index"], x)
    it.invoke()
    return it.get_tensor(o["index"]).copy()


def candidate(rng, detail):
    """A float input in a range of the model's kind, in the model's input type."""
    shape, dtype = detail["shape"], detail["dtype"]
    x = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
    if dtype == np.float32:
        return x
    scale, zero = detail["quantization"]
    # Spread over the input's quantized range (an image's 0..1, an MFCC's range).
    lo, hi = (-128 - zero) * scale, (127 - zero) * scale
    real = lo + (hi - lo) * rng.uniform(0.0, 1.0, size=shape)
    return np.clip(np.round(real / scale) + zero, -128, 127).astype(np.int8)


def saturation(y, detail):
    """How saturated an output is: a classifier's top probability (0..1), else 0."""
    y = np.asarray(y, dtype=np.float64)
    if detail["dtype"] != np.float32:
        scale, zero = detail["quantization"]
        y = (y - zero) * scale
    return float(y.max()) if y.size <= 16 else 0.0


def main():
    for name in MODELS:
        it = interpreter(name)
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        rng = np.random.default_rng(2026)
        found = []
        for _ in range(CANDIDATES):
            x = candidate(rng, i)
            y = run(it, x)
            found.append((saturation(y, o), x, y))
        found.sort(key=lambda f: f[0])
        for k, (s, x, y) in enumerate(found[:INPUTS]):
            x.astype(x.dtype.newbyteorder("<")).tofile(os.path.join(DIR, f"{name}.input{k}.bin"))
            y.astype(y.dtype.newbyteorder("<")).tofile(os.path.join(DIR, f"{name}.output{k}.bin"))
        print(f"{name}: input {list(i['shape'])} {i['dtype'].__name__}, output {list(o['shape'])} "
              f"{o['dtype'].__name__}; top output of the kept inputs "
              f"{', '.join(f'{f[0]:.3f}' for f in found[:INPUTS])}")


if __name__ == "__main__":
    main()
