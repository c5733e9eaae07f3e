"""The benchmark's real floor (benchmarks/machine_floor): its kernels compute
what they claim, the compare table uses them, and the loop counter finds
their loops.  The floor is not part of the package; these tests keep the
numbers it produces honest."""
import io
import os
import shutil
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import fastce  # noqa: E402
from fastce._bench import get_workloads, run_benchmarks  # noqa: E402
from fastce._bench.report import BenchRow, format_table  # noqa: E402
from fastce._kernels import _runtime  # noqa: E402

machine_floor = pytest.importorskip("machine_floor")


@pytest.fixture(scope="module")
def floor(tmp_path_factory):
    try:
        return machine_floor.MachineFloor(build_dir=str(tmp_path_factory.mktemp("floor")))
    except machine_floor.FloorUnavailable as exc:
        pytest.skip(f"floor kernels not buildable here: {exc}")


def _lse(x, axis):
    x = x.astype(np.float64)
    m = x.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis=axis))


def _softmax(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _grad_buffer(x):
    return machine_floor._aligned_empty_like(x)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("shape", [(64, 1000), (8, 5000), (33, 37), (5, 1)])
def test_rows_f32_give_the_log_sum_exp_and_softmax(floor, shape, n_threads):
    rng = np.random.default_rng(0)
    # a growing max across 2048-element chunks exercises the rescale
    x = (rng.standard_normal(shape) * 3 + np.linspace(0, 20, shape[1])).astype(np.float32)
    grad = _grad_buffer(x)
    total = floor.lib.floor_rows_f32(x, shape[0], shape[1], grad.ctypes.data, n_threads)
    np.testing.assert_allclose(total, _lse(x, 1).sum(), rtol=2e-6)
    np.testing.assert_allclose(grad, _softmax(x, 1), rtol=2e-6, atol=1e-8)
    assert floor.lib.floor_rows_f32(x, shape[0], shape[1], None, n_threads) == total


@pytest.mark.parametrize("n_threads", [1, 2])
def test_rows_f64(floor, n_threads):
    x = np.random.default_rng(1).standard_normal((16, 3001)) * 10
    grad = _grad_buffer(x)
    total = floor.lib.floor_rows_f64(x, 16, 3001, grad.ctypes.data, n_threads)
    np.testing.assert_allclose(total, _lse(x, 1).sum(), rtol=1e-13)
    np.testing.assert_allclose(grad, _softmax(x, 1), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("n_classes", [1, 3, 10, 16])
def test_small_rows_transpose_in_registers(floor, n_classes):
    x = np.random.default_rng(2).standard_normal((64, n_classes), dtype=np.float32) * 4
    grad = _grad_buffer(x)
    total = floor.lib.floor_small_f32(x, 64, n_classes, grad.ctypes.data, 2)
    np.testing.assert_allclose(total, _lse(x, 1).sum(), rtol=2e-6)
    np.testing.assert_allclose(grad, _softmax(x, 1), rtol=2e-6, atol=1e-8)


def test_small_rows_refuse_what_they_cannot_do(floor):
    x = np.zeros((20, 10), dtype=np.float32)
    assert np.isnan(floor.lib.floor_small_f32(x, 20, 10, None, 1))   # rows % 16
    y = np.zeros((16, 17), dtype=np.float32)
    assert np.isnan(floor.lib.floor_small_f32(y, 16, 17, None, 1))   # > 16 classes


def test_columns_over_a_strided_class_axis(floor):
    x = np.random.default_rng(3).standard_normal((3, 21, 128), dtype=np.float32) * 2
    grad = _grad_buffer(x)
    total = floor.lib.floor_cols_f32(x, 3, 21, 128, grad.ctypes.data, 2)
    np.testing.assert_allclose(total, _lse(x, 1).sum(), rtol=2e-6)
    np.testing.assert_allclose(grad, _softmax(x, 1), rtol=2e-6, atol=1e-8)
    assert np.isnan(floor.lib.floor_cols_f32(x[:, :, :100].copy(), 3, 21, 100, None, 1))


@pytest.mark.parametrize("n", [4096 * 3, 1000, 17])
def test_bce(floor, n):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(n) * 6).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    grad = _grad_buffer(x)
    total = floor.lib.floor_bce_f32(x, y, n, grad.ctypes.data, 2)
    xd = x.astype(np.float64)
    ref = np.maximum(xd, 0) - xd * y + np.log1p(np.exp(-np.abs(xd)))
    np.testing.assert_allclose(total, ref.sum(), rtol=1e-5)
    np.testing.assert_allclose(grad, 1 / (1 + np.exp(-xd)) - y, atol=1e-6)


def test_memory_kernels(floor):
    x = np.arange(4096 * 4, dtype=np.float32)
    assert floor.lib.floor_read(x, x.size, 2) == pytest.approx(x.sum(dtype=np.float64))
    for nt in (0, 1):
        y = _grad_buffer(x)
        floor.lib.floor_copy(x, y, x.size, nt, 2)
        np.testing.assert_array_equal(y, x)


def test_accuracy_is_what_the_header_prints(floor):
    acc = floor.accuracy()
    if floor.kernel_isa == "avx512":
        assert 1e-8 < acc["exp_f32_rel"] < 5e-7      # the degree-2 table exp
        assert acc["exp_f64_rel"] < 2e-15
        assert acc["log_f32_abs"] < 3e-6
    lines = floor.describe(threads=(1,), mbytes=16)
    assert f"{acc['exp_f32_rel']:.1e}" in lines[0]
    assert "GB/s" in lines[1]


def test_team_size(floor):
    assert floor.lib.floor_team(1) == 1
    openmp = _runtime.build_info()["openmp"]
    assert floor.lib.floor_team(2) == (2 if openmp else 1)


def test_core_probe_does_fixed_work_per_thread(floor):
    # same sum whatever the team size: each thread sums its own block
    one = floor.lib.floor_exp_cache(2, 1)
    two = floor.lib.floor_exp_cache(4, 2)
    assert two == pytest.approx(2 * one, rel=1e-5)


def test_compare_rows_carry_the_real_floor(floor):
    (workload,) = get_workloads([], shapes=[(256, 64)])
    rows = run_benchmarks([workload], threads=(1, 2), rounds=2, use_torch=False,
                          progress=None, machine_floor=floor)
    assert [r.n_threads for r in rows] == [1, 2]
    for r in rows:
        assert r.machine_floor_fwd_ms > 0 and r.machine_floor_grad_ms > 0
        assert r.fwd_over_floor == pytest.approx(r.fastce_fwd_ms / r.machine_floor_fwd_ms)
        if floor.lib.floor_team(r.n_threads) >= r.n_threads:
            assert r.core_probe_ms > 0
    assert rows[0].core_efficiency is None
    if floor.lib.floor_team(2) >= 2:
        assert rows[1].core_efficiency > 0
    else:  # a serial build: no probe, so no busy verdict
        assert rows[1].core_efficiency is None and not rows[1].cores_busy
    text = format_table(rows)
    assert "floor ms" in text and "× exp floor" in text


def _row(**kw):
    base = dict(workload="B", label="B", dtype="float32", n_threads=2, rounds=3,
                fastce_fwd_ms=2.0, fastce_grad_ms=4.0, numpy_fwd_ms=None, torch_fwd_ms=None,
                torch_fwdbwd_ms=None, floor_read_ms=1.0, floor_exp_ms=1.0,
                floor_write_ms=1.0, floor_exp_source="numpy", floor_fwd_ms=1.0,
                floor_grad_ms=2.0, fwd_peak_mb=0.0, grad_peak_mb=0.0, input_mb=32.0,
                fwd_speedup_vs_1thread=1.9, grad_speedup_vs_1thread=1.8)
    base.update(kw)
    return BenchRow(**base)


def test_a_busy_core_replaces_the_speedup():
    busy = _row(core_probe_ms=2.0, core_efficiency=0.6, machine_floor_fwd_ms=1.5,
                machine_floor_grad_ms=3.0)
    free = _row(core_probe_ms=2.0, core_efficiency=0.97, machine_floor_fwd_ms=1.5,
                machine_floor_grad_ms=3.0)
    assert busy.cores_busy and not free.cores_busy
    busy_line = format_table([busy], legend=False).splitlines()[-1]
    free_line = format_table([free], legend=False).splitlines()[-1]
    assert busy_line.split()[-2:] == ["busy", "busy"]
    assert free_line.split()[-2:] == ["1.90", "1.80"]
    assert busy.fwd_over_floor == pytest.approx(2.0 / 1.5)


def test_without_the_floor_kernels_the_table_keeps_the_exp_floor():
    row = _row()
    assert row.fwd_over_floor is None and row.fwd_over_exp_floor == 2.0
    text = format_table([row])
    assert "floor ms" not in text and "× exp floor" in text
    assert not row.cores_busy


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump")
def test_loop_report_finds_each_exp_loop(floor, capsys):
    import machine_floor.loops as loops

    if floor.kernel_isa != "avx512" or _runtime.arch_name() != "avx512":
        pytest.skip("instruction counts are for the AVX-512 variants")
    rows = loops.loop_rows(loops.disassemble(floor.path), loops.FLOOR_FUNCTIONS)
    labels = {r[0] for r in rows}
    assert labels == {label for _, label in loops.FLOOR_FUNCTIONS}
    # per 16 floats: from one exp's ~15 instructions to BCE's exp + log
    assert all(r[5] is not None and 15 < r[5] < 200 for r in rows)
    fastce_rows = loops.loop_rows(loops.disassemble(_runtime.__file__),
                                  [(p.format(isa="avx512"), d)
                                   for p, d in loops.FASTCE_FUNCTIONS])
    assert {r[0] for r in fastce_rows} == {d for _, d in loops.FASTCE_FUNCTIONS}
    assert loops.main([]) == 0
    out = capsys.readouterr().out
    assert "tile_lse_f32_avx512" in out and "floor_rows_f32" in out


def test_compare_script_runs_with_the_floor(floor):
    import compare

    out, err = io.StringIO(), io.StringIO()
    from fastce.__main__ import build_bench_parser, run_from_args

    args = build_bench_parser().parse_args(["--shape", "64,32", "--repeat", "1",
                                            "--threads", "1", "--no-check", "--no-torch"])
    assert run_from_args(args, full=True, out=out, err=err, machine_floor=floor) == 0
    assert "machine floor:" in out.getvalue() and "× floor" in out.getvalue()
    assert callable(compare.main)
    assert fastce.get_num_threads() >= 1
