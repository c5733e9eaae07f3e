"""A two-layer MLP trained with plain NumPy and fastce on the digits data.

The network is ``logits = relu(x W1 + b1) W2 + b2``, trained by minibatch SGD
with momentum.  fastce supplies the loss and d(loss)/d(logits) in one call;
the rest of backpropagation is three matrix products.  The gradient of the
logits goes into one preallocated buffer (``out=``), so the training loop
allocates no (batch, classes) array per step.

    python examples/mlp_numpy.py                  # ~97% test accuracy, ~1 s
    python examples/mlp_numpy.py --epochs 5 --hidden 32

Requires scikit-learn only for its bundled digits data (no download).
"""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

import fastce

try:  # small matrix products: one BLAS thread is faster (see below)
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None


def _one_blas_thread():
    """A context running BLAS on one thread: these products are (32, 64) x
    (64, 128) and smaller, where waking BLAS threads costs more than the
    work, and on a busy machine it costs 10-100x."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def load_digits_split(test_fraction=0.2, seed=0, dtype=np.float32):
    """scikit-learn's bundled 8x8 digits, pixels scaled to [0, 1], split at
    random (seeded) into (X_train, y_train, X_test, y_test)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    X = (X / 16.0).astype(dtype)
    return X[train], y[train], X[test], y[test]


def init_params(n_inputs, n_hidden, n_classes, rng, dtype=np.float32):
    """He-initialised weights (suited to ReLU) and zero biases."""
    return {
        "W1": (rng.normal(size=(n_inputs, n_hidden)) * np.sqrt(2.0 / n_inputs)).astype(dtype),
        "b1": np.zeros(n_hidden, dtype=dtype),
        "W2": (rng.normal(size=(n_hidden, n_classes)) * np.sqrt(2.0 / n_hidden)).astype(dtype),
        "b2": np.zeros(n_classes, dtype=dtype),
    }


def forward(params, X):
    """(hidden activations, logits) of a batch."""
    hidden = np.maximum(X @ params["W1"] + params["b1"], 0)
    return hidden, hidden @ params["W2"] + params["b2"]


def predict(params, X):
    """The most probable class of each row of X."""
    return np.argmax(forward(params, X)[1], axis=1)


def train(X, y, *, n_hidden=128, epochs=30, batch_size=32, learning_rate=0.1,
          momentum=0.9, weight_decay=1e-4, seed=0):
    """Train the MLP by minibatch SGD with momentum.

    Returns
    -------
    params : dict of the weights W1, b1, W2, b2
    epoch_losses : list of float, the mean training loss of each epoch
    """
    rng = np.random.default_rng(seed)
    n_samples, n_inputs = X.shape
    n_classes = int(y.max()) + 1
    params = init_params(n_inputs, n_hidden, n_classes, rng, X.dtype)
    velocity = {name: np.zeros_like(p) for name, p in params.items()}
    # one gradient buffer for every step; a short last batch uses its first
    # rows, which are still C-contiguous as out= requires
    grad_logits_buffer = np.empty((batch_size, n_classes), dtype=X.dtype)
    epoch_losses = []
    with _one_blas_thread():
        for _ in range(epochs):
            order = rng.permutation(n_samples)
            loss_sum = 0.0
            for start in range(0, n_samples, batch_size):
                batch = order[start:start + batch_size]
                xb, yb = X[batch], y[batch]
                hidden, logits = forward(params, xb)
                loss, grad_logits = fastce.cross_entropy_and_grad(
                    logits, yb, out=grad_logits_buffer[:len(batch)])
                loss_sum += float(loss) * len(batch)
                grad_hidden = grad_logits @ params["W2"].T
                grad_hidden[hidden <= 0] = 0  # ReLU
                grads = {
                    "W2": hidden.T @ grad_logits, "b2": grad_logits.sum(axis=0),
                    "W1": xb.T @ grad_hidden, "b1": grad_hidden.sum(axis=0),
                }
                for name, p in params.items():
                    g = grads[name] + weight_decay * p if name[0] == "W" else grads[name]
                    velocity[name] *= momentum
                    velocity[name] -= learning_rate * g
                    p += velocity[name]
            epoch_losses.append(loss_sum / n_samples)
    return params, epoch_losses


def run(*, n_hidden=128, epochs=30, batch_size=32, learning_rate=0.1, seed=0,
        verbose=False):
    """Load the digits, train, and evaluate on the held-out 20%.

    Returns
    -------
    dict with ``test_accuracy``, ``train_accuracy``, ``train_seconds`` and
    ``epoch_losses``.
    """
    X_train, y_train, X_test, y_test = load_digits_split(seed=seed)
    start = time.perf_counter()
    params, losses = train(X_train, y_train, n_hidden=n_hidden, epochs=epochs,
                           batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    seconds = time.perf_counter() - start
    if verbose:
        for epoch, loss in enumerate(losses, 1):
            if epoch == 1 or epoch % 5 == 0 or epoch == len(losses):
                print(f"epoch {epoch:3d}  training loss {loss:.4f}")
    return {
        "test_accuracy": float(np.mean(predict(params, X_test) == y_test)),
        "train_accuracy": float(np.mean(predict(params, X_train) == y_train)),
        "train_seconds": seconds,
        "epoch_losses": losses,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(n_hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size,
                 learning_rate=args.lr, seed=args.seed, verbose=True)
    print(f"train accuracy {result['train_accuracy']:.4f}   "
          f"test accuracy {result['test_accuracy']:.4f}   "
          f"training time {result['train_seconds']:.2f} s")


if __name__ == "__main__":
    main()
