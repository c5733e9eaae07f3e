"""Results and their presentation: `BenchRow`, `format_table`,
`environment_summary`.

A `BenchRow` holds the medians of one workload at one thread count and
derives the ratios people read (against torch, against the machine floor,
against one thread); `format_table` renders rows as aligned text or as a
Markdown table for the README.  Kept apart from the timing so the table
can be re-rendered from saved rows without running anything.
"""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass

import numpy as np

import fastce

from .references import import_torch

__all__ = ["BenchRow", "format_table", "environment_summary", "ratio"]

_SHORT_DTYPE = {"float32": "f32", "float64": "f64"}


def ratio(num, den):
    """``num / den``, or None when either is missing or ``den`` is not > 0."""
    if num is None or den is None or den <= 0:
        return None
    return num / den


@dataclass
class BenchRow:
    """The results of one workload at one thread count (times in ms, medians).

    ``None`` marks what was not measured (torch columns without torch).  The
    NumPy reference is single-threaded: it is timed in a workload's first
    pass and that time is repeated in its later rows.
    """

    workload: str
    label: str
    dtype: str
    n_threads: int
    rounds: int
    fastce_fwd_ms: float
    fastce_grad_ms: float
    numpy_fwd_ms: float | None
    torch_fwd_ms: float | None
    torch_fwdbwd_ms: float | None
    floor_read_ms: float
    floor_exp_ms: float
    floor_write_ms: float
    floor_exp_source: str
    floor_fwd_ms: float
    floor_grad_ms: float
    fwd_peak_mb: float
    grad_peak_mb: float
    input_mb: float
    fwd_speedup_vs_1thread: float | None = None
    grad_speedup_vs_1thread: float | None = None
    machine_floor_fwd_ms: float | None = None
    machine_floor_grad_ms: float | None = None
    core_probe_ms: float | None = None
    core_efficiency: float | None = None

    #: A row's extra threads count as free when the core probe kept this
    #: share of its one-thread rate on each.
    FREE_CORE_EFFICIENCY = 0.85

    @property
    def cores_busy(self) -> bool:
        """True when the core probe shows the extra threads did not get
        cores of their own during this pass (another process ran there):
        its speedup is then not a measure of fastce's scaling."""
        return (self.core_efficiency is not None
                and self.core_efficiency < self.FREE_CORE_EFFICIENCY)

    @property
    def torch_fwd_ratio(self):
        """torch forward / fastce forward: how many times faster fastce is."""
        return ratio(self.torch_fwd_ms, self.fastce_fwd_ms)

    @property
    def torch_grad_ratio(self):
        """torch forward+backward / fastce loss+grad."""
        return ratio(self.torch_fwdbwd_ms, self.fastce_grad_ms)

    @property
    def numpy_fwd_ratio(self):
        """NumPy reference forward / fastce forward."""
        return ratio(self.numpy_fwd_ms, self.fastce_fwd_ms)

    @property
    def fwd_over_floor(self):
        """fastce forward / the real floor kernel's forward (1.0 would be
        the machine's limit); None without the floor kernels."""
        return ratio(self.fastce_fwd_ms, self.machine_floor_fwd_ms)

    @property
    def grad_over_floor(self):
        """fastce loss+grad / the real floor kernel's loss + gradient."""
        return ratio(self.fastce_grad_ms, self.machine_floor_grad_ms)

    @property
    def fwd_over_exp_floor(self):
        """fastce forward / floor_fwd (the np.exp / torch.exp floor)."""
        return ratio(self.fastce_fwd_ms, self.floor_fwd_ms)

    @property
    def grad_over_exp_floor(self):
        """fastce loss+grad / floor_grad (the np.exp / torch.exp floor)."""
        return ratio(self.fastce_grad_ms, self.floor_grad_ms)

    @property
    def fwd_peak_pct(self):
        """Forward peak extra memory as a percentage of the input's size."""
        return 100.0 * self.fwd_peak_mb / self.input_mb if self.input_mb else None

    def as_dict(self) -> dict:
        """All fields and derived ratios, JSON-ready."""
        d = asdict(self)
        for name in ("torch_fwd_ratio", "torch_grad_ratio", "numpy_fwd_ratio",
                     "fwd_over_floor", "grad_over_floor", "fwd_over_exp_floor",
                     "grad_over_exp_floor", "fwd_peak_pct", "cores_busy"):
            d[name] = getattr(self, name)
        return d


