"""The examples in examples/ run, and meet the numbers the README quotes:

- logistic_regression.py: the same probabilities as scikit-learn's
  LogisticRegression on the digits to 1e-4, with and without
  class_weight="balanced" (and for two classes, and for a dict of weights);
- mlp_numpy.py: > 95% test accuracy on the digits within seconds, with one
  reused gradient buffer;
- segmentation_weights.py: the weighted K-dimensional loss equals its NumPy
  definition, and median-frequency weights raise the rare classes' recall;
- word_lm.py: on a small slice of the standard library's text, the word
  model's head step equals the materialised computation, validation
  perplexity falls below the unigram model's, and the fused head's peak
  memory is below the materialised one's.

Each is imported from its file (examples/ is not a package) and also run
once as a script.
"""
from __future__ import annotations

import doctest
import importlib.util
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import fastce

pytest.importorskip("scipy")
pytest.importorskip("sklearn")

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "examples")


def load_example(name):
    """Import examples/<name>.py as a module."""
    path = os.path.join(EXAMPLES_DIR, name + ".py")
    spec = importlib.util.spec_from_file_location(f"fastce_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def logistic():
    return load_example("logistic_regression")


@pytest.fixture(scope="module")
def mlp():
    return load_example("mlp_numpy")


@pytest.fixture(scope="module")
def segmentation():
    return load_example("segmentation_weights")


@pytest.fixture(scope="module")
def word_lm():
    return load_example("word_lm")


# ---------------------------------------------------- logistic regression --

@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_logistic_regression_matches_sklearn_on_digits(logistic, class_weight):
    X, y = logistic.load_digits_scaled()
    result = logistic.compare_with_sklearn(X, y, class_weight=class_weight, tol=1e-8)
    assert result["max_abs_proba_diff"] < 1e-4, result
    assert result["fastce_accuracy"] > 0.95


def test_logistic_regression_two_classes_match_sklearn_binomial(logistic):
    # two classes: one weight vector and BCE-with-logits, as sklearn fits them
    X, y = logistic.load_digits_scaled()
    pair = (y == 3) | (y == 8)
    result = logistic.compare_with_sklearn(X[pair], y[pair], class_weight="balanced",
                                           tol=1e-8)
    assert result["max_abs_proba_diff"] < 1e-4, result


def test_logistic_regression_dict_class_weight_matches_sklearn(logistic):
    X, y = logistic.load_digits_scaled(400)
    result = logistic.compare_with_sklearn(X, y, class_weight={0: 3.0, 7: 0.25},
                                           tol=1e-8)
    assert result["max_abs_proba_diff"] < 1e-4, result


def test_logistic_regression_is_a_scikit_learn_estimator(logistic):
    from sklearn.base import clone

    X, y = logistic.load_digits_scaled(300)
    labels = np.array(list("abcdefghij"))[y]  # any label type, via classes_
    model = logistic.SoftmaxRegression(C=0.5, max_iter=200)
    assert model.get_params()["C"] == 0.5
    copy = clone(model).set_params(C=2.0)
    assert copy.C == 2.0 and model.C == 0.5
    model.fit(X, labels)
    assert list(model.classes_) == list("abcdefghij")
    assert set(model.predict(X)) <= set(model.classes_)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    assert model.coef_.shape == (10, 64) and model.intercept_.shape == (10,)
    assert model.score(X, labels) > 0.9


def test_logistic_regression_works_without_scikit_learn(monkeypatch):
    # None in sys.modules makes the import fail: the stand-in base classes
    monkeypatch.setitem(sys.modules, "sklearn.base", None)
    standalone = load_example("logistic_regression")
    assert standalone.BaseEstimator.__module__ == standalone.__name__
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    y = np.array([0, 0, 1, 1, 2, 2])
    model = standalone.SoftmaxRegression(C=10.0).set_params(max_iter=500)
    assert model.get_params()["max_iter"] == 500
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(alpha=1.0)
    assert model.fit(X, y).score(X, y) == 1.0


def test_logistic_regression_rejects_single_class(logistic):
    with pytest.raises(ValueError, match="at least 2 classes"):
        logistic.SoftmaxRegression().fit(np.zeros((3, 2)), [1, 1, 1])


# -------------------------------------------------------------------- MLP --

def test_mlp_reaches_95_percent_on_digits_in_seconds(mlp):
    result = mlp.run()
    assert result["test_accuracy"] > 0.95, result["test_accuracy"]
    # "a few seconds": generous, the run takes well under one
    assert result["train_seconds"] < 15, result["train_seconds"]
    losses = result["epoch_losses"]
    assert losses[-1] < 0.5 * losses[0]


def test_mlp_reuses_one_gradient_buffer(mlp, monkeypatch):
    real = mlp.fastce.cross_entropy_and_grad
    buffers = []

    def recording(logits, target, **kwargs):
        loss, grad = real(logits, target, **kwargs)
        assert grad is kwargs["out"]
        buffers.append(kwargs["out"].__array_interface__["data"][0])
        return loss, grad

    monkeypatch.setattr(mlp, "fastce",
                        types.SimpleNamespace(cross_entropy_and_grad=recording))
    X_train, y_train, _, _ = mlp.load_digits_split()
    # 100 samples in batches of 32: three full batches and a short one
    mlp.train(X_train[:100], y_train[:100], n_hidden=16, epochs=2, batch_size=32)
    assert len(buffers) == 8
    assert len(set(buffers)) == 1  # one buffer, every step


# ----------------------------------------------------------- segmentation --

def test_segmentation_weighted_loss_and_recall(segmentation):
    result = segmentation.run(n_images=4, size=32, steps=150, seed=0)
    np.testing.assert_allclose(result["loss_fastce"], result["loss_reference"],
                               rtol=1e-12)
    fraction = result["class_fraction"]
    np.testing.assert_allclose(result["weights"], np.median(fraction) / fraction,
                               rtol=1e-12)
    assert 0 < result["ignored_fraction"] < 0.5
    unweighted, weighted = result["recall_unweighted"], result["recall_weighted"]
    assert weighted.mean() > unweighted.mean() + 0.1, (unweighted, weighted)
    rarest = int(np.argmin(fraction))
    assert weighted[rarest] > unweighted[rarest]


def test_segmentation_masks_are_imbalanced_with_ignored_boundaries(segmentation):
    masks, truth = segmentation.synthetic_masks(n_images=2, size=32, seed=1)
    ignored = masks == segmentation.IGNORE
    assert ignored.any()
    np.testing.assert_array_equal(masks[~ignored], truth[~ignored])
    counts = np.bincount(masks[~ignored], minlength=5)
    assert counts[0] > 0.5 * counts.sum() and counts[1:].min() > 0


# ------------------------------------------------------------ word model --

def test_word_lm_corpus_is_the_standard_library(word_lm):
    texts = word_lm.stdlib_text(max_files=20)
    assert len(texts) > 20 and all(isinstance(t, str) for t in texts)
    ids, vocab = word_lm.build_corpus(texts, 500)
    assert vocab[:2] == ["<unk>", "<eos>"] and len(vocab) <= 500
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < len(vocab)
    ctx, nxt = word_lm.windows(ids, 3)
    np.testing.assert_array_equal(ctx[5], ids[5:8])
    assert nxt[5] == ids[8]


def test_word_lm_head_step_matches_materialised(word_lm):
    """The example's training step gets, from linear_cross_entropy_and_grad,
    what the materialised logits give."""
    rng = np.random.default_rng(0)
    model = word_lm.WordLM(vocab=300, context=2, embed=8, hidden=16, seed=0)
    ctx = rng.integers(0, 300, (64, 2))
    nxt = rng.integers(0, 300, 64)
    _, h = model.hidden(ctx)
    W, b = model.p["W"], model.p["b"]
    loss, gh, gW, gb = fastce.linear_cross_entropy_and_grad(h, W, nxt, linear_bias=b,
                                                            chunk_size=10)
    ref_loss, G = fastce.cross_entropy_and_grad(h @ W.T + b, nxt)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(gh, G @ W, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gW, G.T @ h, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gb, G.sum(0), rtol=1e-4, atol=1e-6)


def test_word_lm_learns_and_saves_memory(word_lm):
    result = word_lm.train(vocab=2000, context=2, embed=16, hidden=32, batch=256,
                           steps=300, lr=5e-3, max_files=40, eval_every=150,
                           n_threads=1, verbose=False)
    first, last = result["history"][0][1], result["history"][-1][1]
    assert last < first and last < result["unigram"], result["history"]
    assert result["peaks"]["fastce"] < result["peaks"]["materialised"]


# ------------------------------------------------------------- as scripts --

@pytest.mark.parametrize("name, args", [
    ("logistic_regression", ["--samples", "300", "--tol", "1e-6"]),
    ("mlp_numpy", ["--epochs", "2", "--hidden", "16"]),
    ("segmentation_weights", ["--images", "2", "--size", "16", "--steps", "5"]),
    ("word_lm", ["--max-files", "10", "--vocab", "500", "--steps", "5", "--batch", "64",
                 "--eval-every", "5", "--hidden", "16", "--embed", "8"]),
])
def test_example_runs_as_a_script(name, args, tmp_path):
    # from a scratch directory: the installed fastce, not the source tree
    completed = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES_DIR, name + ".py"), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip()


def test_example_docstrings(logistic):
    result = doctest.testmod(logistic, verbose=False)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------- dask_eval --

def test_dask_eval_matches_numpy_over_the_generated_blocks(capsys):
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    example = load_example("dask_eval")
    rows, chunk = 20000, 3000          # unequal last block
    loss, accuracy, peaks = example.main(["--rows", str(rows), "--chunk-rows", str(chunk),
                                          "--classes", "20", "--no-progress",
                                          "--memory-limit", "1GiB"])
    blocks = [example.block_logits(k, min(chunk, rows - k * chunk), 20, 0)
              for k in range(-(-rows // chunk))]
    logits = np.concatenate([b[0] for b in blocks])
    target = np.concatenate([b[1] for b in blocks])
    assert logits.shape == (rows, 20)
    np.testing.assert_allclose(loss, fastce.cross_entropy(logits, target), rtol=1e-6)
    assert accuracy == pytest.approx(float((logits.argmax(1) == target).mean()), abs=1e-12)
    assert len(peaks) == 2 and all(p > 0 for p in peaks.values())
    assert "peak resident memory" in capsys.readouterr().out
