"""Gradients of the ``*_and_grad`` functions against PyTorch autograd.

For every configuration the gradient must equal what ``input.grad`` holds
after ``loss.backward(grad_output)`` in PyTorch (SPEC §2.2), and the loss must
equal PyTorch's loss, within the tolerances of SPEC §3.8.  Also pinned here:
masked (-inf) classes, ignored elements with NaN logits, all-ignored batches,
binary cross-entropy at infinite logits, non-contiguous inputs and the loss
objects' ``loss_and_grad``.
"""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

import fastce

torch = pytest.importorskip("torch")
TF = torch.nn.functional

# --------------------------------------------------------------- helpers --

# (rtol, atol) per result dtype and quantity; SPEC §3.8.  float16 is computed
# in float32 and rounded to float16 (relative rounding error <= 2**-11).
TOL = {
    np.dtype(np.float32): {"loss": (1e-5, 1e-6), "grad": (1e-5, 1e-6)},
    np.dtype(np.float64): {"loss": (1e-12, 1e-12), "grad": (1e-10, 1e-12)},
    np.dtype(np.float16): {"loss": (1e-3, 1e-4), "grad": (1e-3, 1e-5)},
}
DTYPES = [np.float32, np.float64, np.float16]


def compute_dtype(dtype):
    """The dtype PyTorch's reference computes in (float16 -> float32)."""
    return np.float32 if np.dtype(dtype) == np.float16 else np.dtype(dtype).type


def assert_close(actual, expected, dtype, what):
    rtol, atol = TOL[np.dtype(dtype)][what]
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64),
                               np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol, err_msg=what)


def seeded_rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def to_torch(a, dtype):
    return torch.from_numpy(np.array(a, dtype=dtype, copy=True))


def torch_class_loss(x, target, *, nll, weight=None, ignore_index=-100,
                     reduction="mean", label_smoothing=0.0, channels_last=False,
                     grad_output=None, dtype=None):
    """PyTorch's loss and ``input.grad`` for cross_entropy / nll_loss.

    ``channels_last``: the class axis of ``x`` is the last one; PyTorch sees
    ``movedim(x, -1, 1)`` (and likewise for probability targets)."""
    dt = compute_dtype(dtype if dtype is not None else np.asarray(x).dtype)
    xt = to_torch(x, dt).requires_grad_(True)
    move = channels_last and xt.ndim >= 2
    # .contiguous(): PyTorch's nll_loss2d backward refuses a strided input
    xin = torch.movedim(xt, -1, 1).contiguous() if move else xt
    t = np.asarray(target)
    if t.dtype.kind == "f":
        tt = to_torch(t, dt)
        if move:
            tt = torch.movedim(tt, -1, 1)
    else:
        tt = torch.from_numpy(np.array(t, dtype=np.int64))
    wt = None if weight is None else to_torch(weight, dt)
    if nll:
        loss = TF.nll_loss(xin, tt, weight=wt, ignore_index=ignore_index,
                           reduction=reduction)
    else:
        loss = TF.cross_entropy(xin, tt, weight=wt, ignore_index=ignore_index,
                                reduction=reduction, label_smoothing=label_smoothing)
    if grad_output is None:
        go = torch.ones_like(loss)
    else:
        go = to_torch(np.broadcast_to(np.asarray(grad_output, dtype=np.float64),
                                      tuple(loss.shape)), dt)
    loss.backward(go)
    return loss.detach().numpy(), xt.grad.numpy()


def torch_binary_loss(x, target, *, logits, weight=None, pos_weight=None,
                      reduction="mean", grad_output=None, dtype=None):
    dt = compute_dtype(dtype if dtype is not None else np.asarray(x).dtype)
    xt = to_torch(x, dt).requires_grad_(True)
    yt = to_torch(target, dt)
    wt = None if weight is None else to_torch(weight, dt)
    if logits:
        pwt = None if pos_weight is None else to_torch(pos_weight, dt)
        loss = TF.binary_cross_entropy_with_logits(xt, yt, weight=wt, pos_weight=pwt,
                                                   reduction=reduction)
    else:
        loss = TF.binary_cross_entropy(xt, yt, weight=wt, reduction=reduction)
    if grad_output is None:
        go = torch.ones_like(loss)
    else:
        go = to_torch(np.broadcast_to(np.asarray(grad_output, dtype=np.float64),
                                      tuple(loss.shape)), dt)
    loss.backward(go)
    return loss.detach().numpy(), xt.grad.numpy()


def check_result_types(loss, grad, x, reduction, loss_shape):
    x = np.asarray(x)
    assert isinstance(grad, np.ndarray)
    assert grad.shape == x.shape
    assert grad.dtype == x.dtype
    if reduction == "none":
        assert np.shape(loss) == loss_shape
        assert np.asarray(loss).dtype == x.dtype
    else:
        assert isinstance(loss, np.generic), type(loss)
        assert loss.dtype == x.dtype


def random_grad_output(rng, reduction, loss_shape):
    """A scalar for reduced losses; for reduction='none' an array with zeros,
    negatives and positives (each element scales its own row)."""
    if reduction != "none":
        return float(rng.uniform(-2.0, 2.0))
    if loss_shape == ():
        return float(rng.uniform(-2.0, 2.0))
    g = rng.normal(size=loss_shape) * 1.5
    g.reshape(-1)[::3] = 0.0
    return g


# ------------------------------------------------ class-loss config matrix --

# Shapes with the class axis in position 1 (0 for unbatched).
CLASS_SHAPES = {
    "NC": (5, 7),
    "NCd": (3, 5, 4),
    "NCdd": (2, 4, 3, 3),
    "C": (6,),
}
AXIS_MODES = ["default", "last", "dim"]
IGNORE_MODES = ["none", "class", "negative"]
REDUCTIONS = ["mean", "sum", "none"]


