#!/usr/bin/env python3
"""Where a firmware's instructions go: runs an ELF under QEMU (mps2-an386, -icount shift=0)
with `-d in_asm,exec,nochain`, weights every executed translated block by its length, and
prints the instructions per function and the hottest blocks with the source lines they
come from (`arm-none-eabi-addr2line -i`, the ELF's debug info). A profile of the
instruction counts the firmware binaries report (the same QEMU), not of cycles.

    python3 examples/firmware-m4/qemu_profile.py target/firmware/thumbv7em-none-eabihf/release/tflite [N]

N: how many functions and blocks to print (default 15). The log is large (about 7 bytes per
executed instruction); it goes to a temporary file that is removed afterwards.
"""

import collections
import os
import re
import subprocess
import sys
import tempfile


def profile(log):
    """(instructions per function, per block start, block lengths, block symbols)."""
    tb_len, sym_of = {}, {}
    per_fn, per_tb = collections.Counter(), collections.Counter()
    start, count = None, 0
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("IN:"):
                start, count = None, 0
                continue
            m = re.match(r"0x([0-9a-f]+):\s", line)
            if m:
                if start is None:
                    start = int(m.group(1), 16)
                count += 1
                continue
            if line.startswith("Trace"):
                if start is not None:
                    tb_len[start], start = count, None
                m = re.search(r"\[[0-9a-f]+/([0-9a-f]+)/[0-9a-f]+/[0-9a-f]+\] (\S+)", line)
                if not m:
                    continue
                pc, sym = int(m.group(1), 16), m.group(2)
                n = tb_len.get(pc, 0)
                sym_of[pc] = sym
                per_fn[sym] += n
                per_tb[pc] += n
    return per_fn, per_tb, tb_len, sym_of


def main():
    elf = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "qemu.log")
        subprocess.run(
            ["qemu-system-arm", "-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic",
             "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
             "-d", "in_asm,exec,nochain", "-D", log, "-kernel", elf],
            check=True, stdout=subprocess.DEVNULL, timeout=1200)
        per_fn, per_tb, tb_len, sym_of = profile(log)
    total = sum(per_fn.values())
    print(f"{total} instructions")
    print("\nper function:")
    for sym, n in per_fn.most_common(top):
        print(f"{n:>12} {100 * n / total:5.1f}%  {sym[:120]}")
    print("\nhottest blocks (instructions, length × runs, where):")
    for pc, n in per_tb.most_common(top):
        where = subprocess.run(["arm-none-eabi-addr2line", "-i", "-f", "-C", "-e", elf, hex(pc)],
                               capture_output=True, text=True).stdout.split("\n")
        frames = [f"{where[i]} {where[i + 1].split('/src/')[-1]}"
                  for i in range(0, min(len(where) - 1, 4), 2)]
        print(f"{n:>12} {100 * n / total:5.1f}%  {tb_len[pc]:>3} × {n // max(tb_len[pc], 1):<7} "
              f"0x{pc:x}  {' <- '.join(frames)}")


if __name__ == "__main__":
    main()
