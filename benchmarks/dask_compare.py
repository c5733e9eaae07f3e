"""fastce on Dask against the plain NumPy call, on the same in-memory data.

    python benchmarks/dask_compare.py                      # (2**20, 100) float32
    python benchmarks/dask_compare.py --rows 262144 --chunk-rows 32768 --rounds 5

The logits are persisted on a ``distributed.LocalCluster`` of 2 worker
processes with 1 thread each, in two placements, so the Dask timings exclude
moving the input; the plain call runs at 2 threads in this process on the
same values.  The placements:

- "made on workers": each worker makes its blocks (as data loaded or
  generated with Dask is), so they sit where NumPy allocated them;
- "shipped": ``da.from_array(x).persist()`` sends the blocks from this
  process.  distributed then leaves each array at its offset in the message
  frame, often misaligned for its dtype, and fastce copies such a block into
  an aligned per-thread buffer before its kernels run.

In both, each block's targets are copied onto the worker that holds the
block's logits before anything is timed, as a loader delivers them together
(generated apart, the target blocks sat mostly on one worker, and most
block calls first waited for a transfer).

Timed, as medians of interleaved rounds:

- forward: ``cross_entropy(X, t).compute()`` against the 2-thread call;
- loss + gradient: ``cross_entropy_and_grad``, the gradient persisted on the
  workers (as a training step would keep it) and the loss fetched;
- the same graphs on the local threaded scheduler (no processes, no
  serialisation);
- a no-op graph with the same blocks (one tiny task per block, the loss's
  reduction shape): what scheduling alone costs.

The forward calls (and the no-op graph) and the loss + gradient calls are
two groups, each interleaved on its own: a forward call timed right after a
loss + gradient call ran while the workers unmapped that call's gradient
blocks (1.6 GB of them at ``--rows 4194304``) and measured that instead.
Every timed call starts after an untimed pause (``--settle``): the cluster
shares this machine's cores, and a call timed while it still releases the
previous call's gradient blocks (or the scheduler, in this process, still
holds the GIL) loses a core it would otherwise have.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from fastce._bench.timing import interleaved_medians


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2 ** 20)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--chunk-rows", type=int, default=2 ** 17)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--settle", type=float, default=0.25,
                    help="seconds the cluster gets, untimed, before each timed call "
                         "(it releases the previous call's blocks meanwhile)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fastce

    def misaligned_blocks(dask_worker):
        """How many float arrays a worker holds at an address misaligned for
        their dtype (shipped blocks, and the copies it keeps of what it sent
        or received).  Nested: cloudpickle then sends it by value, and the
        workers need not import this script."""
        return sum(1 for value in dask_worker.data.values()
                   if isinstance(value, np.ndarray) and value.dtype.kind == "f"
                   and not value.flags.aligned)


    def colocated(X, T):
        """T's blocks copied, persisted, onto the workers that hold X's
        blocks of the same rows (the scheduler runs each copy where its large
        input is), as a loader gives a block's logits and targets together:
        the targets made apart from the logits sat mostly on one worker (15
        of 16 blocks), so most blocks' calls first waited for a transfer."""
        T_X = da.blockwise(lambda xb, tb: tb.copy(), "i", X, "ij", T, "i",
                           dtype=T.dtype, concatenate=True)
        T_X = client.persist(T_X)
        wait(T_X)
        where_x, where_t = client.who_has(X), client.who_has(T_X)
        apart = sum(not set(where_x[kx]) & set(where_t[kt])
                    for kx, kt in zip(sorted(where_x), sorted(where_t)))
        if apart:
            print(f"# {apart} target blocks not on their logits' worker")
        return T_X

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        chunks = (args.chunk_rows, args.classes)

        def generated():
            return (da.random.default_rng(0).standard_normal(
                        (args.rows, args.classes), chunks=chunks, dtype=np.float32),
                    da.random.default_rng(1).integers(0, args.classes, args.rows,
                                                      chunks=args.chunk_rows))
        made, T = client.persist(list(generated()))
        wait([made, T])
        made_t = colocated(made, T)
        # the plain call's copy of the same values, made in this process as a
        # NumPy user holds them.  Not fetched from the cluster: what a compute
        # fetches sits at its offset in a message frame (often misaligned, so
        # every fastce call on it would copy it first), and after such a fetch
        # of the 1.6 GB logits the cluster's forward calls took 1.3-2x longer,
        # with blocks moved between the workers
        x, t = dask.compute(*generated(), scheduler="threads")
        assert x.flags.aligned and t.flags.aligned
        with warnings.catch_warnings():
            # from_array of a large array warns that the graph is large
            warnings.simplefilter("ignore", UserWarning)
            shipped = da.from_array(x, chunks=chunks).persist()
            wait(shipped)
        shipped_t = colocated(shipped, T)
        Xl = da.from_array(x, chunks=chunks)
        Tl = da.from_array(t, chunks=args.chunk_rows)

        def dask_forward(X, T):
            return lambda: fastce.cross_entropy(X, T).compute()

        def dask_loss_grad(X, T):
            def call():
                loss, grad = fastce.cross_entropy_and_grad(X, T)
                loss, grad = client.persist([loss, grad])
                wait(grad)
                value = loss.compute()
                del grad
                return value
            return call

        def threads_forward():
            return fastce.cross_entropy(Xl, Tl).compute(scheduler="threads",
                                                        num_workers=2)

        def threads_loss_grad():
            return dask.compute(*fastce.cross_entropy_and_grad(Xl, Tl),
                                scheduler="threads", num_workers=2)[0]

        def noop():
            return made.map_blocks(lambda b: b[:1, :1], chunks=(1, 1)).sum().compute()

        # two groups, each interleaved on its own: a forward call timed
        # after a loss + gradient call would be timed while the workers
        # unmap that call's gradient blocks
        groups = [{
            "numpy forward": lambda: fastce.cross_entropy(x, t, n_threads=2),
            "made forward": dask_forward(made, made_t),
            "shipped forward": dask_forward(shipped, shipped_t),
            "threads forward": threads_forward,
            "no-op graph": noop,
        }, {
            "numpy l+g": lambda: fastce.cross_entropy_and_grad(x, t, n_threads=2),
            "made l+g": dask_loss_grad(made, made_t),
            "shipped l+g": dask_loss_grad(shipped, shipped_t),
            "threads l+g": threads_loss_grad,
        }]
        ref = fastce.cross_entropy(x, t)
        for X, T_X in ((made, made_t), (shipped, shipped_t)):
            assert abs(dask_forward(X, T_X)() - ref) <= 1e-5 * abs(ref)
        misaligned = sum(client.run(misaligned_blocks).values())
        med = {}
        for impls in groups:
            group_med, rounds = interleaved_medians(impls, args.rounds, None,
                                                    settle=lambda: time.sleep(args.settle))
            med.update(group_med)
    mb = x.nbytes / 2 ** 20
    n_blocks = -(-args.rows // args.chunk_rows)
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; logits "
          f"({args.rows}, {args.classes}) float32, {mb:.0f} MiB, {n_blocks} blocks "
          f"({misaligned} float arrays misaligned on the workers); medians of "
          f"{rounds} interleaved rounds\n")
    rows = []
    for what in ("forward", "l+g"):
        base = med[f"numpy {what}"]
        rows.append([what, f"{base * 1e3:.1f}"]
                    + [v for where in ("made", "shipped") for v in
                       (f"{med[f'{where} {what}'] * 1e3:.1f}",
                        f"{base / med[f'{where} {what}']:.2f}")]
                    + [f"{med[f'threads {what}'] * 1e3:.1f}",
                       f"{base / med[f'threads {what}']:.2f}",
                       f"{med['no-op graph'] * 1e3:.1f}"])
    header = ["call", "plain 2 threads ms", "cluster, made on workers ms", "vs plain",
              "cluster, shipped ms", "vs plain", "threaded scheduler ms", "vs plain",
              "no-op graph ms"]
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