def make_class_case(shape_name, dtype, axis_mode, *, ignore_mode="none", prob=False,
                    with_weight=False, key=()):
    """Return (x, target, kwargs for fastce, channels_last, weight, ignore_index).

    ``x`` is laid out as fastce receives it (channels-last for axis_mode
    'last'); the target is the matching class-index or probability target."""
    rng = seeded_rng(shape_name, np.dtype(dtype).name, axis_mode, ignore_mode, prob,
                     with_weight, *key)
    shape = CLASS_SHAPES[shape_name]
    cax = 0 if len(shape) == 1 else 1
    C = shape[cax]
    batch = shape[:cax] + shape[cax + 1:]
    x = (rng.normal(size=shape) * 2.0).astype(dtype)
    if prob:
        p = rng.random(size=shape) ** 2
        target = (p / p.sum(axis=cax, keepdims=True)).astype(dtype)
    else:
        target = rng.integers(0, C, size=batch).astype(np.int64)
    ignore_index = -100
    if ignore_mode != "none":
        ignore_index = 1 if ignore_mode == "class" else -1
        if len(batch) > 0:
            flat = target.reshape(-1)
            flat[::3] = ignore_index          # some, never all, targets ignored
            flat[1] = 0 if ignore_index != 0 else 2
        else:
            target = np.int64(0)              # the only target stays counted
    weight = rng.uniform(0.2, 3.0, size=C).astype(dtype) if with_weight else None
    channels_last = False
    kwargs = {}
    if axis_mode == "last":
        kwargs["axis"] = -1
        if len(shape) > 1:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
            if prob:
                target = np.ascontiguousarray(np.moveaxis(target, 1, -1))
            channels_last = True
    elif axis_mode == "dim":
        kwargs["dim"] = cax
    if weight is not None:
        kwargs["weight"] = weight
    if ignore_mode != "none":
        kwargs["ignore_index"] = ignore_index
    return x, target, kwargs, channels_last, weight, ignore_index, rng


def loss_shape_of(x, target, kwargs, prob):
    if not prob:
        return np.shape(target)
    ax = kwargs.get("axis", kwargs.get("dim"))
    if ax is None:
        ax = 0 if np.ndim(x) == 1 else 1
    shape = list(np.shape(x))
    del shape[ax]
    return tuple(shape)


def crossed(primary, secondary, reps=1, seed=0):
    """Every combination of the ``primary`` factors, each paired with ``reps``
    different combinations of the ``secondary`` factors, assigned in a
    seeded, balanced random way (a covering design: every secondary
    combination appears about equally often, uncorrelated with the primary
    factors), which keeps the matrix small."""
    primary = list(itertools.product(*primary))
    secondary = list(itertools.product(*secondary))
    rng = np.random.default_rng(seed)
    base = np.resize(np.arange(len(secondary)), len(primary))
    rng.shuffle(base)
    cases = []
    for r in range(reps):
        for p, i in zip(primary, base):
            cases.append(p + secondary[(i + r) % len(secondary)])
    return cases


# (shape, dtype, axis_mode, reduction) fully crossed; weight / ignore /
# smoothing balanced over them.
CE_INDEX_CASES = crossed([CLASS_SHAPES, DTYPES, AXIS_MODES, REDUCTIONS],
                         [[False, True], IGNORE_MODES, [0.0, 0.1]], reps=2, seed=1)
CE_PROB_CASES = crossed([CLASS_SHAPES, DTYPES, AXIS_MODES, REDUCTIONS],
                        [[False, True], [0.0, 0.1]], reps=1, seed=2)
NLL_CASES = crossed([CLASS_SHAPES, DTYPES, AXIS_MODES, REDUCTIONS],
                    [[False, True], IGNORE_MODES], reps=1, seed=3)


def _ids(cases):
    return ["-".join(np.dtype(p).name if isinstance(p, type) else
                     ("w" if p is True else "now" if p is False else str(p))
                     for p in case) for case in cases]


@pytest.mark.parametrize("shape_name,dtype,axis_mode,reduction,with_weight,ignore_mode,eps",
                         CE_INDEX_CASES, ids=_ids(CE_INDEX_CASES))
def test_cross_entropy_grad_matches_torch_index_targets(shape_name, dtype, with_weight,
                                                        ignore_mode, eps, reduction,
                                                        axis_mode):
    x, t, kw, cl, w, ii, rng = make_class_case(shape_name, dtype, axis_mode,
                                               ignore_mode=ignore_mode,
                                               with_weight=with_weight)
    go = random_grad_output(rng, reduction, np.shape(t))
    loss, grad = fastce.cross_entropy_and_grad(x, t, reduction=reduction,
                                               label_smoothing=eps, grad_output=go, **kw)
    ref_loss, ref_grad = torch_class_loss(x, t, nll=False, weight=w, ignore_index=ii,
                                          reduction=reduction, label_smoothing=eps,
                                          channels_last=cl, grad_output=go, dtype=dtype)
    check_result_types(loss, grad, x, reduction, np.shape(t))
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")


@pytest.mark.parametrize("shape_name,dtype,axis_mode,reduction,with_weight,eps",
                         CE_PROB_CASES, ids=_ids(CE_PROB_CASES))
def test_cross_entropy_grad_matches_torch_probability_targets(shape_name, dtype,
                                                              with_weight, eps,
                                                              reduction, axis_mode):
    x, t, kw, cl, w, ii, rng = make_class_case(shape_name, dtype, axis_mode, prob=True,
                                               with_weight=with_weight)
    lshape = loss_shape_of(x, t, kw, prob=True)
    go = random_grad_output(rng, reduction, lshape)
    loss, grad = fastce.cross_entropy_and_grad(x, t, reduction=reduction,
                                               label_smoothing=eps, grad_output=go, **kw)
    ref_loss, ref_grad = torch_class_loss(x, t, nll=False, weight=w,
                                          reduction=reduction, label_smoothing=eps,
                                          channels_last=cl, grad_output=go, dtype=dtype)
    check_result_types(loss, grad, x, reduction, lshape)
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")


@pytest.mark.parametrize("shape_name,dtype,axis_mode,reduction,with_weight,ignore_mode",
                         NLL_CASES, ids=_ids(NLL_CASES))
