"""Compare two kernel benchmark runs (the ``--json`` files of ``tinygrad-lite bench kernels``).

    tinygrad-lite bench compare A.json B.json [--min-band 0.1] [--impl ours|all|NAME]
                                              [--normalize]

For every case timed in both runs (same op, case, implementation and thread count) it prints the
time ratio ``median_B / median_A`` (above 1: B is slower) and the case's noise band, taken from
the spread of each run's samples:

    band = max(min_band, iqr_A + iqr_B),    iqr = (q3 - q1) / median of that run's samples

so a change is flagged only when it is larger than the two runs' interquartile widths together
(and than ``--min-band``, default 10%: the drift between two runs on one machine is larger than
the spread within one). ``ratio > 1 + band`` is a REGRESSION, ``ratio < 1 / (1 + band)`` an
improvement. ``--normalize`` divides each ratio by the NumPy reference's ratio on the same case
and thread count (both runs time it alongside ours), which takes out a machine that got slower or
faster as a whole -- use it to compare two machines; the band then adds the reference's spreads.

Only our implementation's rows ('cython'; 'numpy' when neither run had our kernels) are flagged
by default (``--impl all`` flags every row; the references are printed either way). The header
shows both machines (CPU, ISA, measured peak and bandwidth, versions) and warns when they differ.

Exit status: 0 nothing flagged, 1 regressions found, 2 unusable input.
"""

import argparse
import json
import sys


class CompareError(Exception):
    """Input that cannot be compared (the message says what and how to fix it)."""


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise CompareError(f"cannot read {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise CompareError(f"{path} is not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list) or not all(
            isinstance(r, dict) and {"op", "case", "impl", "threads", "median_s"} <= set(r)
            for r in doc["results"]):
        raise CompareError(f"{path} is not a kernel benchmark result; write one with "
                           "`tinygrad-lite bench kernels --json PATH`")
    return doc


def spread(row):
    """Relative interquartile width of a row's samples, (q3 - q1) / median (0 when the file
    has no quartiles: results written before they were recorded)."""
    q1, q3, med = row.get("q1_s"), row.get("q3_s"), row["median_s"]
    if q1 is None or q3 is None or not med:
        return 0.0
    return max(0.0, (q3 - q1) / med)


def _key(r):
    return (r["op"], r["case"], r["impl"], int(r["threads"]))


def compare(a, b, min_band=0.10, impl="ours", normalize=False):
    """Rows of the comparison: dicts with the key fields, both medians, ratio, band, verdict
    ('REGRESSION', 'improved', 'within band', or 'reference' for rows that are not flagged)."""
    ra = {_key(r): r for r in a["results"] if r.get("median_s")}
    rb = {_key(r): r for r in b["results"] if r.get("median_s")}
    common = [k for k in ra if k in rb]
    if not common:
        raise CompareError("the two runs have no case in common (same op, case, implementation "
                           "and thread count); were they run with the same --quick/--only/"
                           "--threads?")
    impls = {k[2] for k in common}
    if impl == "ours":
        flagged = {"cython"} if "cython" in impls else impls
    elif impl == "all":
        flagged = impls
    else:
        flagged = {impl}
    rows = []
    for k in common:
        x, y = ra[k], rb[k]
        ratio = y["median_s"] / x["median_s"]
        band = spread(x) + spread(y)
        if normalize:
            ref = (k[0], k[1], "numpy", k[3])
            if ref not in ra or ref not in rb or k[2] == "numpy":
                continue
            ratio /= rb[ref]["median_s"] / ra[ref]["median_s"]
            band += spread(ra[ref]) + spread(rb[ref])
        band = max(min_band, band)
        if k[2] not in flagged:
            verdict = "reference"
        elif ratio > 1 + band:
            verdict = "REGRESSION"
        elif ratio < 1 / (1 + band):
            verdict = "improved"
        else:
            verdict = "within band"
        rows.append({"op": k[0], "case": k[1], "impl": k[2], "threads": k[3],
                     "a_s": x["median_s"], "b_s": y["median_s"], "ratio": ratio, "band": band,
                     "verdict": verdict})
    return rows


