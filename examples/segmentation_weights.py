"""Class-weighted K-dimensional cross-entropy for segmentation.

Synthetic masks ``(N, H, W)`` where background covers most pixels, one class
covers large regions and three classes are small and rare; pixels on region
boundaries carry 255 ("don't care", as in PASCAL VOC) and are ignored.  A
per-pixel linear classifier (a 1x1 convolution) on noisy features is trained
by gradient descent on ``cross_entropy`` over ``(N, C, H, W)`` logits --
class axis 1, no transposes -- once without weights and once with
median-frequency class weights from `fastce.class_weights`.

The weighted loss trades a little background accuracy for much better
recall of the rare classes: the mean per-class recall goes up.

    python examples/segmentation_weights.py
    python examples/segmentation_weights.py --images 4 --size 32
"""
from __future__ import annotations

import argparse

import numpy as np

import fastce

IGNORE = 255
CLASS_NAMES = ("background", "large", "medium", "small", "tiny")


def synthetic_masks(n_images=8, size=64, seed=0):
    """Masks (n_images, size, size) of int64 labels 0..4 plus IGNORE on the
    boundaries between regions, and the same masks before the boundaries
    were marked (the true class of every pixel)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    masks = np.zeros((n_images, size, size), dtype=np.int64)
    for mask in masks:
        # (class, shapes per image, radius range as a fraction of the size):
        # squares, drawn largest first so that small ones stay visible
        for label, count, (low, high) in ((1, 1, (0.2, 0.3)), (2, 2, (0.06, 0.09)),
                                          (3, 2, (0.04, 0.06)), (4, 3, (0.02, 0.035))):
            for _ in range(count):
                radius = max(1, int(rng.uniform(low, high) * size))
                r, c = rng.integers(radius, size - radius, size=2)
                mask[(abs(rows - r) <= radius) & (abs(cols - c) <= radius)] = label
    truth = masks.copy()
    boundary = np.zeros_like(masks, dtype=bool)
    boundary[:, 1:, :] |= masks[:, 1:, :] != masks[:, :-1, :]
    boundary[:, :, 1:] |= masks[:, :, 1:] != masks[:, :, :-1]
    masks[boundary] = IGNORE
    return masks, truth


def pixel_features(truth, n_features=6, noise=1.2, seed=0):
    """Features (N, F, H, W): each pixel's class prototype plus Gaussian
    noise, so that classes overlap and a classifier must trade them off."""
    rng = np.random.default_rng(seed + 1)
    prototypes = rng.normal(size=(len(CLASS_NAMES), n_features))
    features = prototypes[truth] + noise * rng.normal(size=truth.shape + (n_features,))
    return np.ascontiguousarray(np.moveaxis(features, -1, 1))


def logits_of(coef, intercept, features):
    """A 1x1 convolution: (C, F) weights over (N, F, H, W) -> (N, C, H, W)."""
    n, f, h, w = features.shape
    flat = features.reshape(n, f, h * w)
    logits = np.matmul(coef, flat) + intercept[:, None]
    return logits.reshape(n, coef.shape[0], h, w)


def train(features, masks, weight=None, *, steps=150, learning_rate=2.0):
    """Full-batch gradient descent on the (weighted) mean cross-entropy.

    Returns (coef (C, F), intercept (C,), final loss)."""
    n, f, h, w = features.shape
    n_classes = len(CLASS_NAMES)
    coef = np.zeros((n_classes, f))
    intercept = np.zeros(n_classes)
    flat = features.reshape(n, f, h * w)
    grad_logits = np.empty((n, n_classes, h, w))
    loss = np.nan
    for _ in range(steps):
        logits = logits_of(coef, intercept, features)
        # K-dimensional input: the class axis is 1, the target is (N, H, W)
        loss, grad = fastce.cross_entropy_and_grad(
            logits, masks, weight=weight, ignore_index=IGNORE, out=grad_logits)
        g = grad.reshape(n, n_classes, h * w)
        coef -= learning_rate * np.einsum("ncp,nfp->cf", g, flat)
        intercept -= learning_rate * g.sum(axis=(0, 2))
    return coef, intercept, float(loss)


def per_class_recall(coef, intercept, features, masks):
    """Fraction of each class's (non-ignored) pixels predicted as that class."""
    predicted = np.argmax(logits_of(coef, intercept, features), axis=1)
    return np.array([np.mean(predicted[masks == c] == c)
                     for c in range(len(CLASS_NAMES))])


def reference_weighted_loss(logits, masks, weight, ignore_index=IGNORE):
    """The weighted mean in plain NumPy: sum of w[y] * -log p[y] over the
    pixels that are not ignored, divided by the sum of their w[y]."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    keep = masks != ignore_index
    target = np.where(keep, masks, 0)
    picked = np.take_along_axis(log_prob, target[:, None], axis=1)[:, 0]
    w = weight[target] * keep
    return float(np.sum(-w * picked) / np.sum(w))


def run(*, n_images=8, size=64, steps=150, seed=0, verbose=False):
    """Train without and with median-frequency weights on the same data.

    Returns
    -------
    dict with ``weights`` (C,), ``class_fraction`` (C,) of the non-ignored
    pixels, ``ignored_fraction``, ``recall_unweighted`` / ``recall_weighted``
    (C,), and the check ``loss_fastce`` vs ``loss_reference`` of the weighted
    loss on random logits.
    """
    masks, truth = synthetic_masks(n_images, size, seed)
    features = pixel_features(truth, seed=seed)
    weights = fastce.class_weights(masks, len(CLASS_NAMES), method="median_frequency",
                                   ignore_index=IGNORE)
    kept = masks[masks != IGNORE]
    class_fraction = np.bincount(kept, minlength=len(CLASS_NAMES)) / kept.size

    random_logits = np.random.default_rng(seed + 2).normal(
        size=(n_images, len(CLASS_NAMES), size, size))
    loss_fastce = float(fastce.cross_entropy(random_logits, masks, weight=weights,
                                             ignore_index=IGNORE))
    loss_reference = reference_weighted_loss(random_logits, masks, weights)

    recalls = {}
    for name, weight in (("unweighted", None), ("weighted", weights)):
        coef, intercept, _ = train(features, masks, weight, steps=steps)
        recalls[name] = per_class_recall(coef, intercept, features, masks)

    if verbose:
        print(f"{n_images} masks of {size}x{size}; {np.mean(masks == IGNORE):.1%} of "
              f"pixels ignored (label {IGNORE})")
        print(f"{'class':<11} {'pixels':>7} {'weight':>7} {'recall':>8} {'weighted':>9}")
        for c, name in enumerate(CLASS_NAMES):
            print(f"{name:<11} {class_fraction[c]:>7.2%} {weights[c]:>7.2f} "
                  f"{recalls['unweighted'][c]:>8.3f} {recalls['weighted'][c]:>9.3f}")
        print(f"{'mean':<11} {'':>7} {'':>7} {recalls['unweighted'].mean():>8.3f} "
              f"{recalls['weighted'].mean():>9.3f}")
        print(f"weighted loss on random logits: fastce {loss_fastce:.6f}, "
              f"NumPy reference {loss_reference:.6f}")
    return {
        "weights": weights,
        "class_fraction": class_fraction,
        "ignored_fraction": float(np.mean(masks == IGNORE)),
        "recall_unweighted": recalls["unweighted"],
        "recall_weighted": recalls["weighted"],
        "loss_fastce": loss_fastce,
        "loss_reference": loss_reference,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(n_images=args.images, size=args.size, steps=args.steps, seed=args.seed,
        verbose=True)


if __name__ == "__main__":
    main()
