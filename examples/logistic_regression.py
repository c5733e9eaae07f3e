"""Multinomial logistic regression as a scikit-learn estimator, fitted with
L-BFGS on fastce's loss and gradient.

`SoftmaxRegression` minimises exactly the objective of
``sklearn.linear_model.LogisticRegression(solver="lbfgs")``:

    J(W, b) = sum_i s_i * CE(x_i W^T + b, y_i) / S  +  ||W||^2 / (2 * C * S)

where ``s_i`` is the class weight of sample i (1 without ``class_weight``)
and ``S = sum_i s_i``.  scikit-learn scales its penalty by ``1 / S`` (it
minimises a weighted *mean* loss, not ``C * sum(loss)`` as liblinear does),
and fastce's weighted mean already divides by the sum of the target
weights, so ``cross_entropy(..., weight=class_weights)`` is the first term
as it stands.  The intercept is not penalised.  Two classes use the
binomial model (one weight vector, `binary_cross_entropy_with_logits`), as
scikit-learn does; the multinomial model of two classes would halve the
penalty's effect.

With the same objective, the same start (zeros) and the same L-BFGS-B
settings, both converge to the same minimiser: on scikit-learn's bundled
digits data the predicted probabilities agree to ~1e-6.

    python examples/logistic_regression.py            # digits, side by side
    python examples/logistic_regression.py --tol 1e-6

Requires scipy; scikit-learn for the data and the comparison (the estimator
itself runs without it).
"""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
from scipy.optimize import minimize

import fastce

try:  # get_params / set_params / clone, and score from ClassifierMixin
    from sklearn.base import BaseEstimator, ClassifierMixin
except ImportError:  # the estimator still works, with minimal stand-ins
    class BaseEstimator:  # type: ignore[no-redef]
        """get_params / set_params over the constructor's arguments."""

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in _PARAM_NAMES}

        def set_params(self, **params):
            for name, value in params.items():
                if name not in _PARAM_NAMES:
                    raise ValueError(f"invalid parameter {name!r}")
                setattr(self, name, value)
            return self

    class ClassifierMixin:  # type: ignore[no-redef]
        def score(self, X, y):
            """Mean accuracy of `predict` on (X, y)."""
            return float(np.mean(self.predict(X) == np.asarray(y)))

try:  # small matrix products: one BLAS thread is faster, see `_one_blas_thread`
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

_PARAM_NAMES = ("C", "class_weight", "tol", "max_iter", "fit_intercept", "n_threads")


