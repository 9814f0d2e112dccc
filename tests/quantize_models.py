#!/usr/bin/env python3
"""Quantize test networks to int8 with onnxruntime's static quantizer, in both formats.

For each NAME in NETS (float models in tests/models/) this writes to tests/models/int8/:

  NAME_qdq.onnx      QuantFormat.QDQ: per-channel int8 weights, int8 activations
  NAME_qop.onnx      QuantFormat.QOperator: QLinearConv, QLinearMatMul, ... (com.microsoft ops)
  NAME_qdq.output.bin, NAME_qop.output.bin   onnxruntime's float output on NAME.input.bin

Not yet compiled by microarena (int8 support is in progress); committed so that its tests
and the next steps share one set of reference models and outputs.

Calibration uses 16 deterministic random inputs plus the committed test input.
Run: python3 tests/quantize_models.py  (needs: pip install onnx onnxruntime numpy)
"""
import os
import sys

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
OUT = os.path.join(MODELS, "int8")
NETS = ["chain", "residual", "dwsep", "inception"]


class Reader(CalibrationDataReader):
    def __init__(self, shape, first):
        rng = np.random.default_rng(2024)
        self.data = [{"input": first}] + [
            {"input": rng.uniform(-1, 1, size=shape).astype(np.float32)} for _ in range(16)]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.data):
            return None
        self.i += 1
        return self.data[self.i - 1]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in NETS:
        src = os.path.join(MODELS, name + ".onnx")
        sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
        shape = sess.get_inputs()[0].shape
        x = np.fromfile(os.path.join(MODELS, name + ".input.bin"), dtype="<f4").reshape(shape)
        # onnxruntime's recommended pre-processing: shape inference and graph optimisation
        # (BatchNormalization folded into Conv), so Q/DQ pairs sit where int8 kernels go.
        pre = os.path.join(OUT, f"{name}_pre.onnx")
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        for tag, fmt in [("qdq", QuantFormat.QDQ), ("qop", QuantFormat.QOperator)]:
            dst = os.path.join(OUT, f"{name}_{tag}.onnx")
            quantize_static(pre, dst, Reader(shape, x), quant_format=fmt, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
            q = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
            (y,) = q.run(None, {"input": x})
            np.asarray(y, dtype="<f4").tofile(os.path.join(OUT, f"{name}_{tag}.output.bin"))
            print(f"{name}_{tag}: {os.path.getsize(dst)} bytes, argmax {int(np.argmax(y))}")
        os.remove(pre)
    import onnx
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
