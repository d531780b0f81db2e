"""Real multi-process tests: ``mpiexec -n 2`` in a subprocess with a hard timeout.

One launch runs every correctness scenario of worker.py (collectives, SGD/Adam equivalence for
the seed MLP and a small CNN, DDP, sampler, SyncBatchNorm, fit); each check is reported as its
own test. The fault tests and the CLI test launch their own jobs.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN + os.pathsep + os.environ.get("PATH", ""))


def _skip_reason():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'tinygrad_lite[distributed]')"
    if MPIEXEC is None:
        return "mpiexec not found (pip install mpich, or a system MPI)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def launch(args, timeout, tmp, n=2, env_extra=None):
    """Run ``mpiexec -n n python ARGS``; kill the whole process group on timeout.
    Returns (returncode, stdout, stderr, seconds)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["WORKER_TMP"] = str(tmp)
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = "1"
    env.update(env_extra or {})
    cmd = [MPIEXEC, "-n", str(n), sys.executable] + list(args)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         cwd=str(tmp), start_new_session=True, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{' '.join(args)} did not finish within {timeout} s\n{out}\n{err}")
    return p.returncode, out, err, time.monotonic() - t0


CHECKS = ["collectives", "equivalence_mlp_sgd", "equivalence_mlp_adam", "equivalence_cnn_sgd",
          "equivalence_cnn_adam", "broadcast_at_wrap", "no_sync", "shape_mismatch_at_wrap",
          "find_unused_parameters", "buckets_overlap_backward", "sampler", "syncbn", "fit"]


@pytest.fixture(scope="module")
def core_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("core")
    return launch([WORKER, "core"], 240, tmp)


def test_core_job_succeeds(core_run):
    rc, out, err, _ = core_run
    assert rc == 0, f"rc={rc}\n{out[-3000:]}\n{err[-3000:]}"
    assert out.count("DONE rank=") == 2


@pytest.mark.parametrize("check", CHECKS)
def test_check_passed_on_both_ranks(core_run, check):
    rc, out, err, _ = core_run
    for r in range(2):
        assert f"CHECK {check} rank={r} ok" in out, f"{check} on rank {r}\n{err[-3000:]}"


def test_fault_one_rank_raises(tmp_path):
    rc, out, err, secs = launch([WORKER, "fault_raise"], 60, tmp_path)
    assert rc != 0 and secs < 30, (rc, secs)
    assert "rank 1 of 2 failed with ValueError: boom on purpose; aborting all ranks" in err
    # rank 0, waiting in all_reduce, learns which rank failed and stops too
    assert "all_reduce: rank 1 failed: ValueError: boom on purpose; rank 0 stops too" in err, err


def test_fault_killed_rank(tmp_path):
    rc, out, err, secs = launch([WORKER, "fault_kill"], 60, tmp_path)
    assert rc != 0 and secs < 30, (rc, secs)
    both = out + err            # mpiexec (hydra) reports the killed process on stdout
    assert "BAD TERMINATION" in both and "Killed (signal 9)" in both, both[-2000:]


def test_fault_collective_timeout_names_op_and_missing_rank(tmp_path):
    rc, out, err, secs = launch([WORKER, "fault_timeout"], 60, tmp_path)
    assert rc != 0 and secs < 30, (rc, secs)
    assert "all_reduce: timed out after 2 s on rank 0" in err, err[-2000:]
    assert "missing rank(s) [1]" in err


def test_cli_train_two_ranks_matches_one(tmp_path):
    args = ["-m", "tinygrad_lite", "train", "--epochs", "3", "--quiet"]
    rc1, out1, err1, _ = launch(args + ["--out", "one"], 180, tmp_path, n=1)
    assert rc1 == 0, err1
    rc2, out2, err2, _ = launch(args + ["--out", "two"], 180, tmp_path, n=2)
    assert rc2 == 0, err2
    assert sorted(os.listdir(tmp_path)) == ["one", "two"]      # one folder per run
    assert sorted(os.listdir(tmp_path / "one")) == sorted(os.listdir(tmp_path / "two"))
    assert out2.count("validation: loss=") == 1                 # only rank 0 prints
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    assert one["world_size"] == 1 and two["world_size"] == 2
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(two["history"][k], one["history"][k], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(two["validation"]["loss"], one["validation"]["loss"], rtol=1e-4)
    cm1, cm2 = np.array(one["confusion_matrix"]), np.array(two["confusion_matrix"])
    assert np.abs(cm1 - cm2).sum() <= 2          # at most one prediction flips at a tie
    for k in ("epochs_run", "n_train", "n_val", "batch_size", "seed", "label_names"):
        assert one[k] == two[k], k
