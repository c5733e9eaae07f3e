"""fastce: the cross-entropy family of losses and their gradients on NumPy
arrays, with PyTorch's semantics, in Cython + OpenMP.

Layout: ``functional`` (the public functions), ``losses`` (loss objects),
``class_weights`` (per-class weights for imbalanced data), ``focal``
(focal losses), ``boosting`` (gradient + Hessian objectives for XGBoost,
LightGBM and scikit-learn-style boosting), ``linear``
(the fused linear + cross-entropy output layer), ``_validation``
(input checks), ``_config`` (threads, build information),
``_kernels`` (typed Cython kernels over C SIMD primitives), ``__main__``
(the command line).
"""
__version__ = "0.1.0"

from fastce._config import get_num_threads, set_num_threads, show_config
# the function shadows its module's name on the package, as the API wants
# fastce.class_weights(...); the module stays importable through importlib
from fastce.class_weights import class_weights
from fastce.functional import (
    binary_cross_entropy,
    binary_cross_entropy_and_grad,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_and_grad,
    cross_entropy,
    cross_entropy_and_grad,
    log_softmax,
    logsumexp,
    nll_loss,
    nll_loss_and_grad,
    softmax,
)
from fastce.focal import (
    FocalLoss,
    SigmoidFocalLoss,
    focal_loss,
    focal_loss_and_grad,
    sigmoid_focal_loss,
    sigmoid_focal_loss_and_grad,
)
from fastce.linear import (
    LinearCrossEntropyLoss,
    linear_cross_entropy,
    linear_cross_entropy_and_grad,
)
from fastce.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss

__all__ = [
    "__version__",
    "cross_entropy", "cross_entropy_and_grad", "nll_loss", "nll_loss_and_grad",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_and_grad",
    "binary_cross_entropy", "binary_cross_entropy_and_grad",
    "log_softmax", "softmax", "logsumexp",
    "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss",
    "class_weights",
    "focal_loss", "focal_loss_and_grad", "FocalLoss",
    "sigmoid_focal_loss", "sigmoid_focal_loss_and_grad", "SigmoidFocalLoss",
    "linear_cross_entropy", "linear_cross_entropy_and_grad", "LinearCrossEntropyLoss",
    "get_num_threads", "set_num_threads", "show_config",
]
