#!/usr/bin/env python3
"""Cycle estimate of the multiply-accumulate loops of a Cortex-M4 firmware ELF.

QEMU counts instructions, not cycles. This script reads the disassembly of the runtime's
kernels (`arm-none-eabi-objdump -d`), finds every innermost loop (a backward branch whose body
holds no other one) that multiplies and accumulates, and prices one iteration with the
Cortex-M4 Technical Reference Manual's instruction timings (section 3.3.1):

- data processing, `SXTAB16`, `PKHBT`, `MUL`/`MLA`/`SMLAD`/`SMLAxy` (single-cycle MAC): 1
- `LDR`/`STR` (word, halfword, byte): 2, the pipelined lower bound 1 for a load that follows
  another independent load
- `LDRD`/`STRD`: 3; `LDM`/`STM`/`PUSH`/`POP`: 1 + registers
- `VLDR`/`VSTR`: 2; `VLDM`/`VSTM`/`VPUSH`/`VPOP`: 1 + registers
- `VMLA.F32`/`VFMA.F32`: 3; other single-precision arithmetic: 1
- a taken branch (the loop's back edge): 1 + P with P from 1 to 3 (pipeline refill): 2–4

Memory is assumed to be zero-wait-state (on-chip SRAM, flash behind an accelerator): wait
states add to every load from flash. The result is a range per loop (best: pipelined loads,
P = 1; worst: no pipelining, P = 3) in cycles per MAC, next to the loop's instructions per MAC.

    python3 cycle_estimate.py ../../target/firmware/thumbv7em-none-eabihf/release/mlperf
"""

import re
import subprocess
import sys

# MACs of one instruction. Integer `MLA` is left out: compiled code uses it for addresses as
# often as for products, so loops of the reference int8 kernels are not listed.
MACS = {
    "smlad": 2, "smladx": 2, "smlsd": 2,
    "smlabb": 1, "smlabt": 1, "smlatb": 1, "smlatt": 1, "smlawb": 1, "smlawt": 1,
    "vmla.f32": 1, "vfma.f32": 1,
}

LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
FUNC = re.compile(r"^[0-9a-f]+ <(.*)>:$")
BRANCH = re.compile(r"^(b|bne|beq|bcc|bcs|bhi|bls|bge|blt|bgt|ble|bmi|bpl|cbz|cbnz)(\.[nw])?$")


def cycles(mnemonic, operands, previous_was_load):
    """(best, worst) cycles of one instruction outside a taken branch."""
    m = mnemonic.split(".")[0] if not mnemonic.startswith("v") else mnemonic
    base = re.sub(r"(eq|ne|cs|cc|hi|ls|ge|lt|gt|le|mi|pl)$", "", m) if m.startswith(("ldr", "str")) else m
    regs = len(re.findall(r"\b[rsd]\d+\b|\b(lr|pc|ip|fp|sl)\b", operands.split("}")[0])) if "{" in operands else 0
    if base.startswith(("ldrd", "strd")):
        return 3, 3
    if base.startswith(("ldm", "stm", "push", "pop")):
        return 1 + regs, 1 + regs
    if base.startswith(("ldr", "str")):
        return (1 if previous_was_load else 2), 2
    if mnemonic.startswith(("vldm", "vstm", "vpush", "vpop")):
        return 1 + regs, 1 + regs
    if mnemonic.startswith(("vldr", "vstr")):
        return (1 if previous_was_load else 2), 2
    if mnemonic.startswith(("vmla", "vfma", "vmls", "vfms")):
        return 3, 3
    if mnemonic.startswith(("sdiv", "udiv")):
        return 2, 12
    return 1, 1


def functions(elf):
    out = subprocess.run(
        ["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", "-C", elf],
        check=True, capture_output=True, text=True,
    ).stdout
    name, body = None, []
    for line in out.splitlines():
        f = FUNC.match(line)
        if f:
            if name:
                yield name, body
            name, body = f.group(1), []
            continue
        m = LINE.match(line)
        if m and name and not m.group(2).startswith("."):
            body.append((int(m.group(1), 16), m.group(2), m.group(3)))
    if name:
        yield name, body


def loops(body):
    """Innermost loops: (start index, end index) of a backward branch's body."""
    found = []
    for i, (addr, mn, ops) in enumerate(body):
        if BRANCH.match(mn):
            t = re.match(r"([0-9a-f]+)", ops)
            if not t:
                continue
            target = int(t.group(1), 16)
            if target <= addr:
                j = next((k for k, (a, _, _) in enumerate(body) if a == target), None)
                if j is not None:
                    found.append((j, i))
    return [(s, e) for s, e in found if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in found)]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = []
    for name, body in functions(sys.argv[1]):
        # The convolution and matrix-product kernels (elementwise kernels multiply-add too).
        if not re.search(r"microarena_kernels::(conv|gemm)::", name):
            continue
        for s, e in loops(body):
            insns = body[s:e + 1]
            macs = sum(MACS.get(mn.split(".")[0] if not mn.startswith("v") else mn, 0) for _, mn, _ in insns)
            if macs == 0:
                continue
            best = worst = 0
            previous_load = False
            for _, mn, ops in insns[:-1]:
                b, w = cycles(mn, ops, previous_load)
                best, worst = best + b, worst + w
                previous_load = mn.startswith(("ldr", "vldr")) and not mn.startswith("ldrd")
            best, worst = best + 2, worst + 4  # the taken back edge
            # A closure is named after the function it is in.
            parts = [p for p in name.split("::") if p != "{{closure}}"]
            rows.append((parts[-1], insns[0][0], len(insns), macs, best, worst))
    print("| kernel loop | at | instructions | MACs | instructions per MAC | cycles per MAC (est.) |")
    print("|---|---|---:|---:|---:|---|")
    for name, at, n, macs, best, worst in sorted(rows, key=lambda r: (r[0], r[1])):
        print(f"| {name} | {at:#x} | {n} | {macs} | {n / macs:.2f} | {best / macs:.2f}–{worst / macs:.2f} |")


if __name__ == "__main__":
    main()
