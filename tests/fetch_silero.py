#!/usr/bin/env python3
"""Fetch Silero VAD v6 (`silero_vad_16k_op15.onnx`) from the `silero-vad` wheel on PyPI.

Silero VAD is a voice-activity detector by the Silero Team, MIT license
(https://github.com/snakers4/silero-vad); the model is not committed here. This script
downloads the pinned wheel with pip (no dependencies installed), checks the model's SHA-256
and writes it to the directory given (created if needed):

  python3 tests/fetch_silero.py DIR      -> DIR/silero_vad_16k_op15.onnx

tests/interface.rs runs it when the file is missing. With `--reference` it also writes the
committed reference of tests/interface.rs (needs onnxruntime and numpy):

  python3 tests/fetch_silero.py --reference DIR
      -> tests/models/interface/silero_vad.{input,output,state}.bin

three calls in a row on 512-sample chunks of a deterministic signal (a 440 Hz tone in noise,
then noise, then the tone again), the state carried from zeros: per call the chunk, the
speech probability, and the state after the call, as onnxruntime computes them (sr = 16000).
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

VERSION = "6.2.3"
MEMBER = "silero_vad/data/silero_vad_16k_op15.onnx"
SHA256 = "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    dest = os.path.join(out_dir, os.path.basename(MEMBER))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", tmp, f"silero-vad=={VERSION}"], check=True)
        wheel = next(f for f in os.listdir(tmp) if f.endswith(".whl"))
        data = zipfile.ZipFile(os.path.join(tmp, wheel)).read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.exit(f"{MEMBER} in silero-vad {VERSION} has SHA-256 {digest}, expected {SHA256}")
    with open(dest + ".part", "wb") as f:
        f.write(data)
    os.replace(dest + ".part", dest)
    print(dest)


def reference(model):
    import numpy as np
    import onnxruntime as ort
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "interface")
    rng = np.random.default_rng(7)
    t = np.arange(3 * 512) / 16000.0
    tone = 0.4 * np.sin(2 * np.pi * 440 * t)
    signal = (tone * np.repeat([1, 0, 1], 512) + 0.05 * rng.standard_normal(3 * 512))
    chunks = signal.astype(np.float32).reshape(3, 1, 512)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    probs, states = [], []
    for chunk in chunks:
        prob, state = sess.run(None, {"input": chunk, "state": state,
                                      "sr": np.array(16000, dtype=np.int64)})
        probs.append(prob)
        states.append(state)
    chunks.astype("<f4").tofile(os.path.join(out, "silero_vad.input.bin"))
    np.asarray(probs, dtype="<f4").tofile(os.path.join(out, "silero_vad.output.bin"))
    np.asarray(states, dtype="<f4").tofile(os.path.join(out, "silero_vad.state.bin"))
    print("probabilities", [float(p.ravel()[0]) for p in probs])


if __name__ == "__main__":
    if sys.argv[1] == "--reference":
        sys.argv.pop(1)
        main()
        reference(os.path.join(sys.argv[1], os.path.basename(MEMBER)))
    else:
        main()
