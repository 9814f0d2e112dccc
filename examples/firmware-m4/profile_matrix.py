#!/usr/bin/env python3
"""Instructions per MAC of every `mlperf` model under every build profile a firmware author may pick.

Builds `--bin mlperf` at `opt-level` "s", "z", 2 and 3, each with and without
`-C target-cpu=cortex-m4`, runs each build under QEMU (`-icount shift=0`, the runner of
`.cargo/config.toml`) and reads each model's instruction count. Prints a Markdown table (one
row per model, one column per profile) and fails if any model's count under any profile is
more than 5% above its best profile's, or if a build reports a mismatch (issue 37: the speed
must not depend on a build choice that is the firmware author's, not ours).

    cd examples/firmware-m4 && python3 profile_matrix.py

Honours CARGO_TARGET_DIR like cargo. The profiles share one target directory: each build
recompiles the firmware's own crates (the model compiler, a host crate, is not rebuilt).
"""

import os
import re
import shlex
import subprocess
import sys

OPT_LEVELS = ["s", "z", "2", "3"]
CPUS = [None, "cortex-m4"]
TOLERANCE = 1.05
TARGET = "thumbv7em-none-eabihf"
# The runner of .cargo/config.toml, run on the ELF directly: `cargo run` with other flags than
# the build's would rebuild.
RUNNER = (
    "qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic "
    "-semihosting-config enable=on,target=native -icount shift=0 -kernel"
)
LINE = re.compile(r"^(?P<model>.+?): class .*?, (?P<macs>\d+) MACs, (?P<instr>\d+) instructions")


def build_and_run(opt, cpu):
    env = dict(os.environ)
    env["CARGO_PROFILE_RELEASE_OPT_LEVEL"] = opt
    # Cargo adds these to `.cargo/config.toml`'s rustflags for the target (the linker script).
    flags = ["-C", f"target-cpu={cpu}"] if cpu else []
    env[f"CARGO_TARGET_{TARGET.upper().replace('-', '_')}_RUSTFLAGS"] = " ".join(flags)
    subprocess.run(["cargo", "build", "-q", "--release", "--bin", "mlperf"], check=True, env=env)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    elf = os.path.join(target, TARGET, "release", "mlperf")
    out = subprocess.run(
        shlex.split(RUNNER) + [elf], check=True, capture_output=True, text=True, timeout=600
    ).stdout
    if "MISMATCH" in out or "self_test: ok" not in out:
        print(out)
        sys.exit(f"FAILED: mlperf at opt-level {opt}, target-cpu {cpu} reported a mismatch")
    counts = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            counts[m["model"]] = (int(m["instr"]), int(m["macs"]))
    if not counts:
        print(out)
        sys.exit("FAILED: no instruction counts in mlperf's output")
    return counts


def main():
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    profiles = [(opt, cpu) for cpu in CPUS for opt in OPT_LEVELS]
    results = {}
    for opt, cpu in profiles:
        print(f"-- mlperf at opt-level {opt}, target-cpu {cpu or 'default'}", flush=True)
        results[(opt, cpu)] = build_and_run(opt, cpu)
    models = list(results[profiles[0]])
    names = [f"{opt}{', cpu' if cpu else ''}" for opt, cpu in profiles]
    print()
    print("Instructions per MAC; `cpu`: `-C target-cpu=cortex-m4`; worst / best profile last.")
    print()
    print("| model | " + " | ".join(names) + " | worst / best |")
    print("|---|" + "---:|" * (len(names) + 1))
    failed = []
    for model in models:
        instr = [results[p][model][0] for p in profiles]
        macs = results[profiles[0]][model][1]
        spread = max(instr) / min(instr)
        cells = [f"{i / macs:.2f}" for i in instr]
        print(f"| {model} | " + " | ".join(cells) + f" | {spread:.3f} |")
        if spread > TOLERANCE:
            failed.append(model)
    if failed:
        sys.exit(f"FAILED: more than 5% between profiles: {', '.join(failed)}")


if __name__ == "__main__":
    main()
