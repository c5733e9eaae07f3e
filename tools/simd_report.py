"""Check, from the built extension, that the kernels' hot loops are SIMD.

    python tools/simd_report.py [path/to/_runtime*.so]

Disassembles fastce's SIMD primitives (objdump -d) and counts, per
instruction-set variant, the instructions that use 512-bit (zmm), 256-bit
(ymm) and 128-bit (xmm) registers, plus calls into libm.  A variant whose
hot loops vectorised shows zmm (avx512) / ymm (avx2) work; the baseline
variant is SSE2 (xmm) by construction.  The only libm calls are one exp
per 2048-element block in tile_lse (rescaling the running sum when the max
grows) and one log per row in tile_lse / index_tile_kept -- never one per
element.  (tile_index only orders a tile's steps; its loops are these.)  tile_nll is listed but scalar by design:
per position one gather and a sum in position order, memory-bound.
"""
import collections
import glob
import os
import re
import subprocess
import sys

PRIMITIVES = ("tile_lse", "tile_grad", "tile_wdot", "tile_prob", "tile_log_softmax",
              "index_decode", "index_finish", "index_fix", "index_tile_kept", "tile_nll",
              "bce_logits")

# listed, but not required to be SIMD (see the module docstring)
SCALAR_BY_DESIGN = ("tile_nll",)


def main():
    if len(sys.argv) > 1:
        path = sys.argv[1]
    else:
        import fastce._kernels._runtime as rt
        path = rt.__file__
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path],
                          capture_output=True, text=True, check=True).stdout
    counts = collections.OrderedDict()
    for block in re.split(r"\n(?=[0-9a-f]+ <)", text):
        head = re.match(r"[0-9a-f]+ <([^>]+)>:", block)
        if not head:
            continue
        name = head.group(1)
        m = re.match(r"(%s)_(f32|f64)_(baseline|avx2|avx512)$" % "|".join(PRIMITIVES), name)
        if not m:
            continue
        body = block.splitlines()[1:]
        libm = sorted({c for c in re.findall(r"call.*<(\w+)@plt>", block)
                       if c.startswith(("exp", "log"))})
        counts[name] = (len(body), sum("%zmm" in l for l in body),
                        sum("%ymm" in l for l in body), sum("%xmm" in l for l in body),
                        libm)
    print(f"{os.path.basename(path)}")
    print(f"{'primitive':34s} {'instrs':>7s} {'zmm':>6s} {'ymm':>6s} {'xmm':>6s}  libm calls")
    for name, (n, z, y, x, libm) in counts.items():
        print(f"{name:34s} {n:7d} {z:6d} {y:6d} {x:6d}  {' '.join(libm) or '-'}")
    simd = [n for n in counts if not n.startswith(SCALAR_BY_DESIGN)]
    ok = all(counts[n][1] > 0 for n in simd if n.endswith("avx512")) and \
        all(counts[n][2] > 0 for n in simd if n.endswith("avx2"))
    print("vectorised:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
