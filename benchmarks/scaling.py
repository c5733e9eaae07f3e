"""OpenMP scaling of fastce's kernels: median time per thread count.

    python benchmarks/scaling.py [--threads 1,2,4,8,16] [--rounds 15]

Times fastce forward and loss + gradient (with a preallocated ``out=``) on
the (8192, 1000), (1024, 32768), (8, 21, 256, 256) and BCE (65536, 100)
workloads of ``python -m fastce``, on (65536, 1000) and on one huge row,
interleaving the thread counts round by round, and prints medians and the
speedup over 1 thread.  With torch installed, torch's forward at the same
thread counts is shown, and so is the time to stream the inputs once
(``torch.sum`` of the logits, plus the targets for BCE) at n threads: the
memory ceiling.  A kernel can scale no better than that read once its time
is the read's; on the 2-core VM the (1024, 32768), (8, 21, 256, 256) and
BCE (65536, 100) inputs exceed the 32 MB L3, and two threads read them only
about 1.2x faster than one.

Before the timed calls at n threads, one untimed call runs at n: GNU
OpenMP grows its thread team when a call asks for more threads than the
last one (torch's calls included), and on a 16-core VM that alone cost a
small call about 0.25 ms -- the cost of alternating team sizes, which a
training loop calling fastce at one thread count does not pay.
"""
import argparse
import time

import numpy as np

import fastce

WORKLOADS = {
    "B (8192, 1000)": ("ce", (8192, 1000)),
    "C (1024, 32768)": ("ce", (1024, 32768)),
    "D (8, 21, 256, 256)": ("ce", (8, 21, 256, 256)),
    "E BCE (65536, 100)": ("bce", (65536, 100)),
    "row (1, 250000)": ("ce", (1, 250000)),
    "(65536, 1000)": ("ce", (65536, 1000)),
}


def _calls(kind, shape, rng):
    x = rng.standard_normal(shape, dtype=np.float32)
    grad = np.empty_like(x)
    if kind == "bce":
        y = (rng.random(shape) < 0.3).astype(np.float32)
        fwd = lambda n: fastce.binary_cross_entropy_with_logits(x, y, n_threads=n)
        lg = lambda n: fastce.binary_cross_entropy_with_logits_and_grad(
            x, y, out=grad, n_threads=n)
        return x, y, fwd, lg
    t = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
    fwd = lambda n: fastce.cross_entropy(x, t, n_threads=n)
    lg = lambda n: fastce.cross_entropy_and_grad(x, t, out=grad, n_threads=n)
    return x, t, fwd, lg


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2,4,8,16")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print(f"{'workload':22s} {'thr':>3s} {'fwd ms':>8s} {'l+g ms':>8s} "
          f"{'fwd x1T':>7s} {'l+g x1T':>7s} {'torch fwd':>9s} {'read ms':>8s} "
          f"{'read x1T':>8s}")
    for name, (kind, shape) in WORKLOADS.items():
        x, t, fwd, lg = _calls(kind, shape, rng)
        if torch is not None:
            xt, tt = torch.from_numpy(x), torch.from_numpy(t)
            tf = (F.binary_cross_entropy_with_logits if kind == "bce"
                  else F.cross_entropy)
            # one streaming read of every input the kernel reads
            streams = [xt] + ([torch.from_numpy(t)] if kind == "bce" else [])
        times = {n: {"fwd": [], "lg": [], "torch": [], "read": []} for n in threads}
        for n in threads:  # warm up every team size
            fwd(n), lg(n)
        for _ in range(args.rounds):
            for n in threads:
                fwd(n)  # settle the team size (see the module docstring)
                for key, fn in (("fwd", fwd), ("lg", lg)):
                    t0 = time.perf_counter()
                    fn(n)
                    times[n][key].append(time.perf_counter() - t0)
                if torch is not None:
                    torch.set_num_threads(n)
                    with torch.no_grad():
                        t0 = time.perf_counter()
                        tf(xt, tt)
                        times[n]["torch"].append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        for a in streams:
                            a.sum()
                        times[n]["read"].append(time.perf_counter() - t0)
        base = {k: np.median(times[threads[0]][k]) if times[threads[0]][k] else float("nan")
                for k in ("fwd", "lg", "read")}
        for n in threads:
            med = {k: np.median(v) * 1e3 if v else float("nan")
                   for k, v in times[n].items()}
            print(f"{name:22s} {n:3d} {med['fwd']:8.3f} {med['lg']:8.3f} "
                  f"{base['fwd'] * 1e3 / med['fwd']:7.2f} "
                  f"{base['lg'] * 1e3 / med['lg']:7.2f} {med['torch']:9.3f} "
                  f"{med['read']:8.3f} {base['read'] * 1e3 / med['read']:8.2f}")


if __name__ == "__main__":
    main()
