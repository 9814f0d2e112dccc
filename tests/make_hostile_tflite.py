#!/usr/bin/env python3
"""Malformed and unsupported .tflite files for the compile-fail cases (tests/ui/data/), made
from the MLPerf Tiny models in tests/models/tflite/ (Apache-2.0, see SOURCE.md there) by
truncating, by random bytes behind the `TFL3` identifier, and by patching one field in place
with a minimal flatbuffer walker (no dependency):

  tflite_truncated.tflite        the first 2,048 bytes of kws_ref_model.tflite
  tflite_random.tflite           512 random bytes with the TFL3 identifier at offset 4
  tflite_unsupported_op.tflite   kws_ref_model.tflite with its SOFTMAX operator code made
                                 LOGISTIC (an op microarena does not lower)
  tflite_float16.tflite          kws_ref_model_float32.tflite with its first convolution's
                                 weights (int8 there, a hybrid model) typed FLOAT16

Run:  python3 tests/make_hostile_tflite.py
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "models", "tflite")
OUT = os.path.join(HERE, "ui", "data")

SOFTMAX, LOGISTIC, CONV_2D, FLOAT16 = 25, 14, 3, 1


def u32(b, at):
    return struct.unpack_from("<I", b, at)[0]


def field(b, table, slot):
    """The position of field `slot` of the table at `table`, or None if absent."""
    vtable = table - struct.unpack_from("<i", b, table)[0]
    if 4 + 2 * slot >= struct.unpack_from("<H", b, vtable)[0]:
        return None
    off = struct.unpack_from("<H", b, vtable + 4 + 2 * slot)[0]
    return table + off if off else None


def tables(b, table, slot):
    """The tables of vector field `slot` of the table at `table`."""
    at = field(b, table, slot)
    vec = at + u32(b, at)
    return [vec + 4 + 4 * i + u32(b, vec + 4 + 4 * i) for i in range(u32(b, vec))]


def read(name):
    with open(os.path.join(SRC, name), "rb") as f:
        return bytearray(f.read())


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes(data))


def main():
    write("tflite_truncated.tflite", read("kws_ref_model.tflite")[:2048])

    rng = random.Random(35)
    noise = bytearray(rng.getrandbits(8) for _ in range(512))
    noise[4:8] = b"TFL3"
    write("tflite_random.tflite", noise)

    b = read("kws_ref_model.tflite")
    model = u32(b, 0)
    for code in tables(b, model, 1):  # Model.operator_codes
        deprecated, builtin = field(b, code, 0), field(b, code, 3)
        kind = b[deprecated] if deprecated else 0
        if builtin:
            kind = max(kind, struct.unpack_from("<i", b, builtin)[0])
        if kind == SOFTMAX:
            if deprecated:
                b[deprecated] = LOGISTIC
            if builtin:
                struct.pack_into("<i", b, builtin, LOGISTIC)
    write("tflite_unsupported_op.tflite", b)

    b = read("kws_ref_model_float32.tflite")
    model = u32(b, 0)
    codes = tables(b, model, 1)
    kinds = []
    for code in codes:
        deprecated, builtin = field(b, code, 0), field(b, code, 3)
        kind = b[deprecated] if deprecated else 0
        if builtin:
            kind = max(kind, struct.unpack_from("<i", b, builtin)[0])
        kinds.append(kind)
    subgraph = tables(b, model, 2)[0]
    tensors = tables(b, subgraph, 0)
    for op in tables(b, subgraph, 3):
        at = field(b, op, 0)
        index = u32(b, at) if at else 0
        if kinds[index] == CONV_2D:
            inputs = field(b, op, 1)
            vec = inputs + u32(b, inputs)
            weights = struct.unpack_from("<i", b, vec + 4 + 4)[0]
            # Tensor.type: present (INT8 is not the default, FLOAT32), so patched in place.
            b[field(b, tensors[weights], 1)] = FLOAT16
            break
    write("tflite_float16.tflite", b)


if __name__ == "__main__":
    main()
