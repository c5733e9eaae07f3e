"""How a user's typed code sees fastce: checked by ``mypy --strict`` in
test_typing.py and also run as plain Python there, so every line is real,
working usage.  ``assert_type`` pins what the overloads promise: a loss is a
NumPy floating scalar for reduction "mean" / "sum" and an ndarray for
"none"."""
from __future__ import annotations

import io
import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

import fastce
from fastce import functional as F

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

FloatArray = NDArray[np.floating[Any]]

logits = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
labels = np.arange(8) % 5
multi_label = (logits > 0).astype(np.float32)

# reduction decides the return type
mean_loss = fastce.cross_entropy(logits, labels)
assert_type(mean_loss, np.floating[Any])
assert_type(fastce.cross_entropy(logits, labels, reduction="sum"), np.floating[Any])
assert_type(fastce.cross_entropy(logits, labels, reduction="none"), FloatArray)
assert_type(fastce.nll_loss(fastce.log_softmax(logits), labels), np.floating[Any])
assert_type(fastce.nll_loss(logits, labels, reduction="none"), FloatArray)
assert_type(fastce.binary_cross_entropy_with_logits(logits, multi_label),
            np.floating[Any])
assert_type(fastce.binary_cross_entropy_with_logits(logits, multi_label,
                                                    reduction="none"), FloatArray)
assert_type(fastce.binary_cross_entropy(fastce.softmax(logits), multi_label,
                                        reduction="none"), FloatArray)

# a reduction known only at run time gives the union of both
configured: F.Reduction = "sum" if len(labels) > 4 else "none"
assert_type(fastce.cross_entropy(logits, labels, reduction=configured), F.LossValue)

# loss and gradient
loss, grad = fastce.cross_entropy_and_grad(logits, labels, label_smoothing=0.1)
assert_type(loss, np.floating[Any])
assert_type(grad, FloatArray)
per_sample, grad = fastce.cross_entropy_and_grad(logits, labels, reduction="none",
                                                 grad_output=np.ones(8))
assert_type(per_sample, FloatArray)
buffer = np.empty_like(logits)
_, grad = fastce.cross_entropy_and_grad(logits, labels, out=buffer, n_threads=1)
_, grad = fastce.nll_loss_and_grad(logits, labels, weight=np.ones(5))
_, grad = fastce.binary_cross_entropy_with_logits_and_grad(
    logits, multi_label, pos_weight=np.full(5, 2.0))
_, grad = fastce.binary_cross_entropy_and_grad(fastce.softmax(logits), multi_label)

# K-dimensional input, another class axis
masks = np.zeros((2, 4, 4), dtype=np.int64)
seg_loss = fastce.cross_entropy(np.zeros((2, 3, 4, 4)), masks, ignore_index=255)
channels_last = fastce.cross_entropy(np.zeros((2, 4, 4, 3)), masks, axis=-1)
assert_type(fastce.log_softmax(logits, axis=-1), FloatArray)
lse: F.LossValue = fastce.logsumexp(logits)

# class weights
weights = fastce.class_weights(labels, 5, method="balanced")
assert_type(weights, NDArray[np.float64])
weighted = fastce.cross_entropy(logits, labels, weight=weights)

# loss objects
loss_fn = fastce.CrossEntropyLoss(weight=weights, label_smoothing=0.05)
value: F.LossValue = loss_fn(logits, labels)
value, grad = loss_fn.loss_and_grad(logits, labels, out=buffer)
bce_fn = fastce.BCEWithLogitsLoss(reduction="sum")
value = bce_fn(logits, multi_label)

# threads and build information
fastce.set_num_threads(1)
n_threads: int = fastce.get_num_threads()
fastce.set_num_threads(None)
report = io.StringIO()
fastce.show_config(file=report)

total: float = float(mean_loss) + float(weighted) + float(np.sum(grad))
