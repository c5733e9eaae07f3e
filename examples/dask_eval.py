"""Evaluate a classifier's loss and accuracy over more logits than a worker
can hold, with fastce on Dask.

A (2**24, 100) float32 logits array -- 6.4 GB -- is generated block by block
on a ``distributed.LocalCluster`` (each block from its own seed: a
classifier's logits, right about half the time), together with its
targets; fastce's cross-entropy runs per block, and the mean is the global
sum divided by the global count, as one NumPy call over the whole array would
give.  No worker ever holds more than a few blocks.

    python examples/dask_eval.py                               # 2**24 rows, 2 workers
    python examples/dask_eval.py --rows 65536 --chunk-rows 8192   # a quick run

Prints the loss, the accuracy, the wall time and each worker's peak resident
memory next to the array's size.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def block_logits(block_id, rows, n_classes, seed, dtype=np.float32):
    """The logits and targets of one block, from its own seed."""
    rng = np.random.default_rng((seed, block_id))
    target = rng.integers(0, n_classes, rows)
    logits = rng.standard_normal((rows, n_classes), dtype=np.float32).astype(dtype)
    # a model that puts its mass on the right class more often than not
    logits[np.arange(rows), target] += 2.5
    return logits, target


def _logits_block(block_info=None, *, n_classes, seed):
    info = block_info[None]
    rows = info["chunk-shape"][0]
    return block_logits(info["chunk-location"][0], rows, n_classes, seed)[0]


def _target_block(block_info=None, *, n_classes, seed):
    info = block_info[None]
    rows = info["chunk-shape"][0]
    return block_logits(info["chunk-location"][0], rows, n_classes, seed)[1]


def lazy_dataset(rows, n_classes, chunk_rows, seed=0):
    """The logits (rows, n_classes) and targets (rows,) as Dask arrays whose
    blocks are generated where they are computed."""
    import dask.array as da
    chunks = da.core.normalize_chunks((chunk_rows,), (rows,))[0]
    logits = da.map_blocks(_logits_block, chunks=(chunks, (n_classes,)), dtype=np.float32,
                           n_classes=n_classes, seed=seed,
                           meta=np.empty((0, 0), np.float32))
    target = da.map_blocks(_target_block, chunks=(chunks,), dtype=np.int64,
                           n_classes=n_classes, seed=seed, meta=np.empty((0,), np.int64))
    return logits, target


def evaluate(client, rows, n_classes, chunk_rows, *, progress=True, seed=0):
    """(mean loss, accuracy) over the generated set, computed on ``client``."""
    import dask.array as da
    import fastce
    logits, target = lazy_dataset(rows, n_classes, chunk_rows, seed)
    loss = fastce.cross_entropy(logits, target)
    accuracy = (da.argmax(logits, axis=1) == target).mean()
    futures = client.compute([loss, accuracy])
    if progress:
        from distributed import progress as show_progress
        show_progress(futures)
        print()
    return tuple(float(f.result()) for f in futures)


def _peak_rss_mib():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2 ** 24)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--chunk-rows", type=int, default=2 ** 17)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GiB", help="per worker")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    from distributed import Client, LocalCluster
    size_mib = args.rows * args.classes * 4 / 2 ** 20
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      memory_limit=args.memory_limit, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        print(f"logits ({args.rows}, {args.classes}) float32: {size_mib:.0f} MiB in "
              f"blocks of {args.chunk_rows} rows, on {args.workers} workers of "
              f"{args.memory_limit}")
        start = time.perf_counter()
        loss, accuracy = evaluate(client, args.rows, args.classes, args.chunk_rows,
                                  progress=not args.no_progress)
        elapsed = time.perf_counter() - start
        peaks = client.run(_peak_rss_mib)
    print(f"mean cross-entropy {loss:.6f}, accuracy {accuracy:.4f}, {elapsed:.1f} s")
    for worker, peak in sorted(peaks.items()):
        print(f"  worker {worker}: peak resident memory {peak:.0f} MiB "
              f"({peak / size_mib:.1%} of the logits)")
    return loss, accuracy, peaks


if __name__ == "__main__":
    main()
