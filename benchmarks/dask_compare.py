"""fastce on Dask against the plain NumPy call, on the same in-memory data.

    python benchmarks/dask_compare.py                      # (2**20, 100) float32
    python benchmarks/dask_compare.py --rows 262144 --chunk-rows 32768 --rounds 5

The logits are persisted on a ``distributed.LocalCluster`` of 2 worker
processes with 1 thread each, so the Dask timings exclude moving the input;
the plain call runs at 2 threads in this process.  Timed, as medians of
interleaved rounds:

- forward: ``cross_entropy(X, t).compute()`` against the 2-thread call;
- loss + gradient: ``cross_entropy_and_grad``, the gradient persisted on the
  workers (as a training step would keep it) and the loss fetched;
- the same graphs on the local threaded scheduler (no processes, no
  serialisation);
- a no-op graph with the same blocks (one tiny task per block, the loss's
  reduction shape): what scheduling alone costs.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from fastce._bench.timing import interleaved_medians


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2 ** 20)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--chunk-rows", type=int, default=2 ** 17)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fastce

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, args.classes), dtype=np.float32)
    t = rng.integers(0, args.classes, args.rows)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        X = da.from_array(x, chunks=(args.chunk_rows, args.classes)).persist()
        T = da.from_array(t, chunks=args.chunk_rows).persist()
        wait([X, T])
        Xl = da.from_array(x, chunks=(args.chunk_rows, args.classes))
        Tl = da.from_array(t, chunks=args.chunk_rows)

        def dask_forward():
            return fastce.cross_entropy(X, T).compute()

        def dask_loss_grad():
            loss, grad = fastce.cross_entropy_and_grad(X, T)
            loss, grad = client.persist([loss, grad])
            wait(grad)
            value = loss.compute()
            del grad
            return value

        def threads_forward():
            return fastce.cross_entropy(Xl, Tl).compute(scheduler="threads",
                                                        num_workers=2)

        def threads_loss_grad():
            return dask.compute(*fastce.cross_entropy_and_grad(Xl, Tl),
                                scheduler="threads", num_workers=2)[0]

        def noop():
            return X.map_blocks(lambda b: b[:1, :1], chunks=(1, 1)).sum().compute()

        impls = {
            "numpy forward": lambda: fastce.cross_entropy(x, t, n_threads=2),
            "dask forward": dask_forward,
            "threads forward": threads_forward,
            "numpy l+g": lambda: fastce.cross_entropy_and_grad(x, t, n_threads=2),
            "dask l+g": dask_loss_grad,
            "threads l+g": threads_loss_grad,
            "no-op graph": noop,
        }
        ref = fastce.cross_entropy(x, t)
        assert abs(dask_forward() - ref) <= 1e-5 * abs(ref)
        med, rounds = interleaved_medians(impls, args.rounds, None)
    mb = x.nbytes / 2 ** 20
    n_blocks = -(-args.rows // args.chunk_rows)
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; logits "
          f"({args.rows}, {args.classes}) float32, {mb:.0f} MiB, {n_blocks} blocks; "
          f"medians of {rounds} interleaved rounds\n")
    rows = []
    for what in ("forward", "l+g"):
        base = med[f"numpy {what}"]
        rows.append([what, f"{base * 1e3:.1f}", f"{med[f'dask {what}'] * 1e3:.1f}",
                     f"{base / med[f'dask {what}']:.2f}",
                     f"{med[f'threads {what}'] * 1e3:.1f}",
                     f"{base / med[f'threads {what}']:.2f}",
                     f"{med['no-op graph'] * 1e3:.1f}"])
    header = ["call", "plain 2 threads ms", "LocalCluster 2x1 ms", "throughput vs plain",
              "threaded scheduler ms", "throughput vs plain", "no-op graph ms"]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        for r in [header] + rows:
            print("  ".join(f"{c:>22}" for c in r))
    return med


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
