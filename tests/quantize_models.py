#!/usr/bin/env python3
"""Quantize test networks to int8 with onnxruntime's static quantizer, in both formats.

For each NAME in NETS (float models in tests/models/) this writes to tests/models/int8/:

  NAME_qdq.onnx      QuantFormat.QDQ: per-channel int8 weights, int8 activations
  NAME_qop.onnx      QuantFormat.QOperator: QLinearConv, QLinearMatMul, ... (com.microsoft ops)
  NAME_qdq.output.bin, NAME_qop.output.bin   onnxruntime's float output on NAME.input.bin
  dwsep_qdq_i8io.onnx, dwsep_qdq_u8io.onnx   dwsep_qdq(_u8) taking and returning int8 (uint8):
                                    .input.bin / .output.bin are raw int bytes from onnxruntime
  convmm.onnx, convmm_qop.onnx      a conv net ending in MatMul (written here) and its
                                    QOperator form, standard ONNX ops only; convmm.input.bin
  NAME_qdq.trace.bin + .trace.txt   onnxruntime's int8 value of every QuantizeLinear output,
                                    keyed by the float value it quantizes (name and length per
                                    line in .txt, the bytes concatenated in .bin)

Variants of the same nets exercise other quantizer settings (VARIANTS): uint8 activations
(onnxruntime's default, `_qdq_u8`) and per-tensor weights (`_qdq_pt`).

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
# (net, tag, activation type, per-channel weights)
VARIANTS = [("dwsep", "qdq_u8", QuantType.QUInt8, True),
            ("inception", "qdq_u8", QuantType.QUInt8, True),
            ("residual", "qdq_pt", QuantType.QInt8, False)]


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


def convmm_float(path):
    """A conv net ending in MatMul: onnxruntime's QOperator format turns it into standard ONNX
    ops only (QLinearConv, MaxPool, Flatten, QLinearMatMul), which tract loads."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto
    rng = np.random.default_rng(5)
    def init(name, *shape, scale=0.3):
        return numpy_helper.from_array(rng.normal(0, scale, size=shape).astype(np.float32), name)
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("MatMul", ["f", "w3"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "convmm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [init("w1", 8, 3, 3, 3), init("b1", 8, scale=0.1), init("w2", 16, 8, 3, 3, scale=0.15),
         init("b2", 16, scale=0.1), init("w3", 16 * 14 * 14, 10, scale=0.03)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def int_interface(src, dst, x):
    """`src` without its entry QuantizeLinear and exit DequantizeLinear: a model that takes and
    returns int8 (or uint8) values. Writes onnxruntime's int output on the quantized `x` as
    DST.output.bin and that input as DST.input.bin (raw bytes)."""
    import onnx
    m = onnx.load(src)
    g = m.graph
    q = next(n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == "input")
    dq = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] == g.output[0].name)
    inits = {i.name: i for i in g.initializer}
    in_type = inits[q.input[2]].data_type
    out_type = inits[dq.input[2]].data_type
    # The quantized input, as onnxruntime computes it.
    probe = onnx.load(src)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(q.output[0], in_type, None))
    xq = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        [q.output[0]], {"input": x})[0]
    in_shape = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    out_shape = [d.dim_value for d in g.output[0].type.tensor_type.shape.dim]
    g.node.remove(q)
    g.node.remove(dq)
    del g.input[0]
    g.input.insert(0, onnx.helper.make_tensor_value_info(q.output[0], in_type, in_shape))
    del g.output[0]
    g.output.append(onnx.helper.make_tensor_value_info(dq.input[0], out_type, out_shape))
    onnx.save(m, dst)
    (y,) = ort.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(None, {q.output[0]: xq})
    base = dst[:-len(".onnx")]
    np.asarray(xq).tofile(base + ".input.bin")
    np.asarray(y).tofile(base + ".output.bin")


def write_trace(path, x):
    """onnxruntime's int8 value of every QuantizeLinear output (uint8 shifted to int8)."""
    import onnx
    m = onnx.load(path)
    inits = {i.name: i for i in m.graph.initializer}
    names, keys = [], []
    for nd in m.graph.node:
        if nd.op_type == "QuantizeLinear":
            dt = inits[nd.input[2]].data_type if len(nd.input) > 2 else onnx.TensorProto.UINT8
            m.graph.output.append(onnx.helper.make_tensor_value_info(nd.output[0], dt, None))
            names.append(nd.output[0])
            keys.append(nd.input[0])
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = s.run(names, {"input": x})
    base = path[:-len(".onnx")]
    with open(base + ".trace.bin", "wb") as fb, open(base + ".trace.txt", "w") as ft:
        for k, o in zip(keys, outs):
            o = np.asarray(o)
            if o.dtype == np.uint8:
                o = (o.astype(np.int16) - 128).astype(np.int8)
            o.astype(np.int8).tofile(fb)
            ft.write(f"{k} {o.size}\n")


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
        settings = [("qdq", QuantFormat.QDQ, QuantType.QInt8, True),
                    ("qop", QuantFormat.QOperator, QuantType.QInt8, True)]
        settings += [(tag, QuantFormat.QDQ, act, pc) for (n, tag, act, pc) in VARIANTS if n == name]
        for tag, fmt, act, per_channel in settings:
            dst = os.path.join(OUT, f"{name}_{tag}.onnx")
            quantize_static(pre, dst, Reader(shape, x), quant_format=fmt, per_channel=per_channel,
                            activation_type=act, weight_type=QuantType.QInt8)
            q = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
            (y,) = q.run(None, {"input": x})
            np.asarray(y, dtype="<f4").tofile(os.path.join(OUT, f"{name}_{tag}.output.bin"))
            if fmt == QuantFormat.QDQ:
                write_trace(dst, x)
            print(f"{name}_{tag}: {os.path.getsize(dst)} bytes, argmax {int(np.argmax(y))}")
        os.remove(pre)
    # int8 and uint8 at the interface.
    x = np.fromfile(os.path.join(MODELS, "dwsep.input.bin"), dtype="<f4").reshape(1, 3, 32, 32)
    int_interface(os.path.join(OUT, "dwsep_qdq.onnx"), os.path.join(OUT, "dwsep_qdq_i8io.onnx"), x)
    int_interface(os.path.join(OUT, "dwsep_qdq_u8.onnx"), os.path.join(OUT, "dwsep_qdq_u8io.onnx"), x)
    # QOperator with standard ops only (tract loads them): the float net is written here.
    src = os.path.join(OUT, "convmm.onnx")
    convmm_float(src)
    x = np.fromfile(os.path.join(MODELS, "chain.input.bin"), dtype="<f4").reshape(1, 3, 32, 32)
    dst = os.path.join(OUT, "convmm_qop.onnx")
    quantize_static(src, dst, Reader([1, 3, 32, 32], x), quant_format=QuantFormat.QOperator,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    x.astype("<f4").tofile(os.path.join(OUT, "convmm.input.bin"))
    for path, tag in [(src, "convmm"), (dst, "convmm_qop")]:
        (y,) = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})
        np.asarray(y, dtype="<f4").tofile(os.path.join(OUT, f"{tag}.output.bin"))
    print(f"convmm_qop: ops {sorted(set(n.op_type for n in __import__('onnx').load(dst).graph.node))}")
    import onnx
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
