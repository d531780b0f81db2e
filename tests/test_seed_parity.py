"""The seed's Keras example against PyTorch, step for step, on the digits data.

Issue 5 asks the seed example (Dense 128 relu -> Dense 10 softmax, Adam, sparse categorical
cross-entropy, 5 epochs, batch 64) to reach 0.95 test accuracy on digits. Measured here it reaches
0.91-0.94 depending on the seed (test_models.py pins the verbatim run). This test shows the bar is a
property of the setup, not of our engine: PyTorch, started from the same weights and fed the same
batches in the same order, lands on the same loss curve and the same test accuracy.
"""

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite.data import MinMaxScaler, load_digits, train_test_split
from tinygrad_lite.layers import Dense
from tinygrad_lite.models import Sequential


def _digits():
    X, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, seed=0)
    sc = MinMaxScaler().fit(xtr)
    return (sc.transform(xtr).astype(np.float32), sc.transform(xte).astype(np.float32), ytr, yte)


def test_seed_example_matches_pytorch_step_for_step(torch):
    xtr, xte, ytr, yte = _digits()
    tl.manual_seed(0)
    model = Sequential([Dense(128, activation="relu", input_shape=(64,)),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    w1, b1, w2, b2 = model.get_weights()           # Keras layout: kernel (in, units)

    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    with torch.no_grad():
        for lin, w, b in ((net[0], w1, b1), (net[2], w2, b2)):
            lin.weight.copy_(torch.tensor(w.T))
            lin.bias.copy_(torch.tensor(b))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)   # Keras' Adam defaults
    tx, ty = torch.tensor(xtr), torch.tensor(ytr)
    torch_losses = []
    for _ in range(5):
        total = 0.0
        for i in range(0, len(tx), 64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(tx[i:i + 64]), ty[i:i + 64])
            loss.backward()
            opt.step()
            total += loss.item() * len(tx[i:i + 64])
        torch_losses.append(total / len(tx))

    history = model.fit(xtr, ytr, epochs=5, batch_size=64, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], torch_losses, rtol=2e-4)
    ours = model.evaluate(xte, yte, verbose=0)[1]
    theirs = (net(torch.tensor(xte)).argmax(1).numpy() == yte).mean()
    assert abs(ours - theirs) <= 1 / len(yte) + 1e-9, (ours, theirs)   # at most one image apart
    assert ours >= 0.9