def _one_blas_thread():
    """A context running BLAS on one thread.  The products here are small
    ((N, 64) x (64, 10)): a threaded BLAS spends more on waking its threads
    than on the work, and on a busy machine a fit was measured 10-100x
    slower with two BLAS threads than with one (for scikit-learn alike)."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """L2-regularised multinomial logistic regression on fastce.

    Parameters
    ----------
    C : float, default 1.0
        Inverse regularisation strength, as in scikit-learn.
    class_weight : None, "balanced" or dict, default None
        "balanced" uses ``fastce.class_weights(y, method="balanced")``, the
        same numbers as scikit-learn's; a dict maps labels to weights
        (labels left out weigh 1).
    tol : float, default 1e-4
        L-BFGS-B stops when the largest gradient component is below it.
    max_iter : int, default 100
    fit_intercept : bool, default True
    n_threads : int, optional
        Threads for fastce's kernels (default: `fastce.get_num_threads`).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_classes, n_features), or (1, n_features)
        for two classes
    intercept_ : ndarray of shape (n_classes,), or (1,) for two classes
    n_iter_ : ndarray of shape (1,)
        L-BFGS iterations.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> model = SoftmaxRegression(C=10.0).fit(X, y)
    >>> model.predict(X)
    array([0, 0, 1, 1, 2, 2])
    >>> model.predict_proba(X).shape
    (6, 3)
    """

    def __init__(self, C=1.0, class_weight=None, tol=1e-4, max_iter=100,
                 fit_intercept=True, n_threads=None):
        self.C = C
        self.class_weight = class_weight
        self.tol = tol
        self.max_iter = max_iter
        self.fit_intercept = fit_intercept
        self.n_threads = n_threads

    # -------------------------------------------------------------- fitting --

    def fit(self, X, y):
        """Fit the model to features ``X`` (n_samples, n_features) and
        labels ``y`` (n_samples,); returns ``self``."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        self.classes_, y_index = np.unique(np.asarray(y), return_inverse=True)
        n_classes = self.classes_.size
        if n_classes < 2:
            raise ValueError(f"need samples of at least 2 classes, got {n_classes}")
        class_weight = self._class_weight_vector(y_index, n_classes)
        sample_weight_sum = (X.shape[0] if class_weight is None
                             else float(class_weight[y_index].sum()))
        l2_strength = 1.0 / (self.C * sample_weight_sum)
        if n_classes == 2:
            objective = self._binomial_objective(X, y_index, class_weight,
                                                 sample_weight_sum, l2_strength)
            n_outputs = 1
        else:
            objective = self._multinomial_objective(X, y_index, class_weight,
                                                    l2_strength)
            n_outputs = n_classes
        n_params = n_outputs * (X.shape[1] + int(self.fit_intercept))
        with _one_blas_thread():
            # scikit-learn's L-BFGS-B options, so that both stop alike
            result = minimize(objective, np.zeros(n_params), method="L-BFGS-B",
                              jac=True,
                              options={"maxiter": self.max_iter, "maxls": 50,
                                       "gtol": self.tol,
                                       "ftol": 64 * np.finfo(float).eps})
        coef, intercept = self._unpack(result.x, n_outputs, X.shape[1])
        self.coef_ = coef.copy()
        self.intercept_ = intercept.copy()
        self.n_iter_ = np.array([result.nit])
        self.converged_ = bool(result.success)
        return self

    def _class_weight_vector(self, y_index, n_classes):
        """(n_classes,) float64 weights, or None for no weighting."""
        if self.class_weight is None:
            return None
        if isinstance(self.class_weight, str):
            if self.class_weight != "balanced":
                raise ValueError(f"class_weight must be None, 'balanced' or a dict, "
                                 f"got {self.class_weight!r}")
            return fastce.class_weights(y_index, n_classes, method="balanced")
        return np.array([float(self.class_weight.get(label, 1.0))
                         for label in self.classes_])

    def _unpack(self, params, n_outputs, n_features):
        """Views of the flat parameter vector: coef (n_outputs, n_features)
        and intercept (n_outputs,)."""
        coef = params[:n_outputs * n_features].reshape(n_outputs, n_features)
        if self.fit_intercept:
            intercept = params[n_outputs * n_features:]
        else:
            intercept = np.zeros(n_outputs)
        return coef, intercept

    def _multinomial_objective(self, X, y_index, class_weight, l2_strength):
        """f(params) -> (J, dJ/dparams) for n_classes >= 3."""
        n_samples, n_features = X.shape
        n_classes = self.classes_.size
        logits = np.empty((n_samples, n_classes))
        # the gradient buffer lives across L-BFGS iterations: out= reuses it
        grad_logits = np.empty_like(logits)

        def objective(params):
            coef, intercept = self._unpack(params, n_classes, n_features)
            np.matmul(X, coef.T, out=logits)
            np.add(logits, intercept, out=logits)
            # weighted mean: divides by sum(class_weight[y]) = S, as sklearn does
            loss, g = fastce.cross_entropy_and_grad(
                logits, y_index, weight=class_weight, out=grad_logits,
                n_threads=self.n_threads)
            return self._with_penalty(float(loss), g, X, coef, l2_strength)

        return objective

    def _binomial_objective(self, X, y_index, class_weight, weight_sum, l2_strength):
        """f(params) -> (J, dJ/dparams) for two classes: one logit per sample,
        label 1 the positive class."""
        n_samples, n_features = X.shape
        target = y_index.astype(np.float64).reshape(-1, 1)
        sample_weight = None if class_weight is None else class_weight[y_index][:, None]
        logits = np.empty((n_samples, 1))
        grad_logits = np.empty_like(logits)

        def objective(params):
            coef, intercept = self._unpack(params, 1, n_features)
            np.matmul(X, coef.T, out=logits)
            np.add(logits, intercept, out=logits)
            # BCE's mean divides by the element count, not by the weight sum:
            # take the sum and scale by 1/S (grad_output scales the gradient)
            loss, g = fastce.binary_cross_entropy_with_logits_and_grad(
                logits, target, weight=sample_weight, reduction="sum",
                grad_output=1.0 / weight_sum, out=grad_logits,
                n_threads=self.n_threads)
            return self._with_penalty(float(loss) / weight_sum, g, X, coef,
                                      l2_strength)

        return objective

    def _with_penalty(self, data_loss, grad_logits, X, coef, l2_strength):
        """Add the L2 penalty and chain d(loss)/d(logits) to the parameters."""
        loss = data_loss + 0.5 * l2_strength * float(np.vdot(coef, coef))
        grad_coef = grad_logits.T @ X + l2_strength * coef
        if not self.fit_intercept:
            return loss, grad_coef.ravel()
        return loss, np.concatenate([grad_coef.ravel(), grad_logits.sum(axis=0)])

    # ----------------------------------------------------------- prediction --

    def decision_function(self, X):
        """Logits, (n_samples, n_classes) -- (n_samples,) for two classes."""
        logits = np.asarray(X, dtype=np.float64) @ self.coef_.T + self.intercept_
        return logits[:, 0] if self.classes_.size == 2 else logits

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns in the order
        of ``classes_``."""
        logits = self.decision_function(X)
        if self.classes_.size == 2:
            # softmax over (0, z) is (1 - sigmoid(z), sigmoid(z)), overflow-free
            logits = np.stack([np.zeros_like(logits), logits], axis=1)
        return fastce.softmax(logits, axis=1)

    def predict(self, X):
        """The most probable class of each sample."""
        scores = self.decision_function(X)
        if scores.ndim == 1:  # two classes: the positive one where z > 0
            return self.classes_[(scores > 0).astype(np.intp)]
        return self.classes_[np.argmax(scores, axis=1)]


# ------------------------------------------------------------- comparison --

def load_digits_scaled(n_samples=None):
    """scikit-learn's bundled 8x8 digits (no download), pixels scaled to
    [0, 1]; the first ``n_samples`` when given."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    if n_samples is not None:
        X, y = X[:n_samples], y[:n_samples]
    return X / 16.0, y


