#!/usr/bin/env python3
"""Flash of each official MLPerf Tiny int8 model alone, against its int8 weight and bias bytes.

Builds `--bin plain` (one model, nothing else: see src/bin/plain.rs) once per model, with
streaming (the default) and without, and reads the ELF's `.text` and `.rodata`
(`arm-none-eabi-size -A`). The weight bytes are the `.tflite` file's constant tensors that
the model's operators read (int8 weights, int32 biases; read with the TFLite interpreter,
`ai-edge-litert`). Prints a Markdown table with the bound issue 37 sets, 1.15 × weights +
16 KiB; then the f32 LSTM keyword spotter (`tests/models/interface/kws_lstm.onnx`, its
initializers' bytes as weights) against its bound, 1.3 × weights + 16 KiB.

    cd examples/firmware-m4 && python3 flash_table.py

Honours CARGO_TARGET_DIR like cargo.
"""

import os
import subprocess
import sys

MODELS = [
    ("resnet", "pretrainedResnet_quant"),
    ("kws", "kws_ref_model"),
    ("vww", "vww_96_int8"),
    ("ad01", "ad01_int8"),
]


def weight_bytes(path):
    """Bytes of the constant tensors the model's operators read (weights, biases)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path)
    ops = it._get_ops_details()
    produced = {o for op in ops for o in op["outputs"]}
    consumed = {i for op in ops for i in op["inputs"] if i >= 0}
    inputs = {d["index"] for d in it.get_input_details()}
    total = 0
    for d in it.get_tensor_details():
        i = d["index"]
        if i in consumed and i not in produced and i not in inputs:
            n = int(d["shape"].prod()) if len(d["shape"]) else 1
            total += n * d["dtype"]().itemsize
    return total


def onnx_weight_bytes(path):
    """Bytes of the ONNX file's initializers."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    return sum(numpy_helper.to_array(i).nbytes for i in model.graph.initializer)


def flash(features):
    """(.text, .rodata) of the plain firmware built with `features`."""
    subprocess.run(
        ["cargo", "build", "-q", "--release", "--bin", "plain", "--features", features],
        check=True,
    )
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    elf = os.path.join(target, "thumbv7em-none-eabihf", "release", "plain")
    out = subprocess.run(["arm-none-eabi-size", "-A", elf], check=True, capture_output=True, text=True)
    sizes = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in (".text", ".rodata"):
            sizes[parts[0]] = int(parts[1])
    return sizes[".text"], sizes[".rodata"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(here)
    models = os.path.join(here, "..", "..", "tests", "models", "tflite")
    print("| file | weights + biases (B) | bound: 1.15 × + 16 KiB | streamed: text + rodata | ratio | unstreamed: text + rodata | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ok = True
    for key, name in MODELS:
        w = weight_bytes(os.path.join(models, name + ".tflite"))
        bound = int(1.15 * w) + 16 * 1024
        cells = []
        for extra in ("", ",plain-unstreamed"):
            text, rodata = flash("plain-" + key + extra)
            total = text + rodata
            mark = "" if total <= bound else " ✗"
            ok &= total <= bound
            cells.append(f"{text:,} + {rodata:,} = {total:,}{mark} | {total / w:.2f}")
        print(f"| `{name}.tflite` | {w:,} | {bound:,} | " + " | ".join(cells) + " |")
    lstm = os.path.join(here, "..", "..", "tests", "models", "interface", "kws_lstm.onnx")
    w = onnx_weight_bytes(lstm)
    bound = int(1.3 * w) + 16 * 1024
    text, rodata = flash("plain-kws-lstm")
    total = text + rodata
    ok &= total <= bound
    mark = "" if total <= bound else " ✗"
    print()
    print("| file | weights (B) | bound: 1.3 × + 16 KiB | text + rodata | × weights |")
    print("|---|---:|---:|---:|---:|")
    print(f"| `kws_lstm.onnx` | {w:,} | {bound:,} | {text:,} + {rodata:,} = {total:,}{mark} | {total / w:.2f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
