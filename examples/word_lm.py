"""A word-level language model trained in NumPy, whose softmax output layer
over a ~20,000-word vocabulary is `fastce.linear_cross_entropy_and_grad`.

The text is the docstrings and comments of the Python standard library's own
source files (found through ``sysconfig``: nothing to download).  The model
is Bengio et al.'s (2003) neural probabilistic language model: the previous
``context`` words are embedded, concatenated, passed through a tanh hidden
layer, and the next word is predicted by a linear head over the whole
vocabulary, ``softmax(h @ W.T + b)``.  That head is where the memory goes:
materialised, its logits and their gradient are 2 x batch x vocabulary floats
per step; fastce never holds more than one chunk of them.

    python examples/word_lm.py                        # 19k words, about 4 minutes
    python examples/word_lm.py --steps 300 --vocab 8000 --max-files 200

It prints the validation perplexity as it trains (next to the unigram
model's, the baseline to beat) and, at the end, the head's peak extra memory
per step against the materialised computation (logits, then
`fastce.cross_entropy_and_grad`, then the two gradient products).
"""
from __future__ import annotations

import argparse
import ast
import collections
import io
import math
import os
import re
import sysconfig
import time
import tokenize
import tracemalloc

import numpy as np

import fastce

# words (case kept: "None" and "none" differ in this text), numbers, punctuation
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|[0-9]+|[.,:;()!?]")


def stdlib_text(max_files: int | None = None) -> list[str]:
    """The docstrings and comments of the standard library's .py files, one
    string each, in a fixed (sorted) file order."""
    root = sysconfig.get_paths()["stdlib"]
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in ("site-packages", "test", "tests", "idle_test"))
        paths += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    texts = []
    for path in paths[:max_files]:
        try:
            with open(path, "rb") as f:
                source = f.read()
            tree = ast.parse(source)
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    texts.append(doc)
        try:
            for tok in tokenize.tokenize(io.BytesIO(source).readline):
                if tok.type == tokenize.COMMENT:
                    texts.append(tok.string.lstrip("#"))
        except (tokenize.TokenError, SyntaxError):
            pass
    return texts


def build_corpus(texts, vocab_size: int):
    """Word ids (int64) of the words, numbers and punctuation marks, with the
    ``vocab_size - 2`` most frequent kept and the rest mapped to ``<unk>``
    (id 0); each text ends with ``<eos>`` (id 1).  Returns (ids, vocabulary
    list)."""
    words = [_WORD.findall(t) for t in texts]
    counts = collections.Counter(w for ws in words for w in ws)
    vocab = ["<unk>", "<eos>"] + [w for w, _ in counts.most_common(vocab_size - 2)]
    index = {w: i for i, w in enumerate(vocab)}
    ids = []
    for ws in words:
        ids += [index.get(w, 0) for w in ws]
        ids.append(1)
    return np.asarray(ids, dtype=np.int64), vocab


def windows(ids: np.ndarray, context: int):
    """(contexts (n, context) of word ids, next words (n,))."""
    n = ids.size - context
    ctx = np.lib.stride_tricks.sliding_window_view(ids[:-1], context)[:n]
    return np.ascontiguousarray(ctx), ids[context:]


