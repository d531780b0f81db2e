"""The tiny GPT (tinygrad_lite/examples/gpt.py, course chapter 8): data, causality, gradients,
the CLI, and -- marked ``full``, run with TINYGRAD_LITE_FULL_TESTS=1 -- training to its loss bound.
"""

import gzip
import os
import time

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.examples import gpt
from tinygrad_lite.testing import gradcheck


def test_text_is_shipped_small_and_listed_as_package_data():
    path = os.path.join(gpt.DATA_DIR, gpt.TEXTS["sonnets"])
    assert os.path.getsize(path) <= 1 << 20
    text = gpt.load_text()
    assert len(text) > 20_000 and text.startswith("THE SONNETS")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        assert f.read() == text
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml")) as f:
        assert '"data/*.txt.gz"' in f.read()
    with pytest.raises(ValueError, match="unknown text 'nope'"):
        gpt.load_text("nope")


def test_tokenizer_round_trip_and_unknown_character():
    tok = gpt.CharTokenizer("abcab\n")
    assert tok.vocab_size == 4 and tok.decode(tok.encode("cab\n")) == "cab\n"
    with pytest.raises(ValueError, match=r"character 'z' is not in the vocabulary"):
        tok.encode("az")


def test_unigram_loss_is_the_cross_entropy_of_training_frequencies():
    train, val = np.array([0, 0, 0, 1]), np.array([0, 1, 2])
    # add-one counts: 4, 2, 1 of 7
    want = -(np.log(4 / 7) + np.log(2 / 7) + np.log(1 / 7)) / 3
    assert gpt.unigram_loss(train, val, 3) == pytest.approx(want, rel=1e-12)


def test_embeddings_start_small_distinct_and_seeded():
    tl.manual_seed(3)
    a = gpt.GPT(vocab_size=40, block_size=40, d_model=32, n_head=2, n_layer=1)
    tl.manual_seed(3)
    b = gpt.GPT(vocab_size=40, block_size=40, d_model=32, n_head=2, n_layer=1)
    tok, pos = a.tok_emb.weight.numpy(), a.pos_emb.weight.numpy()
    assert 0.015 < tok.std() < 0.025 and 0.015 < pos.std() < 0.025     # N(0, 0.02)
    assert not np.allclose(tok, pos)             # two tables, two draws
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_logits_at_t_do_not_depend_on_later_characters():
    tl.manual_seed(0)
    model = gpt.GPT(vocab_size=7, block_size=12, d_model=16, n_head=2, n_layer=2, dropout=0.0)
    rng = np.random.default_rng(1)
    a = rng.integers(0, 7, (3, 12))
    for t in (0, 5, 11):
        b = a.copy()
        b[:, t:] = (b[:, t:] + 1) % 7
        la, lb = model(a).numpy(), model(b).numpy()
        np.testing.assert_array_equal(la[:, :t], lb[:, :t])
        assert not np.allclose(la[:, t], lb[:, t])
    with pytest.raises(ValueError, match="block_size=12"):
        model(np.zeros((1, 13), dtype=np.int64))


def test_gpt_gradients_match_finite_differences():
    """One parameter of each kind in a small float64 GPT (embeddings, attention projections,
    LayerNorm, MLP, head), against central differences with a random upstream weight on the
    per-position losses."""
    tl.manual_seed(0)
    model = gpt.GPT(vocab_size=5, block_size=4, d_model=4, n_head=2, n_layer=1,
                    dropout=0.0).double()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, (2, 4)), rng.integers(0, 5, (2, 4))
    for p in model.parameters():   # move LayerNorm/bias parameters off their init (1s and 0s)
        p.data[...] += rng.normal(0, 0.1, p.shape)
    b = model.blocks[0]
    params = [model.tok_emb.weight, model.pos_emb.weight, b.attn.in_proj_weight,
              b.attn.in_proj_bias, b.attn.out_proj.weight, b.ln1.weight, b.ln2.bias,
              b.mlp[0].weight, b.mlp[2].bias, model.ln_f.weight, model.head.weight]

    def per_position_loss(*_):
        logits = model(x)
        return tl.nn.functional.cross_entropy(logits.reshape(8, 5), y.reshape(8),
                                              reduction="none")

    assert all(p.dtype == np.float64 for p in params)
    assert gradcheck(per_position_loss, params, atol=1e-6, rtol=1e-4)


def test_short_training_lowers_the_loss_and_samples():
    r = gpt.train(steps=3, batch_size=4, block_size=16, d_model=16, n_head=2, n_layer=1)
    h = r["history"]
    assert len(h["train_loss"]) == 3 and h["val_step"][-1] == 3
    assert r["val_loss"] == h["val_loss"][-1] and r["unigram_loss"] > 2.5
    out = gpt.sample(r["model"], r["tokenizer"], "Love ", length=15, seed=3)
    assert out.startswith("Love ") and len(out) == 20
    assert out == gpt.sample(r["model"], r["tokenizer"], "Love ", length=15, seed=3)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        gpt.train(steps=0)


def test_cli_gpt(capsys):
    from tinygrad_lite.cli import main

    assert main(["gpt", "--steps", "2", "--batch-size", "2", "--sample", "12",
                 "--prompt", "When "]) == 0
    out = capsys.readouterr().out
    assert "validation loss" in out and "unigram baseline" in out and "\nWhen " in out
    assert main(["gpt", "--steps", "0"]) == 2
    assert "--steps and --batch-size must be >= 1" in capsys.readouterr().err
    assert main(["gpt", "--steps", "1", "--temperature", "0"]) == 2
    assert "--temperature must be > 0" in capsys.readouterr().err
    assert main(["gpt", "--steps", "1", "--batch-size", "2", "--prompt", "@"]) == 2
    assert "character '@' is not in the vocabulary" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.full
def test_gpt_reaches_its_loss_bound():
    """The full run of chapter 8: 600 steps; validation loss at most 70% of the unigram
    baseline (3.13 nats/char -> below 2.19). Prints the measured numbers."""
    t0 = time.perf_counter()
    r = gpt.train(steps=600, log=print)
    wall = time.perf_counter() - t0
    print(f"GPT full run: val {r['val_loss']:.4f} nats/char, unigram {r['unigram_loss']:.4f}, "
          f"training {r['seconds']:.1f} s (wall {wall:.1f} s), threads "
          f"{tl.backends.threads.get_num_threads()}")
    print(gpt.sample(r["model"], r["tokenizer"], "Shall I ", 200))
    assert r["val_loss"] < 0.7 * r["unigram_loss"]
