"""DataLoader(num_workers=N): spawned workers, same batches in the same order as num_workers=0.

The multi-process checks run as a script in a fresh interpreter (as an app would run them, with
the ``__main__`` guard spawn needs); the argument checks run here."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinygrad_lite.data import DataLoader, TensorDataset

_SCRIPT = textwrap.dedent('''
    import json, os
    import numpy as np
    from tinygrad_lite.data import DataLoader, Dataset, TensorDataset, get_worker_info

    INIT = {"calls": 0}

    def init_fn(worker_id):
        INIT["calls"] += 1
        INIT["id"] = worker_id

    class Aug(Dataset):
        """A random augmentation in __getitem__, plus who loaded the sample."""
        def __len__(self):
            return 10
        def __getitem__(self, i):
            info = get_worker_info()
            return (np.float32(i + np.random.random()), -1 if info is None else info.id,
                    INIT.get("id", -1), INIT["calls"], os.getpid())

    class Bad(Dataset):
        def __len__(self):
            return 4
        def __getitem__(self, i):
            if i == 3:
                raise KeyError("sample 3 is missing")
            return np.float32(i)

    def batches(loader):
        return [[np.asarray(f).tolist() for f in b] for b in loader]

    if __name__ == "__main__":
        out = {}
        rng = np.random.default_rng(0)
        ds = TensorDataset(rng.standard_normal((23, 3)).astype(np.float32), np.arange(23))
        for kw in (dict(batch_size=4, shuffle=True, seed=3),
                   dict(batch_size=5, drop_last=True, shuffle=True, seed=1),
                   dict(batch_size=6)):
            ref = batches(DataLoader(ds, **kw))
            got = batches(DataLoader(ds, num_workers=2, pin_memory=True, **kw))
            out.setdefault("same", []).append(ref == got and len(ref) > 0)
        one = DataLoader(ds, batch_size=None, shuffle=True, seed=2)
        one_w = DataLoader(ds, batch_size=None, shuffle=True, seed=2, num_workers=2)
        out["same"].append(batches(one) == batches(one_w))
        loader = DataLoader(Aug(), batch_size=2, num_workers=2, worker_init_fn=init_fn, seed=5)
        first = list(loader)
        loader.set_epoch(0)
        again = list(loader)
        out["worker_ids"] = [b[1].numpy().tolist() for b in first]
        out["init_ids"] = [b[2].numpy().tolist() for b in first]
        out["init_calls"] = [b[3].numpy().tolist() for b in first]
        out["pids"] = sorted({p for b in first for p in b[4].numpy().tolist()})
        out["draws_repeat"] = all(np.array_equal(a[0].numpy(), b[0].numpy())
                                  for a, b in zip(first, again))
        x = np.concatenate([b[0].numpy() for b in first]) - np.arange(10)
        out["draws"] = x.tolist()
        try:
            list(DataLoader(Bad(), batch_size=2, num_workers=2))
            out["error"] = None
        except RuntimeError as e:
            out["error"] = str(e)
        out["main_pid"] = os.getpid()
        print(json.dumps(out))
''')


def test_workers_give_the_same_batches_in_the_same_order(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["same"] == [True] * 4
    assert out["worker_ids"] == [[0, 0], [1, 1], [0, 0], [1, 1], [0, 0]]   # batch k -> k % 2
    assert out["init_ids"] == out["worker_ids"]            # worker_init_fn(worker_id) ran there
    assert out["init_calls"] == [[1, 1]] * 5               # once per worker
    assert len(out["pids"]) == 2 and out["main_pid"] not in out["pids"]
    assert out["draws_repeat"]                             # per-worker seeding: reproducible
    draws = out["draws"]
    assert draws[0:2] != draws[2:4]                        # workers draw different streams
    assert all(0 <= d < 1 for d in draws)
    assert out["error"] and "sample 3 is missing" in out["error"] and "worker 1" in out["error"]


def test_worker_arguments_are_checked():
    ds = TensorDataset(np.zeros((4, 2)), np.arange(4))
    assert DataLoader(ds, pin_memory=True).pin_memory                    # accepted, no-op
    with pytest.raises(ValueError, match="num_workers must be an int >= 0"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="'fork' after OpenMP"):
        DataLoader(ds, num_workers=2, multiprocessing_context="fork")
    with pytest.raises(ValueError, match="num_workers > 0 needs a map-style dataset"):
        DataLoader(iter(range(3)), num_workers=1)
    with pytest.raises(TypeError, match="worker_init_fn must be callable"):
        DataLoader(ds, num_workers=1, worker_init_fn=3)


def test_unpicklable_dataset_gets_a_clear_error():
    class Local(TensorDataset):     # defined in a function: spawn cannot pickle it
        pass

    loader = DataLoader(Local(np.zeros((4, 2))), batch_size=2, num_workers=1)
    with pytest.raises(RuntimeError, match="must be picklable"):
        list(loader)