def compare_with_sklearn(X, y, *, C=1.0, class_weight=None, tol=1e-8, max_iter=10_000):
    """Fit `SoftmaxRegression` and scikit-learn's ``LogisticRegression`` with
    the same objective and settings.

    Returns
    -------
    dict with ``max_abs_proba_diff`` (the largest difference between their
    predicted probabilities on X), ``fastce_seconds``, ``sklearn_seconds``,
    both iteration counts and both training accuracies.
    """
    from sklearn.linear_model import LogisticRegression

    ours = SoftmaxRegression(C=C, class_weight=class_weight, tol=tol, max_iter=max_iter)
    theirs = LogisticRegression(C=C, class_weight=class_weight, tol=tol,
                                max_iter=max_iter, solver="lbfgs")
    start = time.perf_counter()
    ours.fit(X, y)
    ours_seconds = time.perf_counter() - start
    with _one_blas_thread():  # the same BLAS conditions for both
        start = time.perf_counter()
        theirs.fit(X, y)
        theirs_seconds = time.perf_counter() - start
    difference = np.abs(ours.predict_proba(X) - theirs.predict_proba(X))
    return {
        "max_abs_proba_diff": float(difference.max()),
        "fastce_seconds": ours_seconds,
        "sklearn_seconds": theirs_seconds,
        "fastce_iterations": int(ours.n_iter_[0]),
        "sklearn_iterations": int(theirs.n_iter_[0]),
        "fastce_accuracy": ours.score(X, y),
        "sklearn_accuracy": theirs.score(X, y),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--samples", type=int, default=None,
                        help="use the first N digits (default: all 1797)")
    args = parser.parse_args(argv)
    X, y = load_digits_scaled(args.samples)
    print(f"digits: {X.shape[0]} samples, {X.shape[1]} features, "
          f"{np.unique(y).size} classes; C={args.C}, tol={args.tol}")
    print(f"{'class_weight':<13} {'max |p - p_sklearn|':>20} {'fastce fit':>11} "
          f"{'sklearn fit':>12} {'iterations':>11} {'train acc':>10}")
    for class_weight in (None, "balanced"):
        r = compare_with_sklearn(X, y, C=args.C, class_weight=class_weight, tol=args.tol)
        print(f"{str(class_weight):<13} {r['max_abs_proba_diff']:>20.2e} "
              f"{r['fastce_seconds'] * 1e3:>8.1f} ms {r['sklearn_seconds'] * 1e3:>9.1f} ms "
              f"{r['fastce_iterations']:>5} / {r['sklearn_iterations']:<5}"
              f"{r['fastce_accuracy']:>9.4f}")


if __name__ == "__main__":
    main()
