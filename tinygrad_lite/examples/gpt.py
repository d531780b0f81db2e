"""A tiny GPT: a character-level, decoder-only transformer trained by our own engine.

The model (course chapter 8, ``docs/course/08_tiny_gpt.md``)::

    idx (B, T) -> tok_emb(idx) + pos_emb[:T]                       token + position embeddings
               -> n_layer x [ x = x + Attn(LN(x)),                 causal self-attention
                              x = x + MLP(LN(x)) ]                  MLP: Linear 4d, GELU, Linear d
               -> LN -> Linear(d, vocab) -> logits (B, T, vocab)

``Attn`` is ``nn.MultiheadAttention`` (issue 9) with a causal mask: position t attends to
positions <= t only, so the logits at t predict character t+1 from characters 0..t. The loss is
the mean cross-entropy of those next-character predictions, in nats per character.

The text is Shakespeare's Sonnets (1609, public domain): 45 of the 154 sonnets in the usual
modernized spelling, about 28 KB, typed in for this package (not copied from one edition's file,
so small differences from a printed edition are possible) and shipped gzipped as
``data/sonnets.txt.gz``. The baseline a
model must beat is the unigram model: every character predicted with its training frequency,
with no context at all.

    >>> from tinygrad_lite.examples import gpt                     # doctest: +SKIP
    >>> result = gpt.train(steps=600)                              # doctest: +SKIP
    >>> result["val_loss"], result["unigram_loss"]                 # doctest: +SKIP
    >>> print(gpt.sample(result["model"], result["tokenizer"], "Shall I", 200))   # doctest: +SKIP

``tinygrad-lite gpt --steps N`` runs ``train`` and prints the losses and a sample.
"""

import contextlib
import gzip
import math
import os
import time

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..nn import functional as F
from ..tensor import Tensor

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
TEXTS = {"sonnets": "sonnets.txt.gz"}


def load_text(name="sonnets"):
    """The text shipped in the package, as a str (``name``: one of ``TEXTS``)."""
    if name not in TEXTS:
        raise ValueError(f"gpt.load_text: unknown text {name!r}, expected one of {sorted(TEXTS)}")
    with gzip.open(os.path.join(DATA_DIR, TEXTS[name]), "rt", encoding="utf-8") as f:
        return f.read()


