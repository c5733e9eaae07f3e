"""The real machine floor of the benchmark workloads (not part of fastce).

`floor.c` holds kernels that do only the unavoidable work of each workload
(one streaming read, one exp per element summed per row, one log per row or
element; plus one write per element for loss + gradient) with the fastest
exp we could write.  `MachineFloor` compiles it with the compiler and flags
of fastce's own build for the instruction set fastce selected, loads it
with ctypes, and gives `fastce._bench.run` the callables to time in the
same interleaved pass as fastce and torch::

    from machine_floor import MachineFloor
    floor = MachineFloor()              # compiles once per source/flags
    floor.describe(threads=(1, 2))      # exp/log error, bandwidth lines

`python benchmarks/compare.py` uses it; `python -m fastce bench` (the
package alone) falls back to the np.exp / torch.exp floor.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np

__all__ = ["MachineFloor", "FloorUnavailable", "ISA_FLAGS"]

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "floor.c")

#: The flags of each fastce SIMD variant: the `#pragma GCC target` strings of
#: fastce/_kernels/simd.c, as command-line options.
ISA_FLAGS = {
    "baseline": [],
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma",
               "-mprefer-vector-width=512"],
}

_P = np.ctypeslib.ndpointer
_F32 = _P(np.float32, flags="C_CONTIGUOUS")
_F64 = _P(np.float64, flags="C_CONTIGUOUS")
_INTP = ctypes.c_ssize_t
_INT = ctypes.c_int


class FloorUnavailable(RuntimeError):
    """The floor kernels could not be built here (no C compiler, ...)."""


def _compiler_command():
    cc = sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def _compiler_version(command):
    """What the compiler says of itself (part of the cache key, so an
    upgraded compiler rebuilds)."""
    try:
        return subprocess.run(command[:1] + ["--version"], capture_output=True,
                              text=True).stdout
    except OSError:
        return ""


def _private_dir():
    """A cache directory of this user's only (mode 0700), so no other local
    user can plant the library that ctypes loads."""
    path = os.path.join(tempfile.gettempdir(), f"fastce-floor-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise FloorUnavailable(f"{path} is not a private directory of this user")
    return path


def _signatures(lib):
    """ctypes prototypes; a NULL gradient is passed as None."""
    grad32 = ctypes.c_void_p
    spec = {
        "floor_rows_f32": ([_F32, _INTP, _INTP, grad32, _INT], ctypes.c_double),
        "floor_rows_f64": ([_F64, _INTP, _INTP, grad32, _INT], ctypes.c_double),
        "floor_cols_f32": ([_F32, _INTP, _INTP, _INTP, grad32, _INT], ctypes.c_double),
        "floor_small_f32": ([_F32, _INTP, _INTP, grad32, _INT], ctypes.c_double),
        "floor_bce_f32": ([_F32, _F32, _INTP, grad32, _INT], ctypes.c_double),
        "floor_read": ([_F32, _INTP, _INT], ctypes.c_double),
        "floor_copy": ([_F32, _F32, _INTP, _INT, _INT], ctypes.c_double),
        "floor_exp_f32": ([_F32, _F32, _INTP], None),
        "floor_exp_f64": ([_F64, _F64, _INTP], None),
        "floor_log_f32": ([_F32, _F32, _INTP], None),
        "floor_exp_cache": ([_INTP, _INT], ctypes.c_double),
        "floor_isa": ([], ctypes.c_char_p),
        "floor_team": ([_INT], _INT),
    }
    for name, (args, res) in spec.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res


def _address(a):
    return None if a is None else a.ctypes.data


def _aligned_empty_like(a, align=64):
    """An uninitialised array like ``a`` whose data is 64-byte aligned (the
    floor's non-temporal stores need it; NumPy only promises 16)."""
    raw = np.empty(a.nbytes + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)


class MachineFloor:
    """The compiled floor kernels, for the SIMD variant fastce runs.

    Parameters
    ----------
    isa : {"avx512", "avx2", "baseline"}, optional
        Default: the variant fastce selected at import.
    build_dir : str, optional
        Where the shared library is cached (default: the temp directory).

    Raises
    ------
    FloorUnavailable
        When the compiler is missing or fails.
    """

    def __init__(self, isa=None, build_dir=None):
        from fastce._kernels import _runtime

        self.isa = isa or _runtime.arch_name()
        info = _runtime.build_info()
        flags = shlex.split(info["cflags"]) + ISA_FLAGS.get(self.isa, [])
        self.command = _compiler_command() + flags + ["-shared", "-fPIC"]
        with open(SOURCE, "rb") as fh:
            key = fh.read() + " ".join(self.command).encode()
        key += _compiler_version(self.command).encode()
        digest = hashlib.sha1(key).hexdigest()
        build_dir = build_dir or _private_dir()
        self.path = os.path.join(build_dir, f"fastce-floor-{digest[:12]}.so")
        if not os.path.exists(self.path):
            tmp = f"{self.path}.{os.getpid()}.tmp"
            try:
                res = subprocess.run(self.command + [SOURCE, "-o", tmp, "-lm"],
                                     capture_output=True, text=True)
            except OSError as exc:
                raise FloorUnavailable(f"no C compiler: {exc}") from exc
            if res.returncode != 0:
                raise FloorUnavailable("building the floor kernels failed:\n" + res.stderr)
            os.replace(tmp, self.path)
        self.lib = ctypes.CDLL(self.path)
        _signatures(self.lib)
        self.kernel_isa = self.lib.floor_isa().decode()

    # ---- what one workload's floor runs ----
    def callables(self, workload, n_threads):
        """``{"floor_fwd": fn, "floor_grad": fn}`` for `workload`'s data on
        ``n_threads`` threads, plus ``"core_probe"`` (in-cache exp work of a
        fixed size per thread, to tell a busy core from poor scaling) when
        the floor kernels get ``n_threads`` threads; ``{}`` for a shape they
        have no kernel for."""
        data = workload.arrays()
        x = data["x"]
        if x.dtype == np.float64 and (x.ndim > 2 or workload.loss != "cross_entropy"):
            return {}  # float64 floors exist for rows only
        grad = _aligned_empty_like(x)
        lib, n = self.lib, int(n_threads)
        if workload.loss == "bce_with_logits":
            y = np.ascontiguousarray(data["target"], dtype=x.dtype)
            flat_x, flat_y = x.reshape(-1), y.reshape(-1)

            def run(g):
                return lib.floor_bce_f32(flat_x, flat_y, flat_x.size, _address(g), n)
        elif x.ndim > 2:
            inner = int(np.prod(x.shape[2:]))
            if inner % 64:
                return {}  # the column floor works in blocks of 64 positions

            def run(g):
                return lib.floor_cols_f32(x, x.shape[0], x.shape[1], inner, _address(g), n)
        elif x.shape[1] <= 16 and x.shape[0] % 16 == 0 and x.dtype == np.float32:
            def run(g):
                return lib.floor_small_f32(x, x.shape[0], x.shape[1], _address(g), n)
        else:
            fn = lib.floor_rows_f64 if x.dtype == np.float64 else lib.floor_rows_f32

            def run(g):
                return fn(x, x.shape[0], x.shape[1], _address(g), n)
        impls = {"floor_fwd": lambda: run(None), "floor_grad": lambda: run(grad)}
        if lib.floor_team(n) >= n:
            # without n threads here (a serial build) the probe would read
            # as a busy core: no probe, no verdict
            reps = 2048 * n  # ~2 ms: long enough that waking a thread team is noise
            impls["core_probe"] = lambda: lib.floor_exp_cache(reps, n)
        return impls

    # ---- the exp, the log and the memory system, for the table's header ----
    def accuracy(self):
        """Max relative error of the floor's exp (float32 on [-87, 0],
        float64 on [-700, 0]) and of its log (float32 on [1, 2^20])."""
        x32 = np.linspace(-87.0, 0.0, 1 << 21, dtype=np.float32)
        out32 = np.empty_like(x32)
        self.lib.floor_exp_f32(x32, out32, x32.size)
        exp32 = np.max(np.abs(out32 / np.exp(x32.astype(np.float64)) - 1.0))
        x64 = np.linspace(-700.0, 0.0, 1 << 20)
        out64 = np.empty_like(x64)
        self.lib.floor_exp_f64(x64, out64, x64.size)
        exp64 = np.max(np.abs(out64 / np.exp(x64) - 1.0))
        v = np.geomspace(1.0, 2.0 ** 20, 1 << 21, dtype=np.float32)
        logv = np.empty_like(v)
        self.lib.floor_log_f32(v, logv, v.size)
        ref = np.log(v.astype(np.float64))
        log_abs = np.max(np.abs(logv - ref))
        return {"exp_f32_rel": float(exp32), "exp_f64_rel": float(exp64),
                "log_f32_abs": float(log_abs)}

    def bandwidth(self, threads=(1, 2), mbytes=256, rounds=7):
        """GB/s of a streaming read, a copy with regular stores and a copy
        with non-temporal stores of ``mbytes`` MB, per thread count
        (medians of ``rounds`` interleaved rounds)."""
        n = (mbytes << 20) // 4
        src = np.ones(n, dtype=np.float32)
        dst = _aligned_empty_like(src)
        dst.fill(0)
        lib = self.lib
        result = {}
        for t in threads:
            tests = {"read": (lambda: lib.floor_read(src, n, t), src.nbytes),
                     "copy": (lambda: lib.floor_copy(src, dst, n, 0, t), 2 * src.nbytes),
                     "copy_nt": (lambda: lib.floor_copy(src, dst, n, 1, t), 2 * src.nbytes)}
            samples = {k: [] for k in tests}
            for _ in range(rounds):
                for k, (fn, _) in tests.items():
                    t0 = time.perf_counter()
                    fn()
                    samples[k].append(time.perf_counter() - t0)
            result[t] = {k: tests[k][1] / np.median(v) / 1e9 for k, v in samples.items()}
        return result

    def describe(self, threads=(1, 2), mbytes=256):
        """Lines for the benchmark's header: the kernels' ISA, the exp/log
        error, the bandwidth at each thread count (over ``mbytes`` MB)."""
        acc = self.accuracy()
        bw = self.bandwidth(threads, mbytes)
        lines = [f"machine floor: benchmarks/machine_floor/floor.c, {self.kernel_isa} "
                 f"kernels ({self.isa} flags); exp max rel err {acc['exp_f32_rel']:.1e} "
                 f"(f32), {acc['exp_f64_rel']:.1e} (f64); log max abs err "
                 f"{acc['log_f32_abs']:.1e} (f32)"]
        for t, v in bw.items():
            lines.append(f"memory, {t} thread{'s' if t > 1 else ''}: read {v['read']:.0f} GB/s, "
                         f"copy {v['copy']:.0f} GB/s, copy with non-temporal stores "
                         f"{v['copy_nt']:.0f} GB/s ({mbytes} MB, bytes read + written)")
        return lines


def try_machine_floor(stream=None):
    """`MachineFloor()`, or None (with the reason on ``stream``) when it
    cannot be built."""
    try:
        return MachineFloor()
    except FloorUnavailable as exc:
        print(f"machine floor unavailable: {exc}", file=stream or sys.stderr)
        return None
