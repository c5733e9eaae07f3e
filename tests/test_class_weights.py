"""fastce.class_weights: the four methods, targets of any shape,
ignore_index, the absent-class policy (weight 0) and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastce

METHODS = ["inverse_frequency", "balanced", "effective_number", "median_frequency"]


@pytest.fixture
def labels():
    """Imbalanced labels of 5 classes, every class present, shuffled."""
    counts = [500, 200, 50, 20, 5]
    y = np.repeat(np.arange(5), counts)
    return np.random.default_rng(0).permutation(y)


def test_inverse_frequency_is_total_over_count():
    y = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_array_equal(fastce.class_weights(y, method="inverse_frequency"),
                                  [6 / 3, 6 / 1, 6 / 2])


def test_default_method_is_inverse_frequency(labels):
    np.testing.assert_array_equal(fastce.class_weights(labels),
                                  fastce.class_weights(labels, method="inverse_frequency"))


def test_balanced_equals_sklearn_compute_class_weight(labels):
    sklearn_weights = pytest.importorskip("sklearn.utils.class_weight")
    expected = sklearn_weights.compute_class_weight("balanced", classes=np.arange(5),
                                                    y=labels)
    np.testing.assert_allclose(fastce.class_weights(labels, method="balanced"), expected,
                               rtol=1e-15)


def test_balanced_weighted_mean_is_the_mean_of_per_class_mean_losses(labels):
    # N / (C n_c) weights: sum_i w[y_i] l_i / sum_i w[y_i] = mean_c mean_{y_i=c} l_i
    logits = np.random.default_rng(1).normal(size=(labels.size, 5))
    weight = fastce.class_weights(labels, method="balanced")
    per_sample = fastce.cross_entropy(logits, labels, reduction="none")
    per_class = [per_sample[labels == c].mean() for c in range(5)]
    np.testing.assert_allclose(fastce.cross_entropy(logits, labels, weight=weight),
                               np.mean(per_class), rtol=1e-12)


def test_effective_number_formula_and_sum(labels):
    beta = 0.99
    counts = np.bincount(labels).astype(float)
    raw = (1 - beta) / (1 - beta ** counts)
    expected = raw / raw.sum() * 5
    weight = fastce.class_weights(labels, method="effective_number", beta=beta)
    np.testing.assert_allclose(weight, expected, rtol=1e-12)
    assert weight.sum() == pytest.approx(5.0, rel=1e-14)


def test_effective_number_default_beta_is_0999(labels):
    np.testing.assert_array_equal(
        fastce.class_weights(labels, method="effective_number"),
        fastce.class_weights(labels, method="effective_number", beta=0.999))


def test_effective_number_limits():
    y = np.repeat(np.arange(3), [1000, 100, 1])
    # beta = 0: every class has effective number 1, equal weights
    np.testing.assert_allclose(
        fastce.class_weights(y, method="effective_number", beta=0.0), [1.0, 1.0, 1.0])
    # beta -> 1: proportional to inverse frequency (normalised to sum to C)
    inverse = fastce.class_weights(y, method="inverse_frequency")
    np.testing.assert_allclose(
        fastce.class_weights(y, method="effective_number", beta=1 - 1e-12),
        inverse / inverse.sum() * 3, rtol=1e-6)


def test_median_frequency_gives_median_class_weight_one():
    y = np.repeat(np.arange(5), [80, 40, 10, 5, 1])
    weight = fastce.class_weights(y, method="median_frequency")
    frequency = np.array([80, 40, 10, 5, 1]) / 136
    np.testing.assert_allclose(weight, np.median(frequency) / frequency, rtol=1e-15)
    assert weight[2] == 1.0  # the median class


@pytest.mark.parametrize("method", METHODS)
def test_result_is_float64_of_num_classes(labels, method):
    weight = fastce.class_weights(labels.astype(np.int32), 7, method=method)
    assert weight.dtype == np.float64 and weight.shape == (7,)
    assert np.all(np.isfinite(weight))


@pytest.mark.parametrize("method", METHODS)
def test_any_target_shape_counts_like_flat(method):
    masks = np.random.default_rng(2).integers(0, 4, size=(3, 5, 7, 2))
    np.testing.assert_array_equal(fastce.class_weights(masks, method=method),
                                  fastce.class_weights(masks.ravel(), method=method))


@pytest.mark.parametrize("method", METHODS)
def test_ignore_index_is_not_counted(method):
    rng = np.random.default_rng(3)
    masks = rng.integers(0, 3, size=(4, 6, 6)).astype(np.uint8)
    with_ignored = masks.copy()
    with_ignored[:, ::2, 1::3] = 255
    kept = with_ignored[with_ignored != 255]
    np.testing.assert_array_equal(
        fastce.class_weights(with_ignored, method=method, ignore_index=255),
        fastce.class_weights(kept, method=method))
    # the default ignore_index is PyTorch's -100
    labels = np.array([0, 1, -100, 1, 2, -100])
    np.testing.assert_array_equal(fastce.class_weights(labels, method=method),
                                  fastce.class_weights([0, 1, 1, 2], method=method))


@pytest.mark.parametrize("method", METHODS)
def test_absent_class_gets_weight_zero(method):
    # classes 1 and 4 never occur; the others are weighted among themselves
    y = np.array([0, 0, 0, 2, 3, 3])
    weight = fastce.class_weights(y, 5, method=method)
    assert weight[1] == 0.0 and weight[4] == 0.0
    assert np.all(weight[[0, 2, 3]] > 0)
    if method == "median_frequency":  # the median runs over present classes
        np.testing.assert_allclose(weight[[0, 2, 3]], [2 / 3, 2.0, 1.0])
    if method == "effective_number":  # still sums to C
        assert weight.sum() == pytest.approx(5.0)


def test_absent_class_weight_leaves_the_loss_unchanged():
    # an absent class is never a target, so its weight never enters the loss
    y = np.array([0, 0, 0, 2, 3, 3])
    logits = np.random.default_rng(4).normal(size=(6, 5))
    weight = fastce.class_weights(y, 5, method="balanced")
    patched = weight.copy()
    patched[[1, 4]] = 123.0
    assert fastce.cross_entropy(logits, y, weight=weight) == \
        fastce.cross_entropy(logits, y, weight=patched)


def test_num_classes_defaults_to_largest_target_plus_one():
    assert fastce.class_weights([0, 3, 3]).shape == (4,)
    assert fastce.class_weights([0, 3, 255], ignore_index=255).shape == (4,)


def test_weights_plug_into_segmentation_loss():
    rng = np.random.default_rng(5)
    masks = rng.integers(0, 3, size=(2, 8, 8))
    masks[:, 0] = 255
    weight = fastce.class_weights(masks, 3, method="median_frequency", ignore_index=255)
    logits = rng.normal(size=(2, 3, 8, 8))
    loss = fastce.cross_entropy(logits, masks, weight=weight, ignore_index=255)
    assert np.isfinite(loss)


# ------------------------------------------------------------ bad input --

def test_target_out_of_range_names_value_and_position():
    with pytest.raises(IndexError, match=r"Target 5 is out of bounds.*\(1, 0\).*\[0, 3\)"):
        fastce.class_weights(np.array([[0, 1], [5, 2]]), 3)


def test_negative_target_other_than_ignore_index_raises():
    with pytest.raises(IndexError, match=r"Target -1 is out of bounds.*\(2,\)"):
        fastce.class_weights([0, 1, -1, -100])


def test_ignore_index_outside_the_int64_range_raises_like_the_losses():
    # the same check as cross_entropy's ignore_index (the kernels compare it
    # with 64-bit targets), so a value a loss would refuse is refused here too
    for bad in (2 ** 70, np.uint64(2 ** 64 - 1)):
        with pytest.raises(ValueError, match="64-bit"):
            fastce.class_weights(np.array([0, 1]), ignore_index=bad)
        with pytest.raises(ValueError, match="64-bit"):
            fastce.cross_entropy(np.zeros((2, 2)), np.array([0, 1]), ignore_index=bad)


def test_out_of_range_scalar_target_message_matches_the_losses():
    with pytest.raises(IndexError, match=r"Target 5 is out of bounds\. The target "
                                         r"\(the only target\) must be a class index in "
                                         r"\[0, 3\)"):
        fastce.class_weights(np.array(5), num_classes=3)
    with pytest.raises(IndexError, match=r"\(the only target\)"):
        fastce.cross_entropy(np.zeros(3), np.array(5))


def test_float_target_raises_type_error():
    with pytest.raises(TypeError, match="integer class indices"):
        fastce.class_weights(np.array([0.0, 1.0]))


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method must be one of"):
        fastce.class_weights([0, 1], method="inverse")  # type: ignore[arg-type]


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5])
def test_beta_outside_unit_interval_raises(beta):
    with pytest.raises(ValueError, match="beta"):
        fastce.class_weights([0, 1], method="effective_number", beta=beta)


@pytest.mark.parametrize("num_classes", [0, -2, 2.5, True])
def test_bad_num_classes_raises(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        fastce.class_weights([0, 1], num_classes)


@pytest.mark.parametrize("target", [[], [255, 255]])
def test_no_counted_target_raises(target):
    with pytest.raises(ValueError, match="no element"):
        fastce.class_weights(np.array(target, dtype=np.int64), 3, ignore_index=255)


def test_input_is_not_modified():
    y = np.array([[2, 0], [255, 1]])
    before = y.copy()
    fastce.class_weights(y, ignore_index=255)
    np.testing.assert_array_equal(y, before)