def test_nll_loss_grad_matches_torch(shape_name, dtype, with_weight, ignore_mode,
                                     reduction, axis_mode):
    x, t, kw, cl, w, ii, rng = make_class_case(shape_name, dtype, axis_mode,
                                               ignore_mode=ignore_mode,
                                               with_weight=with_weight)
    go = random_grad_output(rng, reduction, np.shape(t))
    loss, grad = fastce.nll_loss_and_grad(x, t, reduction=reduction, grad_output=go, **kw)
    ref_loss, ref_grad = torch_class_loss(x, t, nll=True, weight=w, ignore_index=ii,
                                          reduction=reduction, channels_last=cl,
                                          grad_output=go, dtype=dtype)
    check_result_types(loss, grad, x, reduction, np.shape(t))
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")


DEFAULT_GO_CASES = list(itertools.product(
    ["NC", "NCdd", "C"], [np.float32, np.float64], REDUCTIONS, [False, True]))


@pytest.mark.parametrize("shape_name,dtype,reduction,prob", DEFAULT_GO_CASES,
                         ids=_ids(DEFAULT_GO_CASES))
def test_default_grad_output_is_one_or_ones(shape_name, dtype, reduction, prob):
    x, t, kw, cl, w, ii, rng = make_class_case(shape_name, dtype, "default", prob=prob,
                                               with_weight=True,
                                               ignore_mode="none" if prob else "class")
    loss, grad = fastce.cross_entropy_and_grad(x, t, reduction=reduction,
                                               label_smoothing=0.1, **kw)
    ref_loss, ref_grad = torch_class_loss(x, t, nll=False, weight=w, ignore_index=ii,
                                          reduction=reduction, label_smoothing=0.1)
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")
    # explicit 1 / ones give the identical result
    lshape = loss_shape_of(x, t, kw, prob)
    go = np.ones(lshape) if reduction == "none" else 1.0
    loss1, grad1 = fastce.cross_entropy_and_grad(x, t, reduction=reduction,
                                                 label_smoothing=0.1, grad_output=go, **kw)
    np.testing.assert_array_equal(grad1, grad)
    np.testing.assert_array_equal(loss1, loss)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduction_none_grad_output_scales_each_row(fn, dtype):
    """Row i of the gradient is grad_output[i] times the row of the ones
    gradient, for zeros and negatives too."""
    x, t, kw, cl, w, ii, rng = make_class_case("NCd", dtype, "default",
                                               ignore_mode="class", with_weight=True)
    f = getattr(fastce, fn + "_and_grad")
    extra = {"label_smoothing": 0.1} if fn == "cross_entropy" else {}
    go = rng.normal(size=t.shape)
    go[0, :2] = 0.0
    go[1, :2] = -np.abs(go[1, :2]) - 0.5
    _, g1 = f(x, t, reduction="none", **kw, **extra)
    _, g = f(x, t, reduction="none", grad_output=go, **kw, **extra)
    expected = g1.astype(np.float64) * go[:, None, :]
    assert_close(g, expected, dtype, "grad")
    assert np.all(g[0, :, :2] == 0)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_scalar_grad_output_scales_the_whole_gradient(reduction):
    x, t, kw, cl, w, ii, rng = make_class_case("NC", np.float64, "default",
                                               ignore_mode="negative", with_weight=True)
    _, g1 = fastce.cross_entropy_and_grad(x, t, reduction=reduction, **kw)
    for s in (0.0, -2.5, 3.0):
        _, g = fastce.cross_entropy_and_grad(x, t, reduction=reduction, grad_output=s, **kw)
        assert_close(g, s * g1, np.float64, "grad")
        _, g0d = fastce.cross_entropy_and_grad(x, t, reduction=reduction,
                                               grad_output=np.array(s), **kw)
        np.testing.assert_array_equal(g0d, g)


def test_unbatched_reduction_none_returns_0d_loss_and_grad_of_input_shape():
    x = np.array([0.5, -1.0, 2.0, 0.25])
    loss, grad = fastce.cross_entropy_and_grad(x, 2, reduction="none", grad_output=-0.5)
    assert np.ndim(loss) == 0
    assert grad.shape == (4,)
    ref_loss, ref_grad = torch_class_loss(x, np.int64(2), nll=False, reduction="none",
                                          grad_output=-0.5)
    assert_close(loss, ref_loss, np.float64, "loss")
    assert_close(grad, ref_grad, np.float64, "grad")


# ------------------------------------------------------------- binary --

BIN_SHAPES = {"0d": (), "N": (7,), "NC": (6, 5), "NCd": (3, 4, 5)}
BIN_WEIGHTS = [None, "scalar", "last", "col", "full"]


def bin_operand(mode, shape, rng, low=0.2, high=3.0):
    if mode is None:
        return None
    if mode == "scalar":
        return float(rng.uniform(low, high))
    if mode == "last":
        s = shape[-1:]
    elif mode == "col":
        s = shape[:-1] + (1,)
    else:
        s = shape
    w = rng.uniform(low, high, size=s)
    if w.size > 2:
        w.reshape(-1)[1] = 0.0  # a zero weight
    return w


def _bin_case_ok(shape_name, wmode, pwmode):
    if shape_name == "0d":   # 0-d input with weights: see test_0d_input_with_*
        return wmode is None and pwmode is None
    return True


BCE_LOGITS_CASES = [c for c in crossed([BIN_SHAPES, DTYPES, BIN_WEIGHTS, REDUCTIONS],
                                       [[None, "last", "scalar"]], seed=4)
                    if _bin_case_ok(c[0], c[2], c[4])]
BCE_CASES = [c for c in itertools.product(BIN_SHAPES, DTYPES, BIN_WEIGHTS, REDUCTIONS)
             if _bin_case_ok(c[0], c[2], None)]


