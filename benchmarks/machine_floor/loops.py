"""Instructions per 16 floats in the hot loops of the floor kernels and of
fastce's kernels, read off the disassembly (objdump -d).

    python benchmarks/machine_floor/loops.py            # floor + fastce, avx512
    python benchmarks/machine_floor/loops.py --all

A loop is a backward jump inside a function; for each function the table
shows its exp loop, the innermost loop with the most FMAs (``--all``: every
innermost vector loop).  "per 16" is the loop's instruction count divided by
the 16-float vectors it loads per array it streams (zmm memory operands
whose address register the loop steps; loads through a fixed address --
spill slots, tables, constants -- are counted apart as "other"), so an unrolled loop and
a plain one compare alike; a loop that loads nothing (pure register work,
e.g. a permute network) shows "-".  Static counts: a loop's share of the
run time is the benchmark's to say, not this script's.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# (function-name regex, what it is, arrays streamed per element: BCE reads
# the logits and the targets)
FLOOR_FUNCTIONS = (
    (r"floor_rows_f32\._omp_fn\.\d+", "floor rows f32 (B, C, F)", 1),
    (r"floor_rows_f64\._omp_fn\.\d+", "floor rows f64 (B64)", 1),
    (r"floor_cols_f32\._omp_fn\.\d+", "floor columns (D)", 1),
    (r"floor_small_f32\._omp_fn\.\d+", "floor small rows (A)", 1),
    (r"floor_bce_f32\._omp_fn\.\d+", "floor BCE (E)", 2),
)
FASTCE_FUNCTIONS = (
    (r"tile_lse_f32_{isa}", "fastce row log-sum-exp (B, C, F forward)", 1),
    (r"tile_lse_f64_{isa}", "fastce row log-sum-exp f64 (B64)", 1),
    (r"index_tile_kept_f32_{isa}", "fastce rows loss + gradient (B, F)", 1),
    (r"tile_grad_f32_{isa}", "fastce gradient writer", 1),
    (r"bce_logits_f32_{isa}", "fastce BCE (E)", 2),
)

_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
_JUMP = re.compile(r"^j\w+$")


def disassemble(path):
    """{function name: [(address, mnemonic, operands)]} of a shared object."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                          capture_output=True, text=True, check=True).stdout
    functions, current = {}, None
    for line in text.splitlines():
        head = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if head:
            current = functions.setdefault(head.group(1), [])
            continue
        m = _INSN.match(line)
        if m and current is not None:
            current.append((int(m.group(1), 16), m.group(2), m.group(3)))
    return functions


def _operands(text):
    """AT&T operands split at the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text.split("#")[0].strip():
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current] if current else parts


def _memory_sources(operands):
    """The memory operands an instruction reads (all but the last operand,
    which is the destination), RIP-relative constants and broadcasts left
    out."""
    ops = _operands(operands)
    return [o for o in ops[:-1] if "(" in o and "rip" not in o and "{1to" not in o]


def _registers(memory_operand):
    inside = memory_operand[memory_operand.index("(") + 1:memory_operand.index(")")]
    return {r.strip() for r in inside.split(",") if r.strip().startswith("%")}


def _advancing(body):
    """Registers the loop steps (add / sub / lea / inc into them): the
    pointers and indices of its streams."""
    regs = set()
    for _, mnemonic, operands in body:
        if mnemonic.startswith(("add", "sub", "lea", "inc")):
            ops = _operands(operands)
            if ops and ops[-1].startswith("%"):
                regs.add(ops[-1].strip())
    return regs


def _load_kinds(body):
    """(stream loads, other loads): distinct zmm memory operands; a stream
    load's address moves with the loop, other loads' (spill slots, tables
    behind a fixed pointer) do not."""
    moving = _advancing(body)
    streams, others = set(), set()
    for _, _, operands in body:
        if "%zmm" not in operands:
            continue
        for o in _memory_sources(operands):
            # one address read by two instructions is one load's worth of data
            (streams if _registers(o) & moving else others).add(o.split("{")[0])
    return len(streams), len(others)


def innermost_loops(insns):
    """(start index, end index) of each innermost loop of a function."""
    index = {addr: i for i, (addr, _, _) in enumerate(insns)}
    loops = []
    for i, (addr, mnemonic, operands) in enumerate(insns):
        if not _JUMP.match(mnemonic):
            continue
        target = re.match(r"([0-9a-f]+)\s", operands + " ")
        if not target:
            continue
        t = int(target.group(1), 16)
        if t <= addr and t in index:
            loops.append((index[t], i))
    return [(a, b) for a, b in loops
            if not any((c, d) != (a, b) and a <= c and d <= b for c, d in loops)]


def loop_rows(functions, patterns, every_loop=False):
    """Rows (label, function, instructions, zmm instructions, stream loads,
    spill loads, instructions per 16 floats) of each function's exp loop:
    the innermost loop with the most FMAs (every vector loop with
    ``every_loop``)."""
    rows = []
    for pattern, label, streams in patterns:
        for name in [n for n in functions if re.fullmatch(pattern, n)]:
            insns = functions[name]
            candidates = []
            for a, b in innermost_loops(insns):
                body = insns[a:b + 1]
                zmm = sum("%zmm" in ops for _, _, ops in body)
                fmas = sum(m.startswith(("vfmadd", "vfnmadd", "vfmsub")) for m, _ in
                           ((m, o) for _, m, o in body))
                if zmm < 4:
                    continue
                loads, spills = _load_kinds(body)
                per16 = len(body) * streams / loads if loads else None
                candidates.append((fmas, (label, name, len(body), zmm, loads, spills, per16)))
            if every_loop:
                rows.extend(row for _, row in candidates)
            elif candidates:
                rows.append(max(candidates, key=lambda c: c[0])[1])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", default="avx512", choices=("avx512",),
                        help="the variant whose loops to count (zmm: AVX-512 only)")
    parser.add_argument("--all", action="store_true",
                        help="every vector innermost loop, not only each exp loop")
    args = parser.parse_args(argv)
    from machine_floor import MachineFloor
    import fastce._kernels._runtime as runtime

    floor = MachineFloor(isa=args.isa)
    tables = ((floor.path, FLOOR_FUNCTIONS),
              (runtime.__file__, tuple((p.format(isa=args.isa), d, k)
                                       for p, d, k in FASTCE_FUNCTIONS)))
    print(f"{'exp loop of':42s} {'function':28s} {'instrs':>6s} {'zmm':>4s} "
          f"{'loads':>5s} {'other':>6s} {'per 16 floats':>13s}")
    for path, patterns in tables:
        for label, name, n, zmm, loads, spills, per16 in loop_rows(
                disassemble(path), patterns, args.all):
            p16 = "-" if per16 is None else f"{per16:.1f}"
            print(f"{label:42s} {name[:28]:28s} {n:6d} {zmm:4d} {loads:5d} {spills:6d} "
                  f"{p16:>13s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