def _fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def _fmt_x(v):
    return "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def _fmt_speedup(r, value):
    return "busy" if r.cores_busy else _fmt_x(value)


def _fmt_mem(r):
    pct = r.fwd_peak_pct
    return f"{r.fwd_peak_mb:.2f} ({pct:.1f}%)" if pct is not None else f"{r.fwd_peak_mb:.2f}"


# (group, name, value of a row as text); the group heads the two-line header
_COLUMNS = (
    ("", "workload", lambda r: r.workload),
    ("", "dtype", lambda r: _SHORT_DTYPE.get(r.dtype, r.dtype)),
    ("", "thr", lambda r: str(r.n_threads)),
    ("fastce ms", "fwd", lambda r: _fmt_ms(r.fastce_fwd_ms)),
    ("fastce ms", "l+g", lambda r: _fmt_ms(r.fastce_grad_ms)),
    ("numpy ms", "fwd", lambda r: _fmt_ms(r.numpy_fwd_ms)),
    ("torch ms", "fwd", lambda r: _fmt_ms(r.torch_fwd_ms)),
    ("torch ms", "f+b", lambda r: _fmt_ms(r.torch_fwdbwd_ms)),
    ("× faster than torch", "fwd", lambda r: _fmt_x(r.torch_fwd_ratio)),
    ("× faster than torch", "l+g", lambda r: _fmt_x(r.torch_grad_ratio)),
    ("floor ms", "fwd", lambda r: _fmt_ms(r.machine_floor_fwd_ms)),
    ("floor ms", "l+g", lambda r: _fmt_ms(r.machine_floor_grad_ms)),
    ("× floor", "fwd", lambda r: _fmt_x(r.fwd_over_floor)),
    ("× floor", "l+g", lambda r: _fmt_x(r.grad_over_floor)),
    ("× exp floor", "fwd", lambda r: _fmt_x(r.fwd_over_exp_floor)),
    ("× exp floor", "l+g", lambda r: _fmt_x(r.grad_over_exp_floor)),
    ("fwd peak extra", "MB (% input)", _fmt_mem),
    ("speedup vs 1T", "fwd", lambda r: _fmt_speedup(r, r.fwd_speedup_vs_1thread)),
    ("speedup vs 1T", "l+g", lambda r: _fmt_speedup(r, r.grad_speedup_vs_1thread)),
)

# the real floor's columns, left out when no row has it
_MACHINE_FLOOR_GROUPS = ("floor ms", "× floor")


