#!/usr/bin/env python3
"""Fetch Silero VAD v6 (`silero_vad_16k_op15.onnx`) from the `silero-vad` wheel on PyPI.

Silero VAD is a voice-activity detector by the Silero Team, MIT license
(https://github.com/snakers4/silero-vad); the model is not committed here. This script
downloads the pinned wheel with pip (no dependencies installed), checks the model's SHA-256
and writes it to the directory given (created if needed):

  python3 tests/fetch_silero.py DIR      -> DIR/silero_vad_16k_op15.onnx

tests/interface.rs runs it when the file is missing.
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


if __name__ == "__main__":
    main()