def make_binary_case(shape_name, dtype, logits, key=()):
    rng = seeded_rng("bin", shape_name, np.dtype(dtype).name, logits, *key)
    shape = BIN_SHAPES[shape_name]
    if logits:
        x = rng.normal(size=shape) * 3.0
    else:
        x = rng.uniform(0.02, 0.98, size=shape)
    y = rng.random(size=shape)
    if y.size > 3:
        y.reshape(-1)[0] = 0.0
        y.reshape(-1)[1] = 1.0
    return np.asarray(x, dtype=dtype), np.asarray(y, dtype=dtype), rng


def _cast_operand(w, dtype):
    if w is None or isinstance(w, float):
        return w
    return np.asarray(w, dtype=dtype)


@pytest.mark.parametrize("shape_name,dtype,wmode,reduction,pwmode", BCE_LOGITS_CASES,
                         ids=_ids(BCE_LOGITS_CASES))
def test_bce_with_logits_grad_matches_torch(shape_name, dtype, wmode, reduction, pwmode):
    x, y, rng = make_binary_case(shape_name, dtype, True, key=(wmode, pwmode, reduction))
    shape = x.shape
    w = _cast_operand(bin_operand(wmode, shape, rng), dtype)
    pw = _cast_operand(bin_operand(pwmode, shape, rng, 0.5, 4.0), dtype)
    go = random_grad_output(rng, reduction, shape)
    loss, grad = fastce.binary_cross_entropy_with_logits_and_grad(
        x, y, weight=w, reduction=reduction, pos_weight=pw, grad_output=go)
    ref_loss, ref_grad = torch_binary_loss(x, y, logits=True, weight=w, pos_weight=pw,
                                           reduction=reduction, grad_output=go,
                                           dtype=dtype)
    check_result_types(loss, grad, x, reduction, shape)
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")


@pytest.mark.parametrize("shape_name,dtype,wmode,reduction", BCE_CASES,
                         ids=_ids(BCE_CASES))
def test_bce_grad_matches_torch(shape_name, dtype, wmode, reduction):
    x, y, rng = make_binary_case(shape_name, dtype, False, key=(wmode, reduction))
    shape = x.shape
    w = _cast_operand(bin_operand(wmode, shape, rng), dtype)
    go = random_grad_output(rng, reduction, shape)
    loss, grad = fastce.binary_cross_entropy_and_grad(x, y, weight=w, reduction=reduction,
                                                      grad_output=go)
    ref_loss, ref_grad = torch_binary_loss(x, y, logits=False, weight=w,
                                           reduction=reduction, grad_output=go,
                                           dtype=dtype)
    check_result_types(loss, grad, x, reduction, shape)
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_at_probabilities_0_and_1_clamps_the_log_like_torch(dtype, reduction):
    """Each log clamped at -100 (finite loss); the gradient where p(1-p) is
    not below PyTorch's 1e-12 floor."""
    x = np.array([[0.0, 1.0, 0.0, 1.0, 0.5], [1e-30, 1 - 1e-7, 0.25, 0.999, 1e-3]],
                 dtype=dtype)
    y = np.array([[0.0, 1.0, 1.0, 0.0, 0.5], [1.0, 0.0, 0.3, 0.6, 0.2]], dtype=dtype)
    w = np.array([1.0, 2.0, 0.5, 1.5, 1.0], dtype=dtype)
    go = np.linspace(-1, 2, x.size).reshape(x.shape) if reduction == "none" else 0.5
    loss, grad = fastce.binary_cross_entropy_and_grad(x, y, weight=w, reduction=reduction,
                                                      grad_output=go)
    ref_loss, ref_grad = torch_binary_loss(x, y, logits=False, weight=w,
                                           reduction=reduction, grad_output=go)
    assert np.all(np.isfinite(loss))
    assert_close(loss, ref_loss, dtype, "loss")
    floor = (1 - x.astype(np.float64)) * x < 1e-12
    assert_close(grad[~floor], ref_grad[~floor], dtype, "grad")
    assert np.all(grad[0, :2] == 0.0)     # p == y exactly at 0 and 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_grad_at_the_1e12_floor_matches_torch(dtype):
    """Where p(1-p) < 1e-12 PyTorch divides by its floor: the gradient is
    huge (~1e12) and must still match PyTorch to the relative tolerance."""
    x = np.array([0.0, 1.0, 1e-30, 0.0, 1.0], dtype=dtype)
    y = np.array([1.0, 0.0, 1.0, 0.4, 0.2], dtype=dtype)
    w = np.array([0.5, 1.5, 1.0, 2.0, 1.0], dtype=dtype)
    _, grad = fastce.binary_cross_entropy_and_grad(x, y, weight=w, reduction="sum")
    _, ref_grad = torch_binary_loss(x, y, logits=False, weight=w, reduction="sum")
    assert_close(grad, ref_grad, dtype, "grad")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_at_huge_finite_logits_matches_torch(dtype, reduction):
    x = np.array([[1e4, -1e4, 1e4, -1e4, 30.0, -30.0],
                  [88.0, -88.0, 800.0, -800.0, 1e4, -1e4]], dtype=dtype)
    y = np.array([[1.0, 0.0, 0.0, 1.0, 0.3, 0.7],
                  [0.5, 0.5, 1.0, 0.0, 0.25, 0.75]], dtype=dtype)
    pw = np.array([2.0, 0.5, 1.0, 3.0, 1.5, 1.0], dtype=dtype)
    go = (np.linspace(-1, 2, x.size).reshape(x.shape) if reduction == "none" else 0.75)
    loss, grad = fastce.binary_cross_entropy_with_logits_and_grad(
        x, y, reduction=reduction, pos_weight=pw, grad_output=go)
    ref_loss, ref_grad = torch_binary_loss(x, y, logits=True, pos_weight=pw,
                                           reduction=reduction, grad_output=go)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")


