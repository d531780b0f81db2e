"""The shipped benchmarks (tinygrad_lite/bench/): a tiny real kernel run from outside the checkout
(machine header, JSON record, roofline plot), and ``bench compare`` on runs with and without an
injected slowdown. Timing itself is never asserted here: these check what the tools report."""

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_lite.backends import cython_backend
from tinygrad_lite.bench import compare, kernels

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytest.importorskip("threadpoolctl", reason="bench kernels holds OpenBLAS at the measured thread "
                    "count with threadpoolctl (pip install threadpoolctl)")


# ------------------------------------------------------------------ synthetic runs ---

def _row(op, case, impl, threads, samples):
    q1, med, q3 = kernels._quartiles(list(samples))
    return {"op": op, "case": case, "impl": impl, "threads": threads, "median_s": med,
            "q1_s": q1, "q3_s": q3, "best_s": float(min(samples)), "samples": len(samples),
            "ok": True}


def _run(seed, slow=None, factor=2.0, noise=0.05):
    """A kernels --json document: 6 cases x (numpy, cython) x 1 and 2 threads, each with 25
    samples drawn from a lognormal around a fixed time (``noise``: its sigma). ``slow``: the
    case whose cython samples are multiplied by ``factor``."""
    rng = np.random.default_rng(seed)
    results = []
    for i in range(6):
        for t in (1, 2):
            for impl in ("numpy", "cython"):
                base = 1e-3 * (i + 1) / t
                s = base * rng.lognormal(0.0, noise, 25)
                if impl == "cython" and f"case {i}" == slow:
                    s = s * factor
                results.append(_row("matmul", f"case {i}", impl, t, s))
    return {"machine": {"cpu": "test CPU", "isa": "avx2", "source": "kernels",
                        "peak_gflops": {"float32": {"1": 100.0}}, "bandwidth_gbs": {"1": 20.0}},
            "info": {"numpy": np.__version__}, "results": results}


def test_compare_passes_two_runs_of_the_same_code():
    rows = compare.compare(_run(1), _run(2))
    ours = [r for r in rows if r["verdict"] != "reference"]
    assert len(ours) == 12 and all(r["verdict"] == "within band" for r in ours), ours
    assert {r["impl"] for r in rows if r["verdict"] == "reference"} == {"numpy"}


def test_compare_flags_an_injected_2x_slowdown_and_a_2x_speedup():
    rows = compare.compare(_run(1), _run(2, slow="case 3"))
    flagged = {(r["case"], r["threads"]): r["verdict"] for r in rows
               if r["verdict"] not in ("within band", "reference")}
    assert flagged == {("case 3", 1): "REGRESSION", ("case 3", 2): "REGRESSION"}
    reg = next(r for r in rows if r["verdict"] == "REGRESSION")
    assert 1.8 < reg["ratio"] < 2.2 and reg["band"] < 0.5
    rows = compare.compare(_run(1), _run(2, slow="case 0", factor=0.5))
    assert {r["case"] for r in rows if r["verdict"] == "improved"} == {"case 0"}


def test_the_band_grows_with_the_spread_of_the_samples():
    """A 2x change inside a run whose samples spread over more than 2x is not flagged."""
    noisy = compare.compare(_run(1, noise=0.9), _run(2, slow="case 3", noise=0.9))
    assert not any(r["verdict"] == "REGRESSION" for r in noisy)
    assert min(r["band"] for r in noisy) > 1.0


def test_compare_normalize_takes_out_a_machine_that_got_slower():
    a, b = _run(1), _run(2)
    for r in b["results"]:                         # everything 3x slower: the machine, not us
        for k in ("median_s", "q1_s", "q3_s", "best_s"):
            r[k] *= 3
    assert any(r["verdict"] == "REGRESSION" for r in compare.compare(a, b))
    rows = compare.compare(a, b, normalize=True)
    assert rows and all(r["verdict"] == "within band" for r in rows)