def _machine_line(doc):
    m = doc.get("machine") or {}
    info = doc.get("info") or {}
    if not m:
        return f"(no machine record) numpy {info.get('numpy')}"

    def per(d):
        return ", ".join(f"{v:.0f}@{t}t" for t, v in (d or {}).items() if v)

    return (f"{m.get('cpu')} | ISA {m.get('isa') or 'none (NumPy only)'} | peak f32 "
            f"{per((m.get('peak_gflops') or {}).get('float32'))} GFLOP/s | bandwidth "
            f"{per(m.get('bandwidth_gbs'))} GB/s ({m.get('source')}) | numpy {info.get('numpy')}"
            f", torch {info.get('torch')}, blas {', '.join(info.get('blas') or []) or '?'}")


def machines_differ(a, b):
    """Why two runs' machines differ (CPU, ISA, or a float32 peak more than 10% apart), or ''."""
    ma, mb = a.get("machine") or {}, b.get("machine") or {}
    why = []
    for field in ("cpu", "isa"):
        if ma.get(field) != mb.get(field):
            why.append(f"{field} {ma.get(field)!r} vs {mb.get(field)!r}")
    pa = ((ma.get("peak_gflops") or {}).get("float32") or {}).get("1")
    pb = ((mb.get("peak_gflops") or {}).get("float32") or {}).get("1")
    if pa and pb and abs(pb / pa - 1) > 0.10:
        why.append(f"1-thread float32 peak {pa:.0f} vs {pb:.0f} GFLOP/s")
    return "; ".join(why)


def report(rows, a_path, b_path, a, b, normalize=False):
    lines = [f"A: {a_path}: {_machine_line(a)}", f"B: {b_path}: {_machine_line(b)}"]
    why = machines_differ(a, b)
    if why:
        lines.append(f"note: the machines differ ({why}): the ratios compare machines as much as"
                     " code" + ("" if normalize else "; --normalize divides by NumPy's ratio"))
    what = "B/A time ratio over NumPy's B/A" if normalize else "B/A time ratio"
    lines.append(f"{what}: above 1 = B slower; flagged beyond 1 + band (band from the samples' "
                 "interquartile widths)")
    lines.append(f"{'op':<15} {'case':<32} {'impl':<7} {'thr':>3} {'A':>10} {'B':>10} "
                 f"{'ratio':>7} {'band':>6}  verdict")
    for r in rows:
        lines.append(f"{r['op']:<15} {r['case'][:32]:<32} {r['impl']:<7} {r['threads']:>3} "
                     f"{r['a_s'] * 1e3:>8.3f}ms {r['b_s'] * 1e3:>8.3f}ms {r['ratio']:>7.2f} "
                     f"{r['band']:>5.0%}  {r['verdict']}")
    reg = [r for r in rows if r["verdict"] == "REGRESSION"]
    imp = [r for r in rows if r["verdict"] == "improved"]
    checked = [r for r in rows if r["verdict"] != "reference"]
    lines.append(f"{len(reg)} regression(s), {len(imp)} improvement(s) in {len(checked)} "
                 f"compared case(s)")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tinygrad-lite bench compare",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="the baseline run (kernels --json)")
    ap.add_argument("b", help="the run to check against it")
    ap.add_argument("--min-band", type=float, default=0.10,
                    help="smallest noise band, as a fraction (default 0.10)")
    ap.add_argument("--impl", default="ours",
                    help="rows to flag: 'ours' (default: cython, or numpy without our kernels), "
                    "'all', or one implementation name")
    ap.add_argument("--normalize", action="store_true",
                    help="divide each ratio by the NumPy reference's ratio (compare machines)")
    args = ap.parse_args(argv)
    try:
        a, b = load(args.a), load(args.b)
        rows = compare(a, b, args.min_band, args.impl, args.normalize)
    except CompareError as e:
        print(f"tinygrad-lite bench compare: error: {e}", file=sys.stderr)
        return 2
    print(report(rows, args.a, args.b, a, b, args.normalize))
    return 1 if any(r["verdict"] == "REGRESSION" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