def _sigmoid_limit_grad(x, y, w, pw):
    """d/dx of -w[pw*y*log s(x) + (1-y)*log(1-s(x))] = w*((pw*y + 1 - y)*s(x) - pw*y)
    with s(-inf) = 0, s(+inf) = 1."""
    s = np.where(x > 0, 1.0, 0.0)
    return w * ((pw * y + 1.0 - y) * s - pw * y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_pos_weight", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_grad_at_infinite_logits_is_the_limit(dtype, with_pos_weight,
                                                              reduction):
    inf = np.inf
    x = np.array([-inf, inf, -inf, inf, -inf, inf], dtype=dtype)
    y = np.array([0.0, 1.0, 0.9, 0.3, 1.0, 0.0], dtype=dtype)
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.5, 0.25], dtype=dtype)
    pw = np.array([2.0, 3.0, 0.5, 1.0, 4.0, 2.0], dtype=dtype) if with_pos_weight else None
    go = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 0.0]) if reduction == "none" else 1.5
    loss, grad = fastce.binary_cross_entropy_with_logits_and_grad(
        x, y, weight=w, reduction=reduction, pos_weight=pw, grad_output=go)
    pw64 = 1.0 if pw is None else pw.astype(np.float64)
    g = _sigmoid_limit_grad(x.astype(np.float64), y.astype(np.float64),
                            w.astype(np.float64), pw64)
    scale = {"none": go, "sum": go, "mean": go / x.size}[reduction]
    expected = g * scale
    assert not np.any(np.isnan(grad)), grad
    assert_close(grad, expected, dtype, "grad")
    # limit losses: 0 where the logit is right, +inf where it is infinitely wrong
    per_element = fastce.binary_cross_entropy_with_logits(
        x, y, weight=w, reduction="none", pos_weight=pw)
    np.testing.assert_array_equal(per_element, [0.0, 0.0, inf, inf, inf, inf])
    if reduction != "none":
        assert loss == inf


def test_bce_with_logits_grad_at_infinite_logits_without_weight_is_sigmoid_minus_target():
    x = np.array([-np.inf, np.inf, -np.inf, np.inf])
    y = np.array([0.0, 1.0, 0.9, 0.3])
    _, grad = fastce.binary_cross_entropy_with_logits_and_grad(x, y, reduction="sum")
    np.testing.assert_array_equal(grad, [0.0, 0.0, -0.9, 0.7])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight,pos_weight", [(2.0, None), (np.array(2.0), None),
                                               (None, 3.0), (None, np.array(3.0)),
                                               (0.5, np.array(3.0))])
def test_0d_input_with_scalar_weight_or_pos_weight_matches_torch(dtype, reduction, weight,
                                                                 pos_weight):
    """The binary losses are elementwise and accept 0-d input (SPEC §3.9); a
    scalar / 0-d weight or pos_weight broadcasts to it as in PyTorch."""
    x = np.array(0.7, dtype=dtype)
    y = np.array(0.25, dtype=dtype)
    go = -1.5
    loss, grad = fastce.binary_cross_entropy_with_logits_and_grad(
        x, y, weight=weight, reduction=reduction, pos_weight=pos_weight, grad_output=go)
    ref_loss, ref_grad = torch_binary_loss(x, y, logits=True, weight=weight,
                                           pos_weight=pos_weight, reduction=reduction,
                                           grad_output=go)
    assert grad.shape == ()
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")
    if pos_weight is None:
        loss, grad = fastce.binary_cross_entropy_and_grad(x, y, weight=weight,
                                                          reduction=reduction,
                                                          grad_output=go)
        ref_loss, ref_grad = torch_binary_loss(x, y, logits=False, weight=weight,
                                               reduction=reduction, grad_output=go)
        assert_close(loss, ref_loss, dtype, "loss")
        assert_close(grad, ref_grad, dtype, "grad")