def test_compare_command_exit_codes_and_errors(tmp_path, capsys):
    a, b, same = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "same.json"
    a.write_text(json.dumps(_run(1)))
    b.write_text(json.dumps(_run(2, slow="case 5")))
    same.write_text(json.dumps(_run(2)))
    assert compare.main([str(a), str(same)]) == 0
    assert compare.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "2 regression(s)" in out and "test CPU | ISA avx2" in out
    (tmp_path / "x.json").write_text(json.dumps({"results": [{"op": 1}]}))
    assert compare.main([str(a), str(tmp_path / "x.json")]) == 2
    assert "is not a kernel benchmark result; write one with `tinygrad-lite bench kernels " \
           "--json PATH`" in capsys.readouterr().err
    other = _run(3)
    other["results"] = [dict(r, case="other") for r in other["results"]]
    (tmp_path / "o.json").write_text(json.dumps(other))
    assert compare.main([str(a), str(tmp_path / "o.json")]) == 2
    assert "no case in common" in capsys.readouterr().err


def test_compare_says_when_the_machines_differ():
    a, b = _run(1), _run(2)
    b["machine"] = dict(b["machine"], cpu="another CPU", isa="avx512")
    text = compare.report(compare.compare(a, b), "a", "b", a, b)
    assert "note: the machines differ (cpu 'test CPU' vs 'another CPU'; isa 'avx2' vs " \
           "'avx512')" in text


def test_roofline_plot_omits_the_torch_panel_and_says_why(tmp_path):
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib (pip install matplotlib)")
    doc = _run(1)
    for r in doc["results"]:
        r.update(flops=2.0 * 64 ** 3, bytes=3 * 4.0 * 64 ** 2, intensity=64 / 6,
                 gflops=2.0 * 64 ** 3 / r["median_s"] / 1e9, vs_numpy=1.0, vs_torch=None)
    title = kernels.plot(doc["results"], (1, 2), str(tmp_path / "p.png"), doc["machine"], None)
    assert "vs-torch panel omitted: PyTorch is not installed" in title
    assert (tmp_path / "p.png").stat().st_size > 10_000


# ------------------------------------------------------------------ a real run ---

def test_bench_kernels_runs_from_outside_the_checkout_and_compare_reads_it(tmp_path):
    """One tiny real run (square 64, 1 thread, CPU clock): the machine header and the JSON record,
    then ``bench compare`` on that run against itself (exit 0) and against a copy whose cython
    row is 2x slower (exit 1)."""
    out = tmp_path / "run.json"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "tinygrad_lite", "bench", "kernels", "--quick", "--threads",
           "1", "--only", "square 64", "--clock", "thread", "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(out.read_text())
    m = doc["machine"]
    assert m["cpu"] and m["threads"] == [1] and doc["threads"] == [1] and doc["clock"] == "thread"
    assert "1-thread samples timed on the calling thread's CPU clock" in r.stdout
    assert doc["info"]["numpy"] == np.__version__ and "tinygrad_lite" in doc["info"]
    if cython_backend.HAVE_CPU_KERNELS:
        from tinygrad_lite import _cpu

        assert m["source"] == "kernels" and m["isa"] == _cpu.isa()
        assert f"ISA {_cpu.isa()} (picked at run time" in r.stdout
        assert "peak float32 (measured): " in r.stdout and "bandwidth (measured): " in r.stdout
        impl = "cython"
    else:
        assert m["source"] == "numpy-estimate" and m["isa"] is None
        assert "peak float32 (NumPy ESTIMATE)" in r.stdout and "kernels unavailable" in r.stdout
        impl = "numpy"
    assert m["peak_gflops"]["float32"]["1"] > 0 and m["bandwidth_gbs"]["1"] > 0
    row = next(x for x in doc["results"] if x["impl"] == impl)
    assert row["ok"] and row["q1_s"] <= row["median_s"] <= row["q3_s"]
    assert len(row["samples_s"]) == row["samples"] >= 5
    assert row["pct_peak"] == pytest.approx(100 * row["gflops"] / m["peak_gflops"]["float32"]["1"])

    slow = copy.deepcopy(doc)
    for x in slow["results"]:
        if x["impl"] == impl:
            for k in ("median_s", "q1_s", "q3_s", "best_s"):
                x[k] *= 2
    (tmp_path / "slow.json").write_text(json.dumps(slow))
    assert compare.main([str(out), str(out)]) == 0
    assert compare.main([str(out), str(tmp_path / "slow.json")]) == 1