def format_table(rows, markdown=False, legend=True):
    """Render benchmark rows as an aligned text table (or Markdown).

    Parameters
    ----------
    rows : list of BenchRow
    markdown : bool, default False
        A GitHub-flavoured Markdown table, for pasting into a README.
    legend : bool, default True
        Append the workload descriptions and what the columns mean.

    Returns
    -------
    str
    """
    columns = _COLUMNS
    if rows and all(r.torch_fwd_ms is None for r in rows):  # torch not installed
        columns = tuple(c for c in columns if "torch" not in c[0])
    machine = any(r.machine_floor_fwd_ms is not None for r in rows)
    if not machine:
        columns = tuple(c for c in columns if c[0] not in _MACHINE_FLOOR_GROUPS)
    cells = [[fmt(r) for _, _, fmt in columns] for r in rows]
    lines = []
    if markdown:
        header = [f"{g} {n}".strip() for g, n, _ in columns]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" if i < 3 else "---:"
                                    for i in range(len(header))) + "|")
        lines.extend("| " + " | ".join(c) + " |" for c in cells)
    else:
        widths = [max([len(n)] + [len(c[i]) for c in cells])
                  for i, (_, n, _) in enumerate(columns)]
        # widen a group's columns so its title fits over them
        groups: dict[str, list[int]] = {}
        for i, (g, _, _) in enumerate(columns):
            groups.setdefault(g, []).append(i)
        for g, idx in groups.items():
            span = sum(widths[i] for i in idx) + 2 * (len(idx) - 1)
            if len(g) > span:
                widths[idx[-1]] += len(g) - span
        top = []
        for g, idx in groups.items():
            span = sum(widths[i] for i in idx) + 2 * (len(idx) - 1)
            top.append(g.center(span))
        lines.append("  ".join(top).rstrip())

        def line(values):
            out = []
            for i, v in enumerate(values):
                out.append(v.ljust(widths[i]) if i < 3 else v.rjust(widths[i]))
            return "  ".join(out).rstrip()

        lines.append(line([n for _, n, _ in columns]))
        lines.append("  ".join("-" * w for w in widths))
        previous = None
        for r, c in zip(rows, cells):
            if previous is not None and r.workload != previous:
                lines.append("")
            previous = r.workload
            lines.append(line(c))
    if legend and rows:
        lines.append("")
        seen = []
        for r in rows:
            if r.label not in seen:
                seen.append(r.label)
        lines.extend(("- " if markdown else "  ") + s for s in seen)
        notes = [
            "fwd: the loss only; l+g: loss + gradient (fastce with a preallocated "
            "out=, torch forward + backward); medians of interleaved rounds "
            f"({_span(r.rounds for r in rows)} rounds).",
            "× faster than torch: torch time / fastce time at the same thread count.",
            "× exp floor: fastce time / max(one read of the input, one exp per "
            "element at the faster in-cache rate of np.exp / torch.exp), + one write "
            "of an input-sized buffer for l+g (context: fastce's exp beats both).",
            "fwd peak extra: memory the fastce forward allocates (tracemalloc), "
            "against the input's size.",
            "speedup vs 1T: fastce time at 1 thread / at this thread count"
            + ("; 'busy': the core probe ran below "
               f"{BenchRow.FREE_CORE_EFFICIENCY:.0%} of its one-thread rate per thread "
               "in this pass, so another process had a core" if machine else "") + ".",
        ]
        if machine:
            notes.insert(2, "floor: the floor kernels of benchmarks/machine_floor "
                         "(one read, one exp per element summed per row, one log per "
                         "row; + one write per element for l+g), timed in the same "
                         "pass; × floor: fastce time / that.")
        if any(r.numpy_fwd_ms is not None for r in rows) and len(
                {r.n_threads for r in rows}) > 1:
            notes.append("numpy (single-threaded) is timed in the first thread pass "
                         "and repeated on the others.")
        lines.append("")
        lines.extend(("- " if markdown else "  ") + s for s in notes)
    return "\n".join(lines)


def _span(values):
    values = list(values)
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def environment_summary() -> str:
    """One line: fastce, SIMD variant, OpenMP, numpy, torch, CPU."""
    from fastce._kernels import _runtime

    info = _runtime.build_info()
    torch = import_torch(True)
    parts = [
        f"fastce {fastce.__version__} ({_runtime.arch_name()}, "
        f"OpenMP {'on' if info['openmp'] else 'off'}, "
        f"{fastce.get_num_threads()} threads, {_runtime.num_procs()} cores)",
        f"numpy {np.__version__}",
        f"torch {torch.__version__}" if torch is not None else "torch not installed",
        f"Python {platform.python_version()}",
        platform.machine(),
    ]
    return ", ".join(parts)