class CharTokenizer:
    """Characters <-> integer ids; the vocabulary is the sorted set of characters of a text."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, s):
        try:
            return np.array([self.index[c] for c in s], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"CharTokenizer.encode: character {e.args[0]!r} is not in the "
                             f"vocabulary of {self.vocab_size} characters; use characters of "
                             "the training text") from None

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)


def _one_blas_thread():
    """BLAS held at one thread inside the block when threadpoolctl is installed (see train)."""
    from ..backends import limit_blas_threads
    from ..errors import BackendUnavailableError

    try:
        return limit_blas_threads(1)
    except BackendUnavailableError:       # no threadpoolctl: BLAS keeps its own setting
        return contextlib.nullcontext()


def unigram_loss(train_ids, val_ids, vocab_size):
    """Cross-entropy (nats/char) of ``val_ids`` under the training set's character frequencies
    (add-one smoothing, so a character unseen in training costs a finite amount)."""
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.log(p[val_ids]).mean())


# ------------------------------------------------------------------ model ---

class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model, n_head, dropout=0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_head, dropout=dropout, batch_first=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model))
        self.drop = nn.Dropout(dropout)        # on each residual branch (active in train mode)

    def forward(self, x, mask, need_weights=False):
        h = self.ln1(x)
        a, w = self.attn(h, h, h, attn_mask=mask, need_weights=need_weights,
                         average_attn_weights=False)
        x = x + self.drop(a)
        x = x + self.drop(self.mlp(self.ln2(x)))
        return x, w


class GPT(nn.Module):
    """Character-level decoder-only transformer; ``forward(idx)`` gives logits (B, T, vocab)."""

    def __init__(self, vocab_size, block_size=64, d_model=64, n_head=4, n_layer=2, dropout=0.1):
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(block_size, d_model)
        for emb in (self.tok_emb, self.pos_emb):           # GPT-2's N(0, 0.02), not N(0, 1)
            nn.init.normal_(emb.weight, 0.0, 0.02)          # the library generator (manual_seed)
        self.blocks = nn.ModuleList([Block(d_model, n_head, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.last_attention = None

    def forward(self, idx, keep_attention=False):
        idx = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
        if idx.ndim != 2 or idx.shape[1] > self.block_size:
            raise ValueError(f"GPT: expected token ids (B, T) with T <= block_size="
                             f"{self.block_size}, got shape {idx.shape}; crop the context to "
                             "its last block_size tokens")
        T = idx.shape[1]
        # bool mask, PyTorch's MultiheadAttention convention: True = blocked (a future position)
        mask = np.triu(np.ones((T, T), dtype=bool), k=1)
        x = self.tok_emb(idx) + self.pos_emb(np.arange(T))
        maps = []
        for block in self.blocks:
            x, w = block(x, mask, need_weights=keep_attention)
            maps.append(w)
        if keep_attention:      # per layer: (B, n_head, T, T) attention weights
            self.last_attention = [m.numpy() for m in maps]
        return self.head(self.ln_f(x))


def loss_fn(model, xb, yb):
    logits = model(xb)
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V), yb.reshape(B * T))


def get_batch(ids, batch_size, block_size, rng):
    """``batch_size`` random windows of ``block_size`` characters and the next characters."""
    starts = rng.integers(0, len(ids) - block_size - 1, batch_size)
    x = np.stack([ids[s:s + block_size] for s in starts])
    y = np.stack([ids[s + 1:s + 1 + block_size] for s in starts])
    return x, y


def evaluate(model, ids, block_size, batch_size=32):
    """Mean next-character cross-entropy over every non-overlapping window of ``ids``."""
    n = (len(ids) - 1) // block_size
    starts = np.arange(n) * block_size
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with no_grad():
        for i in range(0, n, batch_size):
            s = starts[i:i + batch_size]
            x = np.stack([ids[j:j + block_size] for j in s])
            y = np.stack([ids[j + 1:j + 1 + block_size] for j in s])
            total += loss_fn(model, x, y).item() * y.size
            count += y.size
    model.train(was_training)
    return total / count


def sample(model, tokenizer, prompt="\n", length=200, temperature=0.8, seed=0):
    """Continue ``prompt`` by ``length`` characters, drawing each from softmax(logits / T)."""
    if not temperature > 0:
        raise ValueError(f"gpt.sample: temperature must be > 0, got {temperature}; lower "
                         "values (e.g. 0.5) give more conservative text")
    if not prompt:
        raise ValueError("gpt.sample: prompt must hold at least one character, got ''; "
                         "use '\\n' to start a new line")
    rng = np.random.default_rng(seed)
    ids = list(tokenizer.encode(prompt))
    was_training = model.training
    model.eval()
    with no_grad(), _one_blas_thread():
        for _ in range(length):
            ctx = np.array(ids[-model.block_size:])[None]
            logits = model(ctx).numpy()[0, -1].astype(np.float64) / temperature
            p = np.exp(logits - logits.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    model.train(was_training)
    return tokenizer.decode(ids)


# ------------------------------------------------------------------ training ---

def train(steps=600, batch_size=32, block_size=64, d_model=64, n_head=4, n_layer=2,
          dropout=0.1, lr=3e-3, val_fraction=0.1, eval_every=None, seed=0, text="sonnets",
          threads=None, log=None):
    """Train a GPT on the shipped text; returns a dict with the model, the tokenizer, the
    history and the measured numbers (``val_loss``, ``unigram_loss``, ``seconds``).

    The text is small (about 25,000 training characters), so the model overfits without
    regularization: dropout on the residual branches and on the attention weights, and AdamW's
    weight decay (0.1). The learning rate warms up linearly over the first 5% of the steps, then
    decays along a cosine to 10% of ``lr``; gradients are clipped to norm 1. The validation set
    is the last ``val_fraction`` of the text.
    ``threads``: our kernels' thread count for this run (``set_num_threads``; restored after).

    BLAS (OpenBLAS, MKL) is held at one thread during the run when threadpoolctl is installed
    (``backends.limit_blas_threads``): the attention matmuls are many tiny slices (batch x heads
    of 64 x 16), and BLAS threads cost more than they save on them. Measured on the numpy
    backend, on a shared 2-core machine: 0.09-0.11 s of CPU per step with one BLAS thread,
    0.9-2.2 s (3-8 s wall) with two.
    """
    from ..backends import threads as kernel_threads

    with contextlib.ExitStack() as stack:
        stack.enter_context(_one_blas_thread())
        if threads is not None:
            previous = kernel_threads.get_num_threads()
            kernel_threads.set_num_threads(threads)
            stack.callback(kernel_threads.set_num_threads, previous)
        return _train(steps, batch_size, block_size, d_model, n_head, n_layer, dropout, lr,
                      val_fraction, eval_every, seed, text, log)


def _train(steps, batch_size, block_size, d_model, n_head, n_layer, dropout, lr, val_fraction,
           eval_every, seed, text, log):
    from .. import manual_seed
    from ..optim import AdamW

    if steps < 1:
        raise ValueError(f"gpt.train: steps must be >= 1, got {steps}")
    manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = load_text(text)
    tok = CharTokenizer(data)
    ids = tok.encode(data)
    n_val = int(len(ids) * val_fraction)
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]
    model = GPT(tok.vocab_size, block_size, d_model, n_head, n_layer, dropout)
    opt = AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warmup = max(1, steps // 20)
    eval_every = eval_every or max(1, steps // 10)
    history = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}
    baseline = unigram_loss(train_ids, val_ids, tok.vocab_size)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        frac = (step - warmup) / max(1, steps - warmup)
        scale = step / warmup if step <= warmup else 0.1 + 0.45 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        xb, yb = get_batch(train_ids, batch_size, block_size, rng)
        loss = loss_fn(model, xb, yb)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        if step % eval_every == 0 or step == steps:
            v = evaluate(model, val_ids, block_size)
            history["val_step"].append(step)
            history["val_loss"].append(v)
            if log:
                log(f"step {step:5d}/{steps}  train {history['train_loss'][-1]:.3f}  "
                    f"val {v:.3f}  (unigram {baseline:.3f})  {time.perf_counter() - t0:.0f} s")
    seconds = time.perf_counter() - t0
    return {"model": model, "tokenizer": tok, "history": history,
            "val_loss": history["val_loss"][-1], "unigram_loss": baseline,
            "seconds": seconds, "steps": steps, "train_chars": len(train_ids),
            "val_chars": len(val_ids), "parameters": sum(p.size for p in model.parameters())}


def main(argv=None):
    """``tinygrad-lite gpt``: train, print the losses and the time, then sample."""
    import argparse

    p = argparse.ArgumentParser(prog="tinygrad-lite gpt")
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p):
    p.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="threads for our kernels (default: the library's setting)")
    p.add_argument("--sample", type=int, default=300, help="characters to sample after training")
    p.add_argument("--prompt", default="Shall I ")
    p.add_argument("--temperature", type=float, default=0.8)


def run(args):
    if args.steps < 1 or args.batch_size < 1:
        raise ValueError(f"gpt: --steps and --batch-size must be >= 1, got {args.steps} and "
                         f"{args.batch_size}")
    if not args.lr > 0 or not args.temperature > 0 or args.sample < 0:
        raise ValueError(f"gpt: --lr and --temperature must be > 0 and --sample >= 0, got "
                         f"--lr {args.lr}, --temperature {args.temperature}, --sample "
                         f"{args.sample}")
    r = train(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
              threads=args.threads, log=print)
    print(f"validation loss {r['val_loss']:.4f} nats/char, unigram baseline "
          f"{r['unigram_loss']:.4f}, {r['steps']} steps in {r['seconds']:.1f} s "
          f"({r['parameters']} parameters)")
    if args.sample > 0:
        print("sample:")
        print(sample(r["model"], r["tokenizer"], args.prompt, args.sample,
                     temperature=args.temperature, seed=args.seed))
    return 0