# ---------------------------------------------- masked, ignored, all-ignored --

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("layout", ["NC", "NCd", "NdC_axis_last"])
def test_masked_classes_get_exactly_zero_gradient(dtype, reduction, with_weight, layout):
    rng = seeded_rng("masked", np.dtype(dtype).name, reduction, with_weight, layout)
    C = 9
    if layout == "NC":
        x = rng.normal(size=(6, C))
    elif layout == "NCd":
        x = np.moveaxis(rng.normal(size=(3, 4, C)), -1, 1).copy()      # (3, C, 4)
    else:
        x = rng.normal(size=(3, 4, C))                                 # channels last
    cax = -1 if layout == "NdC_axis_last" else 1
    xm = np.moveaxis(x, cax, -1)                 # view with classes last
    mask = np.zeros(xm.shape, dtype=bool)
    flat_mask = mask.reshape(-1, C)
    # masked classes at the start, middle and end of a row; the target sits
    # before, between and after them
    patterns = [[0, 1], [4], [7, 8], [0, 8], [2, 3, 5, 6], [1, 2, 3, 4, 5, 6, 7, 8]]
    targets = np.empty(flat_mask.shape[0], dtype=np.int64)
    for r in range(flat_mask.shape[0]):
        p = patterns[r % len(patterns)]
        flat_mask[r, p] = True
        free = [c for c in range(C) if c not in p]
        targets[r] = free[(r * 5) % len(free)]
    xm[mask] = -np.inf
    x = x.astype(dtype)
    t = targets.reshape(xm.shape[:-1])
    w = rng.uniform(0.5, 2.0, size=C).astype(dtype) if with_weight else None
    go = random_grad_output(rng, reduction, t.shape)
    kw = {"axis": -1} if layout == "NdC_axis_last" else {}
    loss, grad = fastce.cross_entropy_and_grad(x, t, weight=w, reduction=reduction,
                                               grad_output=go, **kw)
    assert np.all(np.isfinite(loss))
    assert np.all(np.isfinite(grad))
    gm = np.moveaxis(grad, cax, -1)
    assert np.all(gm[mask] == 0.0)
    ref_loss, ref_grad = torch_class_loss(x, t, nll=False, weight=w, reduction=reduction,
                                          channels_last=layout == "NdC_axis_last",
                                          grad_output=go)
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_with_only_its_target_unmasked_has_zero_loss_and_zero_gradient(dtype):
    x = np.full((2, 5), -np.inf, dtype=dtype)
    x[0, 3] = 2.0
    x[1, 0] = -7.0
    loss, grad = fastce.cross_entropy_and_grad(x, [3, 0], reduction="none")
    np.testing.assert_array_equal(loss, [0.0, 0.0])
    np.testing.assert_array_equal(grad, np.zeros((2, 5)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minus_inf_at_the_target_gives_infinite_loss(dtype):
    x = np.array([[0.0, -np.inf, 1.0], [0.5, 0.2, 0.1]], dtype=dtype)
    loss, _ = fastce.cross_entropy_and_grad(x, [1, 0], reduction="none")
    assert loss[0] == np.inf
    assert np.isfinite(loss[1])


FN_EPS = [("cross_entropy", 0.0), ("cross_entropy", 0.1), ("nll_loss", 0.0)]


@pytest.mark.parametrize("fn,eps", FN_EPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", ["NC", "NCd", "NdC_axis_last"])
def test_ignored_elements_with_nan_logits_get_exactly_zero_gradient(fn, dtype, reduction,
                                                                    eps, layout):
    rng = seeded_rng("nanignored", fn, np.dtype(dtype).name, reduction, eps, layout)
    C = 5
    shape = {"NC": (8, C), "NCd": (3, C, 4), "NdC_axis_last": (3, 4, C)}[layout]
    cax = -1 if layout == "NdC_axis_last" else 1
    x = rng.normal(size=shape)
    t = rng.integers(0, C, size=np.moveaxis(x, cax, -1).shape[:-1])
    ignored = np.zeros(t.shape, dtype=bool)
    ignored.reshape(-1)[::3] = True
    t[ignored] = -100
    clean = x.copy()
    xm = np.moveaxis(x, cax, -1)
    xm[ignored] = np.nan                         # whole class row is NaN
    x = x.astype(dtype)
    clean = clean.astype(dtype)
    w = rng.uniform(0.5, 2.0, size=C).astype(dtype)
    go = random_grad_output(rng, reduction, t.shape)
    kw = {"axis": -1} if layout == "NdC_axis_last" else {}
    extra = {"label_smoothing": eps} if fn == "cross_entropy" else {}
    f = getattr(fastce, fn + "_and_grad")
    loss, grad = f(x, t, weight=w, reduction=reduction, grad_output=go, **kw, **extra)
    assert not np.any(np.isnan(grad)), "NaN leaked from an ignored row into the gradient"
    assert np.all(np.moveaxis(grad, cax, -1)[ignored] == 0.0)
    assert not np.any(np.isnan(loss))
    if reduction == "none":
        assert np.all(np.asarray(loss)[ignored] == 0.0)
    # the rest is PyTorch's answer for the same input with clean ignored rows
    ref_loss, ref_grad = torch_class_loss(clean, t, nll=fn == "nll_loss", weight=w,
                                          reduction=reduction, label_smoothing=eps,
                                          channels_last=layout == "NdC_axis_last",
                                          grad_output=go)
    assert_close(loss, ref_loss, dtype, "loss")
    assert_close(grad, ref_grad, dtype, "grad")


@pytest.mark.parametrize("fn,eps", FN_EPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (3,)])
def test_all_ignored_batch_gives_nan_mean_and_all_zero_gradient(fn, dtype, eps,
                                                                with_weight, shape):
    rng = seeded_rng("allignored", fn, np.dtype(dtype).name, eps, with_weight, shape)
    x = rng.normal(size=shape).astype(dtype)
    batch = () if len(shape) == 1 else shape[:1] + shape[2:]
    t = np.full(batch, 2, dtype=np.int64)
    C = shape[0] if len(shape) == 1 else shape[1]
    w = rng.uniform(0.5, 2.0, size=C).astype(dtype) if with_weight else None
    f = getattr(fastce, fn + "_and_grad")
    extra = {"label_smoothing": eps} if fn == "cross_entropy" else {}
    loss, grad = f(x, t, weight=w, ignore_index=2, **extra)
    assert np.isnan(loss)
    assert loss.dtype == x.dtype
    np.testing.assert_array_equal(grad, np.zeros(shape))
    assert grad.dtype == x.dtype
    loss, grad = f(x, t, weight=w, ignore_index=2, reduction="sum", **extra)
    assert loss == 0.0
    np.testing.assert_array_equal(grad, np.zeros(shape))
    loss, grad = f(x, t, weight=w, ignore_index=2, reduction="none", **extra)
    np.testing.assert_array_equal(loss, np.zeros(batch))
    np.testing.assert_array_equal(grad, np.zeros(shape))
    # PyTorch agrees on the mean's NaN
    ref_loss, _ = torch_class_loss(x, t, nll=fn == "nll_loss", weight=w, ignore_index=2,
                                   label_smoothing=eps)
    assert np.isnan(ref_loss)


# ------------------------------------------ loss of *_and_grad == forward --

FWD_CASES = list(itertools.product(["NC", "NCdd", "C"], [np.float32, np.float64,
                                                         np.float16],
                                   REDUCTIONS, ["index", "prob"]))


@pytest.mark.parametrize("shape_name,dtype,reduction,kind", FWD_CASES,
                         ids=_ids(FWD_CASES))
def test_loss_of_and_grad_equals_forward_loss_class_losses(shape_name, dtype, reduction,
                                                           kind):
    prob = kind == "prob"
    x, t, kw, cl, w, ii, rng = make_class_case(shape_name, dtype, "default", prob=prob,
                                               with_weight=True,
                                               ignore_mode="none" if prob else "negative")
    for eps in (0.0, 0.1):
        loss_g, _ = fastce.cross_entropy_and_grad(x, t, reduction=reduction,
                                                  label_smoothing=eps, **kw)
        loss_f = fastce.cross_entropy(x, t, reduction=reduction, label_smoothing=eps, **kw)
        np.testing.assert_array_equal(loss_g, loss_f)
        assert type(loss_g) is type(loss_f)
    if not prob:
        loss_g, _ = fastce.nll_loss_and_grad(x, t, reduction=reduction, **kw)
        loss_f = fastce.nll_loss(x, t, reduction=reduction, **kw)
        np.testing.assert_array_equal(loss_g, loss_f)


@pytest.mark.parametrize("shape_name", list(BIN_SHAPES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_of_and_grad_equals_forward_loss_binary_losses(shape_name, dtype, reduction):
    x, y, rng = make_binary_case(shape_name, dtype, True, key=("fwd", reduction))
    w = None if x.ndim == 0 else bin_operand("full", x.shape, rng)
    pw = None if x.ndim == 0 else bin_operand("last", x.shape, rng)
    lg, _ = fastce.binary_cross_entropy_with_logits_and_grad(
        x, y, weight=w, reduction=reduction, pos_weight=pw)
    lf = fastce.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction,
                                                 pos_weight=pw)
    np.testing.assert_array_equal(lg, lf)
    p, y, rng = make_binary_case(shape_name, dtype, False, key=("fwd", reduction))
    lg, _ = fastce.binary_cross_entropy_and_grad(p, y, weight=w, reduction=reduction)
    lf = fastce.binary_cross_entropy(p, y, weight=w, reduction=reduction)
    np.testing.assert_array_equal(lg, lf)


# ---------------------------------------------------- non-contiguous input --

def _layouts(base):
    """(name, array) views of ``base``'s values in other memory layouts."""
    yield "fortran", np.asfortranarray(base)
    wide = np.zeros(base.shape[:-1] + (2 * base.shape[-1],), dtype=base.dtype)
    wide[..., ::2] = base
    yield "strided_slice", wide[..., ::2]
    rev = np.ascontiguousarray(base[..., ::-1])
    yield "reversed", rev[..., ::-1]
    if base.ndim >= 2:
        tr = np.ascontiguousarray(np.swapaxes(base, 0, -1))
        yield "transposed", np.swapaxes(tr, 0, -1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape_name,axis_mode", [("NC", "default"), ("NCd", "default"),
                                                  ("NCdd", "default"), ("NCdd", "last"),
                                                  ("NCd", "last")])
@pytest.mark.parametrize("prob", [False, True])
def test_noncontiguous_input_gives_same_grad_as_contiguous_copy_cross_entropy(
        dtype, shape_name, axis_mode, prob):
    x, t, kw, cl, w, ii, rng = make_class_case(
        shape_name, dtype, axis_mode, prob=prob, with_weight=True,
        ignore_mode="none" if prob else "class")
    go = random_grad_output(rng, "none", loss_shape_of(x, t, kw, prob))
    ref = fastce.cross_entropy_and_grad(x, t, reduction="none", label_smoothing=0.1,
                                        grad_output=go, **kw)
    tl, tg = torch_class_loss(x, t, nll=False, weight=w, ignore_index=ii,
                              reduction="none", label_smoothing=0.1, channels_last=cl,
                              grad_output=go)
    assert_close(ref[0], tl, dtype, "loss")
    assert_close(ref[1], tg, dtype, "grad")
    for name, xv in _layouts(x):
        assert not xv.flags.c_contiguous, name
        np.testing.assert_array_equal(xv, x)
        # the target and grad_output non-contiguous too
        tv = np.asfortranarray(t) if np.ndim(t) else t
        gv = np.asfortranarray(go)
        loss, grad = fastce.cross_entropy_and_grad(xv, tv, reduction="none",
                                                   label_smoothing=0.1, grad_output=gv,
                                                   **kw)
        np.testing.assert_array_equal(loss, ref[0], err_msg=name)
        np.testing.assert_array_equal(grad, ref[1], err_msg=name)
        for red in ("mean", "sum"):
            lc, gc = fastce.cross_entropy_and_grad(x, t, reduction=red, **kw)
            lv, gvv = fastce.cross_entropy_and_grad(xv, tv, reduction=red, **kw)
            assert lv == lc, (name, red)
            np.testing.assert_array_equal(gvv, gc, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noncontiguous_input_gives_same_grad_as_contiguous_copy_nll(dtype):
    x, t, kw, cl, w, ii, rng = make_class_case("NCd", dtype, "default",
                                               ignore_mode="negative", with_weight=True)
    ref = fastce.nll_loss_and_grad(x, t, reduction="mean", **kw)
    for name, xv in _layouts(x):
        loss, grad = fastce.nll_loss_and_grad(xv, np.asfortranarray(t), **kw)
        assert loss == ref[0], name
        np.testing.assert_array_equal(grad, ref[1], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("logits", [True, False])
@pytest.mark.parametrize("shape_name", ["NC", "NCd"])
def test_noncontiguous_input_gives_same_grad_as_contiguous_copy_binary(dtype, logits,
                                                                       shape_name):
    x, y, rng = make_binary_case(shape_name, dtype, logits, key=("layout",))
    w = bin_operand("col", x.shape, rng)
    go = random_grad_output(rng, "none", x.shape)
    extra = {"pos_weight": bin_operand("last", x.shape, rng)} if logits else {}
    f = (fastce.binary_cross_entropy_with_logits_and_grad if logits
         else fastce.binary_cross_entropy_and_grad)
    ref = f(x, y, weight=w, reduction="none", grad_output=go, **extra)
    tl, tg = torch_binary_loss(x, y, logits=logits, weight=w, reduction="none",
                               grad_output=go, **extra)
    assert_close(ref[0], tl, dtype, "loss")
    assert_close(ref[1], tg, dtype, "grad")
    for name, xv in _layouts(x):
        yv = y[..., ::-1].copy()[..., ::-1]
        wv = np.asfortranarray(w)
        loss, grad = f(xv, yv, weight=wv, reduction="none",
                       grad_output=np.asfortranarray(go), **extra)
        np.testing.assert_array_equal(loss, ref[0], err_msg=name)
        np.testing.assert_array_equal(grad, ref[1], err_msg=name)


# ------------------------------------------------------------ loss objects --

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_objects_loss_and_grad_match_the_functions(reduction, dtype):
    rng = seeded_rng("objects", reduction, np.dtype(dtype).name)
    x = rng.normal(size=(4, 3, 5)).astype(dtype)             # channels last, C = 5
    t = rng.integers(0, 5, size=(4, 3))
    t[0, 0] = 3
    w = rng.uniform(0.5, 2.0, size=5)
    go = random_grad_output(rng, reduction, t.shape)
    cfg = dict(weight=w, ignore_index=3, reduction=reduction)

    obj = fastce.CrossEntropyLoss(label_smoothing=0.1, axis=-1, **cfg)
    expected = fastce.cross_entropy_and_grad(x, t, label_smoothing=0.1, axis=-1,
                                             grad_output=go, **cfg)
    got = obj.loss_and_grad(x, t, go)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(obj(x, t), fastce.cross_entropy(
        x, t, label_smoothing=0.1, axis=-1, **cfg))
    out = np.empty_like(x)
    got = obj.loss_and_grad(x, t, grad_output=go, out=out)
    assert got[1] is out
    np.testing.assert_array_equal(out, expected[1])
    tl, tg = torch_class_loss(x, t, nll=False, weight=w, ignore_index=3,
                              reduction=reduction, label_smoothing=0.1,
                              channels_last=True, grad_output=go)
    assert_close(got[0], tl, dtype, "loss")
    assert_close(got[1], tg, dtype, "grad")

    obj = fastce.NLLLoss(dim=-1, **cfg)
    expected = fastce.nll_loss_and_grad(x, t, axis=-1, grad_output=go, **cfg)
    got = obj.loss_and_grad(x, t, go)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(obj(x, t), fastce.nll_loss(x, t, axis=-1, **cfg))

    p = rng.uniform(0.05, 0.95, size=(4, 5)).astype(dtype)
    y = rng.random(size=(4, 5)).astype(dtype)
    bw = rng.uniform(0.5, 2.0, size=(4, 1))
    pw = rng.uniform(0.5, 3.0, size=5)
    bgo = random_grad_output(rng, reduction, p.shape)
    obj = fastce.BCEWithLogitsLoss(weight=bw, reduction=reduction, pos_weight=pw)
    expected = fastce.binary_cross_entropy_with_logits_and_grad(
        p * 4 - 2, y, weight=bw, reduction=reduction, pos_weight=pw, grad_output=bgo)
    got = obj.loss_and_grad(p * 4 - 2, y, bgo)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    tl, tg = torch_binary_loss(p * 4 - 2, y, logits=True, weight=bw, pos_weight=pw,
                               reduction=reduction, grad_output=bgo)
    assert_close(got[0], tl, dtype, "loss")
    assert_close(got[1], tg, dtype, "grad")

    obj = fastce.BCELoss(weight=bw, reduction=reduction)
    expected = fastce.binary_cross_entropy_and_grad(p, y, weight=bw, reduction=reduction,
                                                    grad_output=bgo)
    got = obj.loss_and_grad(p, y, bgo)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    out = np.empty_like(p)
    got = obj.loss_and_grad(p, y, bgo, out)
    assert got[1] is out
    np.testing.assert_array_equal(out, expected[1])


def test_loss_object_default_grad_output_matches_torch():
    rng = seeded_rng("objects-default")
    x = rng.normal(size=(6, 4))
    t = rng.integers(0, 4, size=6)
    loss, grad = fastce.CrossEntropyLoss().loss_and_grad(x, t)
    tl, tg = torch_class_loss(x, t, nll=False)
    assert_close(loss, tl, np.float64, "loss")
    assert_close(grad, tg, np.float64, "grad")


# ------------------------ contiguous rows over many tiles (one C call each) --

@pytest.mark.parametrize("n_cls", [2, 10, 31, 32, 257, 2048, 2049])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tdtype", [np.int32, np.int64])
@pytest.mark.parametrize("with_weight,eps,reduction",
                         [(False, 0.0, "mean"), (True, 0.0, "sum"), (False, 0.2, "none"),
                          (True, 0.1, "none"), (True, 0.3, "mean")])
def test_rows_over_many_tiles_match_torch(n_cls, dtype, tdtype, with_weight, eps,
                                                reduction):
    # rows of up to 2048 classes take one C call per tile that keeps the
    # exponentials for the gradient (below 32 classes transposed once);
    # 2049 classes take the separate statistics / gradient passes
    rng = seeded_rng("short-rows", n_cls, np.dtype(dtype).name, with_weight, eps, reduction)
    n = 1000 if n_cls < 1000 else 150
    x = (rng.standard_normal((n, n_cls)) * 4).astype(dtype)
    x[7] = -np.inf                    # a fully masked row: NaN, as in torch
    x[8, : n_cls // 2] = -np.inf      # partly masked
    t = rng.integers(0, n_cls, n).astype(tdtype)
    t[rng.random(n) < 0.1] = -100
    t[7] = 0
    w = rng.uniform(0.2, 2.0, n_cls).astype(dtype) if with_weight else None
    go = random_grad_output(rng, reduction, (n,))
    loss, grad = fastce.cross_entropy_and_grad(x, t, weight=w, reduction=reduction,
                                               label_smoothing=eps, grad_output=go)
    ref_loss, ref_grad = torch_class_loss(x, t.astype(np.int64), nll=False, weight=w,
                                          reduction=reduction, label_smoothing=eps,
                                          grad_output=go, dtype=dtype)
    finite = np.ones(n, bool)
    finite[7] = False
    assert np.isnan(grad[7]).all() and np.isnan(ref_grad[7]).all()
    assert_close(grad[finite], ref_grad[finite], dtype, "grad")
    if reduction == "none":
        assert_close(loss[finite], ref_loss[finite], dtype, "loss")
    # the forward gives the same loss bits, and out=x the same gradient
    fwd = fastce.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=eps)
    np.testing.assert_array_equal(np.asarray(fwd), np.asarray(loss))
    x_in_place = x.copy()
    loss2, grad2 = fastce.cross_entropy_and_grad(x_in_place, t, weight=w,
                                                 reduction=reduction, label_smoothing=eps,
                                                 grad_output=go, out=x_in_place)
    assert grad2 is x_in_place
    np.testing.assert_array_equal(grad2, grad)
