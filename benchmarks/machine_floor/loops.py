"""Instructions per 16 floats in the hot loops of the floor kernels and of
fastce's kernels, read off the disassembly (objdump -d).

    python benchmarks/machine_floor/loops.py            # floor + fastce, avx512
    python benchmarks/machine_floor/loops.py --all

A loop is a backward jump inside a function; for each function the table
shows its exp loops, the innermost loops holding an exp polynomial (six or
more FMAs), one row per distinct loop -- one per layout or operand variant,
fewest instructions first (``--all``: every innermost vector loop).

"per 16 floats" is the loop's instruction count divided by the vectors it
exponentiates per iteration (every exp here, fastce's and the floor's, ends
with one shift of its integer into the exponent bits: ``vpslld $23`` for
float32, ``vpsllq $52`` for float64), scaled to 16 elements, so an unrolled
loop and a plain one, or a loop that also reads a shift or a buffer,
compare alike.  It includes the loop's loads, stores, max, sums and
overhead.  Static counts: a loop's share of the run time is the
benchmark's to say, not this script's.  The small-row floor (A) is left
out: its block loop is a switch over the class count, one unrolled case per
count.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# (function-name regex, what it is)
FLOOR_FUNCTIONS = (
    (r"floor_rows_f32(\._omp_fn\.\d+)?", "floor rows f32 (B, C, F)"),
    (r"floor_rows_f64(\._omp_fn\.\d+)?", "floor rows f64 (B64)"),
    (r"floor_cols_f32(\._omp_fn\.\d+)?", "floor columns (D)"),
    (r"floor_bce_f32(\._omp_fn\.\d+)?", "floor BCE (E)"),
)
FASTCE_FUNCTIONS = (
    (r"tile_lse_f32_{isa}", "fastce row log-sum-exp (B, C, F forward)"),
    (r"tile_lse_f64_{isa}", "fastce row log-sum-exp f64 (B64)"),
    (r"index_tile_kept_f32_{isa}", "fastce rows loss + gradient (B, F)"),
    (r"tile_grad_f32_{isa}", "fastce gradient writer"),
    (r"bce_logits_f32_{isa}", "fastce BCE (E)"),
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


def _exp_vectors(body):
    """Vectors exponentiated per iteration: each exp, fastce's and the
    floor's alike, ends by shifting its integer into the exponent field --
    by 23 bits for float32 (16 per zmm), 52 for float64 (8 per zmm).
    Returns (count, floats per vector)."""
    f32 = sum(m == "vpslld" and ops.startswith("$0x17") and "%zmm" in ops
              for _, m, ops in body)
    f64 = sum(m == "vpsllq" and ops.startswith("$0x34") and "%zmm" in ops
              for _, m, ops in body)
    return (f32, 16) if f32 >= f64 else (f64, 8)


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


#: An innermost loop with at least this many FMAs holds an exp polynomial.
EXP_LOOP_FMAS = 6


def loop_rows(functions, patterns, every_loop=False):
    """Rows (label, function, instructions, zmm instructions, exp vectors,
    instructions per 16 floats) of each function's exp loops
    (innermost loops with `EXP_LOOP_FMAS` or more FMAs; one row per distinct
    shape, fewest instructions per 16 floats first), or of every innermost
    vector loop with ``every_loop``."""
    rows = []
    for pattern, label in patterns:
        for name in [n for n in functions if re.fullmatch(pattern, n)]:
            insns = functions[name]
            seen, found = set(), []
            for a, b in innermost_loops(insns):
                body = insns[a:b + 1]
                zmm = sum("%zmm" in ops for _, _, ops in body)
                fmas = sum(m.startswith(("vfmadd", "vfnmadd", "vfmsub")) for _, m, _ in body)
                if zmm < 4 or (not every_loop and fmas < EXP_LOOP_FMAS):
                    continue
                n_exp, lanes = _exp_vectors(body)
                if not every_loop and not n_exp:
                    continue  # FMAs without an exp: a log or a dot product
                per16 = len(body) / n_exp * (16 / lanes) if n_exp else None
                key = (len(body), zmm, n_exp)
                if key not in seen:
                    seen.add(key)
                    found.append((label, name, len(body), zmm, n_exp, per16))
            found.sort(key=lambda r: (r[5] is None, r[5] or 0))
            rows.extend(found)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", default="avx512", choices=("avx512",),
                        help="the variant whose loops to count (zmm: AVX-512 only)")
    parser.add_argument("--all", action="store_true",
                        help="every vector innermost loop, not only the exp loops")
    args = parser.parse_args(argv)
    from machine_floor import MachineFloor
    import fastce._kernels._runtime as runtime

    floor = MachineFloor(isa=args.isa)
    tables = ((floor.path, FLOOR_FUNCTIONS),
              (runtime.__file__, tuple((p.format(isa=args.isa), d)
                                       for p, d in FASTCE_FUNCTIONS)))
    print(f"{'exp loop of':42s} {'function':28s} {'instrs':>6s} {'zmm':>4s} "
          f"{'exps':>4s} {'per 16 floats':>13s}")
    for path, patterns in tables:
        for label, name, n, zmm, n_exp, per16 in loop_rows(disassemble(path), patterns,
                                                            args.all):
            p16 = "-" if per16 is None else f"{per16:.1f}"
            print(f"{label:42s} {name[:28]:28s} {n:6d} {zmm:4d} {n_exp:4d} {p16:>13s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