class WordLM:
    """Embedding -> tanh hidden layer -> linear softmax head, with Adam."""

    def __init__(self, vocab: int, context: int, embed: int, hidden: int, seed: int,
                 dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.p = {
            "E": (rng.standard_normal((vocab, embed)) * 0.1).astype(dtype),
            "W1": (rng.standard_normal((context * embed, hidden))
                   / math.sqrt(context * embed)).astype(dtype),
            "b1": np.zeros(hidden, dtype),
            "W": (rng.standard_normal((vocab, hidden)) / math.sqrt(hidden)).astype(dtype),
            "b": np.zeros(vocab, dtype),
        }
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        # preallocated head gradients: the training loop allocates none per step
        self.g = {k: np.empty_like(self.p[k]) for k in ("W", "b")}
        self.t = 0

    def hidden(self, ctx):
        e = self.p["E"][ctx].reshape(ctx.shape[0], -1)
        return e, np.tanh(e @ self.p["W1"] + self.p["b1"])

    def step(self, ctx, nxt, lr: float, n_threads=None) -> float:
        e, h = self.hidden(ctx)
        if self.g.get("h") is None or self.g["h"].shape != h.shape:
            self.g["h"] = np.empty_like(h)
        loss, gh, gW, gb = fastce.linear_cross_entropy_and_grad(
            h, self.p["W"], nxt, linear_bias=self.p["b"], n_threads=n_threads,
            out=(self.g["h"], self.g["W"], self.g["b"]))
        ga = gh * (1 - h * h)                       # through tanh
        grads = {"W": gW, "b": gb, "W1": e.T @ ga, "b1": ga.sum(0)}
        ge = (ga @ self.p["W1"].T).reshape(ctx.shape[0], ctx.shape[1], -1)
        gE = np.zeros_like(self.p["E"])
        np.add.at(gE, ctx.reshape(-1), ge.reshape(-1, ge.shape[-1]))
        grads["E"] = gE
        self._adam(grads, lr)
        return float(loss)

    def _adam(self, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.t += 1
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for k, g in grads.items():
            m, v = self.m[k], self.v[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            self.p[k] -= lr * (m / c1) / (np.sqrt(v / c2) + eps)

    def perplexity(self, ctx, nxt, batch: int = 4096) -> float:
        total = 0.0
        for s in range(0, nxt.size, batch):
            _, h = self.hidden(ctx[s:s + batch])
            total += float(fastce.linear_cross_entropy(
                h, self.p["W"], nxt[s:s + batch], linear_bias=self.p["b"],
                reduction="sum"))
        return math.exp(total / nxt.size)


def unigram_perplexity(train_next, val_next, vocab: int) -> float:
    counts = np.bincount(train_next, minlength=vocab) + 1.0
    logp = np.log(counts / counts.sum())
    return math.exp(-logp[val_next].mean())


def head_peak_memory(model: WordLM, ctx, nxt):
    """Peak bytes allocated by one training step of the head, fastce against
    the materialised logits (tracemalloc; gradients preallocated in both)."""
    _, h = model.hidden(ctx)
    W, b = model.p["W"], model.p["b"]
    bufs = (np.empty_like(h), np.empty_like(W), np.empty_like(b))

    def fused():
        return fastce.linear_cross_entropy_and_grad(h, W, nxt, linear_bias=b, out=bufs)

    def materialised():
        logits = h @ W.T + b
        loss, G = fastce.cross_entropy_and_grad(logits, nxt, out=logits)
        np.matmul(G, W, out=bufs[0])
        np.matmul(G.T, h, out=bufs[1])
        np.sum(G, axis=0, out=bufs[2])
        return loss

    peaks = {}
    for name, fn in (("fastce", fused), ("materialised", materialised)):
        fn()
        # given out=, the fused step keeps its chunk buffers for the next step:
        # free them, so that the measured step allocates (and counts) what it holds
        fastce.linear.release_workspace()
        tracemalloc.start()
        fn()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peaks


def train(vocab=20000, context=3, embed=64, hidden=128, batch=1024, steps=600,
          lr=2e-3, max_files=None, seed=0, eval_every=100, n_threads=None, verbose=True):
    """Train on the standard library's text; returns a dict of the results."""
    t0 = time.perf_counter()
    ids, words = build_corpus(stdlib_text(max_files), vocab)
    vocab = len(words)
    ctx, nxt = windows(ids, context)
    n_val = max(1, nxt.size // 20)                  # the last 5% of the text
    tr_ctx, tr_nxt, va_ctx, va_nxt = ctx[:-n_val], nxt[:-n_val], ctx[-n_val:], nxt[-n_val:]
    model = WordLM(vocab, context, embed, hidden, seed)
    rng = np.random.default_rng(seed)
    uni = unigram_perplexity(tr_nxt, va_nxt, vocab)
    if verbose:
        print(f"corpus: {ids.size:,} words, vocabulary {vocab:,} "
              f"({time.perf_counter() - t0:.1f} s to read); unigram perplexity {uni:.0f}")
    history = [(0, model.perplexity(va_ctx, va_nxt))]
    if verbose:
        print(f"step     0  validation perplexity {history[0][1]:.0f}")
    t1 = time.perf_counter()
    for step in range(1, steps + 1):
        pick = rng.integers(0, tr_nxt.size, batch)
        loss = model.step(tr_ctx[pick], tr_nxt[pick], lr, n_threads)
        if step % eval_every == 0 or step == steps:
            history.append((step, model.perplexity(va_ctx, va_nxt)))
            if verbose:
                print(f"step {step:5d}  train loss {loss:.3f}  validation perplexity "
                      f"{history[-1][1]:.0f}  ({time.perf_counter() - t1:.0f} s)")
    peaks = head_peak_memory(model, tr_ctx[:batch], tr_nxt[:batch])
    if verbose:
        print(f"head step, batch {batch} x vocabulary {vocab}: peak extra memory "
              f"fastce {peaks['fastce'] / 2**20:.1f} MiB, materialised "
              f"{peaks['materialised'] / 2**20:.1f} MiB")
    return {"vocab": vocab, "words": int(ids.size), "unigram": uni, "history": history,
            "peaks": peaks, "train_s": time.perf_counter() - t1}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=20000)
    ap.add_argument("--context", type=int, default=3)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-files", type=int, default=None)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    train(vocab=a.vocab, context=a.context, embed=a.embed, hidden=a.hidden,
          batch=a.batch, steps=a.steps, lr=a.lr, max_files=a.max_files, seed=a.seed,
          eval_every=a.eval_every, n_threads=a.threads)


if __name__ == "__main__":
    main()
