"""Adaptive-evaluation benchmark (issue 3): replay speed, Bayesian sessions, bank memory.

Three parts, on synthetic banks shaped like the fitted ChemBench bank
(log a ~ N(0.31, 0.62), b ~ N(0.35, 0.92); posterior draws around them with per-item
SDs ~0.2 on log a and ~0.3 on b plus a small shared per-draw scale/shift jitter):

1. ``paper`` mode: :func:`fluid_bayes.adaptive.replay.replay` of ``--subjects`` simulated subjects
   (true abilities ~ N(0, 1), full answers drawn from the 2PL at the point parameters)
   for ``--items`` items over a ``--bank-items`` bank, against two plain numpy loops
   written here, each run on the first ``--reference-subjects`` subjects with its
   output (items and abilities) compared with the replay's:

   - the *reference-layout loop* does what the paper's reference code does, in its call
     layout: per step, Fisher information of every bank item at the current estimate and
     ``np.argmax`` over the unused ones; the answer goes into a bank-length vector (NaN =
     not asked) that the MAP masks again on every call; the MAP runs Newton on the score
     with a separate pass for its derivative (N(0, 1) prior, D = 1, theta in [-4, 4],
     stop at |score| < 1e-6, at most 100 iterations, up to 15 step halvings while
     |score| does not fall, bisection fallback), warm-started at the previous estimate.
     This is the issue's comparison ("a plain per-session loop that does what the
     reference does"; the issue measured the reference at ~300 ms per session).
   - the *lean loop* is a faster plain loop: the answered items kept in compact arrays,
     score and information from one pass, the same Newton/halving/bisection rules. It is
     reported as a stricter comparison.
2. ``bayes`` mode (expected-FI selection, grid posterior over ``--draws`` item draws):
   replay of ``--bayes-subjects`` subjects and one :func:`run_session`, per session.
3. Memory of a ``--memory-items`` bank with ``--memory-draws`` draws, built in a child
   process so that its peak RSS is its own.

Usage::

    .venv/bin/python benchmarks/adaptive.py            # full run, ~7.5 min here (loaded)
    .venv/bin/python benchmarks/adaptive.py --quick    # smoke test, ~30 s

Writes ``benchmarks/results/adaptive.json`` (``adaptive_quick.json`` with ``--quick``).
The numba kernels are compiled in a fresh cache directory (``NUMBA_CACHE_DIR``), so the
reported compile time is a cold compile; a later process loads them from the cache,
which is timed separately.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_MS = 300.0  # the cost of one 500-item reference session on this machine

if __name__ == "__main__" and "NUMBA_CACHE_DIR" not in os.environ:
    # set before numba is imported: a cold compile, and a cache the child can reuse
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fluid_bayes_numba_")
    atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], ignore_errors=True)

import numpy as np  # noqa: E402
from scipy.special import expit  # noqa: E402

# ----------------------------------------------------------------------- synthetic data


def source_fingerprint() -> str:
    """sha256 of the package sources (the code the numbers belong to)."""
    import hashlib

    pkg = Path(__file__).resolve().parent.parent / "fluid_bayes"
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode() + f.read_bytes())
    return h.hexdigest()[:16]


def make_draws(n_items: int, chains: int, draws: int, seed: int):
    """Posterior draws ``(chain, draw, item)`` of a ChemBench-like bank."""
    rng = np.random.default_rng(seed)
    log_a = rng.normal(0.31, 0.62, n_items)
    b = rng.normal(0.35, 0.92, n_items)
    sd_log_a = 0.2 * np.exp(rng.normal(0.0, 0.3, n_items))
    sd_b = 0.3 * np.exp(rng.normal(0.0, 0.3, n_items))
    n_s = chains * draws
    scale = np.exp(rng.normal(0.0, 0.03, (n_s, 1)))  # shared per-draw scale and shift
    shift = rng.normal(0.0, 0.03, (n_s, 1))
    a_draws = np.exp(log_a + sd_log_a * rng.standard_normal((n_s, n_items))) / scale
    b_draws = (b + sd_b * rng.standard_normal((n_s, n_items))) * scale + shift
    shape = (chains, draws, n_items)
    return a_draws.reshape(shape), b_draws.reshape(shape)


def make_bank(n_items: int, chains: int, draws: int, seed: int):
    """A synthetic :class:`ItemBank` (no calibration abilities: sessions start at 0)."""
    from fluid_bayes import ItemBank

    a, b = make_draws(n_items, chains, draws, seed)
    items = [f"i{j:05d}" for j in range(n_items)]
    return ItemBank.from_draws(a, b, items=items, source="benchmarks/adaptive.py")


def simulate_answers(a_point, b_point, n_subjects: int, seed: int):
    """Full 0/1 answers of subjects with abilities ~ N(0, 1), and the abilities."""
    rng = np.random.default_rng([seed, 1])
    theta = rng.standard_normal(n_subjects)
    p = expit(a_point[None, :] * (theta[:, None] - b_point[None, :]))
    return (rng.random(p.shape) < p).astype(np.float64), theta


# ------------------------------------------------------------- plain reference session


def _score_info(a, b, y, theta, mu0, prec0):
    with np.errstate(over="ignore"):
        p = 1.0 / (1.0 + np.exp(-a * (theta - b)))
    score = np.sum(a * (y - p)) - (theta - mu0) * prec0
    info = np.sum(a * a * p * (1.0 - p)) + prec0
    return score, info


def reference_map(a, b, y, theta0, *, mu0=0.0, prec0=1.0, lo=-4.0, hi=4.0, tol=1e-6):
    """MAP by numpy Newton with step halving and a bisection fallback.

    Returns the MAP on ``[lo, hi]`` and the posterior information there.
    """
    theta = min(max(theta0, lo), hi)
    score, info = _score_info(a, b, y, theta, mu0, prec0)
    for _ in range(100):
        if abs(score) < tol:
            return theta, info
        step = score / info
        for _ in range(20):  # halve the step until |score| decreases
            new = min(max(theta + step, lo), hi)
            s_new, i_new = _score_info(a, b, y, new, mu0, prec0)
            if abs(s_new) < abs(score):
                break
            step *= 0.5
        else:
            break  # no decrease (e.g. the root lies beyond a bound): bisection
        theta, score, info = new, s_new, i_new
    # bisection on [lo, hi]; the score is decreasing in theta
    s_lo, i_lo = _score_info(a, b, y, lo, mu0, prec0)
    if s_lo <= 0.0:
        return lo, i_lo
    s_hi, i_hi = _score_info(a, b, y, hi, mu0, prec0)
    if s_hi >= 0.0:
        return hi, i_hi
    left, right = lo, hi
    for _ in range(200):
        mid = 0.5 * (left + right)
        s_mid, i_mid = _score_info(a, b, y, mid, mu0, prec0)
        if abs(s_mid) < tol or right - left < 1e-12:
            return mid, i_mid
        if s_mid > 0.0:
            left = mid
        else:
            right = mid
    return mid, i_mid


def reference_session(answers, a, b, max_items: int, start: float = 0.0):
    """One session of the paper's procedure, plainly: items, MAPs and SEs per step."""
    n = a.size
    used = np.zeros(n, dtype=bool)
    ka, kb, ky = np.empty(max_items), np.empty(max_items), np.empty(max_items)
    items = np.empty(max_items, dtype=np.int64)
    thetas, ses = np.empty(max_items), np.empty(max_items)
    theta = start
    a2 = a * a
    for t in range(min(max_items, n)):
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-a * (theta - b)))
        info = a2 * p * (1.0 - p)
        info[used] = -np.inf
        j = int(np.argmax(info))  # ties: the lowest index
        used[j] = True
        ka[t], kb[t], ky[t] = a[j], b[j], answers[j]
        theta, h = reference_map(ka[: t + 1], kb[: t + 1], ky[: t + 1], theta)
        items[t], thetas[t], ses[t] = j, theta, 1.0 / np.sqrt(h)
    return items, thetas, ses


def _layout_map(y_full, a_full, b_full, theta0, *, mu0=0.0, prec0=1.0, lo=-4.0, hi=4.0):
    """MAP in the reference's call layout: the whole bank's answer vector per call.

    ``y_full`` holds NaN for the items not asked yet; each call masks it and gathers
    the answered items, then runs Newton on the score with a separate pass for its
    derivative, up to 15 step halvings while |score| does not fall, at most 100
    iterations, and a bisection fallback on ``[lo, hi]``.
    """
    seen = ~np.isnan(y_full)
    a, b, y = a_full[seen], b_full[seen], y_full[seen]

    def score(t):
        return float(np.sum(a * (y - expit(a * (t - b))))) - (t - mu0) * prec0

    def slope(t):
        p = expit(a * (t - b))
        return -float(np.sum(a * a * p * (1.0 - p))) - prec0

    theta = min(max(theta0, lo), hi)
    for _ in range(100):
        s = score(theta)
        if abs(s) < 1e-6:
            return theta
        new = min(max(theta - s / slope(theta), lo), hi)
        for _ in range(15):
            if abs(score(new)) < abs(s):
                break
            new = 0.5 * (new + theta)
        theta = new
    s_lo, s_hi = score(lo), score(hi)
    if s_lo * s_hi > 0:
        return hi if s_lo > 0 else lo
    left, right = lo, hi
    for _ in range(80):
        mid = 0.5 * (left + right)
        s_mid = score(mid)
        if abs(s_mid) < 1e-6:
            return mid
        if s_lo * s_mid > 0:
            left, s_lo = mid, s_mid
        else:
            right = mid
    return 0.5 * (left + right)


def reference_layout_session(answers, a, b, max_items: int, start: float = 0.0):
    """One session as the reference code lays it out: items and MAPs per step.

    Per step: Fisher information of every bank item at the current estimate, used items
    set to -inf, ``np.argmax``; the answer goes into a bank-length vector (NaN = not
    asked) that :func:`_layout_map` masks again on every call, warm-started at the
    previous estimate.
    """
    n = a.size
    used = np.zeros(n, dtype=bool)
    y_full = np.full(n, np.nan)
    items, thetas = np.empty(max_items, dtype=np.int64), np.empty(max_items)
    theta = start
    for t in range(min(max_items, n)):
        p = expit(a * (theta - b))
        info = np.where(used, -np.inf, a * a * p * (1.0 - p))
        j = int(np.argmax(info))
        used[j] = True
        y_full[j] = answers[j]
        theta = _layout_map(y_full, a, b, theta)
        items[t], thetas[t] = j, theta
    return items, thetas


# ------------------------------------------------------------------------ the parts


def _median_time(fn, repeats: int):
    """Median wall seconds, all wall times, median CPU seconds (all threads), last output."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), wall, float(np.median(cpu)), out


def _time_sessions(session, n: int):
    """Wall and CPU seconds of ``session(k)`` for ``k < n``, and its outputs."""
    wall, cpu, outs = [], [], []
    for k in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        outs.append(session(k))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, outs


def _agreement(results, outs, index):
    """How a plain loop's sessions ``outs`` compare with the replay's ``results``.

    ``outs[k]`` is ``(items, thetas)`` or ``(items, thetas, ses)``. Returns the number
    of sessions with the same items, the largest |d theta| and |d se| among them, and
    for the others the first step where the items differ.
    """
    n_same, max_dtheta, max_dse, first_diff = 0, 0.0, 0.0, []
    for r, (items, thetas, *ses) in zip(results, outs, strict=False):
        got = np.array([index[i] for i in r.items])
        if got.size == items.size and np.array_equal(got, items):
            n_same += 1
            th = np.array([s.theta_mean for s in r.steps])
            max_dtheta = max(max_dtheta, float(np.max(np.abs(th - thetas))))
            if ses:
                se = np.array([s.theta_sd for s in r.steps])
                max_dse = max(max_dse, float(np.max(np.abs(se - ses[0]))))
        else:
            m = min(got.size, items.size)
            step = int(np.argmax(got[:m] != items[:m])) if (got[:m] != items[:m]).any() else m
            first_diff.append({"subject": r.subject, "first_differing_step": step + 1})
    return n_same, max_dtheta, max_dse, first_diff


def paper_part(bank, arrays, data, answers, args) -> dict:
    """Paper-mode replay vs the plain loop, with the identical-output check."""
    from fluid_bayes.adaptive import paper_kernels
    from fluid_bayes.adaptive.replay import replay

    n_sub, n_ref = data.n_subjects, min(args.reference_subjects, data.n_subjects)
    opts = {"method": "paper", "max_items": args.items, "start_ability": 0.0, "arrays": arrays}

    compile_s = _first_replay_s(args.seed)  # compiles the kernels (fresh numba cache)
    cache_load_s = _cache_load_time(args)
    t0 = time.perf_counter()
    ranking = arrays.mfi_ranking  # one-off per bank: per-node item rankings of the MFI scan
    ranking_s = time.perf_counter() - t0

    replay_s, replay_runs, replay_cpu, res = _median_time(
        lambda: replay(bank, data, **opts), args.repeats
    )
    excluded = np.zeros(arrays.n_items, dtype=bool)
    kernel_args = (
        answers,
        arrays.a_point,
        arrays.b_point,
        arrays.order,
        ranking,
        excluded,
        np.zeros(n_sub),
        args.items,
        0,
        0.0,
        0.0,
        1.0,
        -4.0,
        4.0,
    )
    kernel_s, _, kernel_cpu, _ = _median_time(lambda: paper_kernels.replay_paper(*kernel_args), 1)

    a, b = arrays.a_point, arrays.b_point
    per_ref, per_ref_cpu, ref_out = _time_sessions(
        lambda k: reference_session(answers[k], a, b, args.items, 0.0), n_ref
    )
    per_layout, per_layout_cpu, layout_out = _time_sessions(
        lambda k: reference_layout_session(answers[k], a, b, args.items, 0.0), n_ref
    )
    index = {item: j for j, item in enumerate(arrays.items)}
    n_same, max_dtheta, max_dse, first_diff = _agreement(res.results, ref_out, index)
    layout_same, layout_dtheta, _, layout_diff = _agreement(res.results, layout_out, index)

    ref_ms = 1e3 * float(np.median(per_ref))
    ref_cpu_ms = 1e3 * float(np.median(per_ref_cpu))
    replay_ms = 1e3 * replay_s / n_sub
    replay_cpu_ms = 1e3 * replay_cpu / n_sub
    layout_ms = 1e3 * float(np.median(per_layout))
    layout_cpu_ms = 1e3 * float(np.median(per_layout_cpu))
    identical = n_same == n_ref and max_dtheta <= 1e-6
    layout_identical = layout_same == n_ref and layout_dtheta <= 1e-6
    return {
        "subjects": n_sub,
        "items": args.items,
        "bank_items": arrays.n_items,
        "compile_s": compile_s,
        "cache_load_s": cache_load_s,
        "ranking_build_s": ranking_s,
        "ranking_mib": sum(x.nbytes for x in ranking[:2]) / 2**20,
        "replay_s": replay_s,
        "replay_runs_s": replay_runs,
        "replay_ms_per_session": replay_ms,
        "replay_cpu_ms_per_session": replay_cpu_ms,
        "kernel_s": kernel_s,
        "kernel_ms_per_session": 1e3 * kernel_s / n_sub,
        "kernel_cpu_ms_per_session": 1e3 * kernel_cpu / n_sub,
        "reference_subjects": n_ref,
        "reference_ms_per_session_median": ref_ms,
        "reference_ms_per_session_mean": 1e3 * float(np.mean(per_ref)),
        "reference_cpu_ms_per_session_median": ref_cpu_ms,
        "speedup_vs_plain_loop": ref_ms / replay_ms,
        "speedup_vs_plain_loop_cpu": ref_cpu_ms / replay_cpu_ms,
        "speedup_kernel_only_vs_plain_loop": ref_ms / (1e3 * kernel_s / n_sub),
        "speedup_vs_issue_reference_300ms": REFERENCE_MS / replay_ms,
        "layout_ms_per_session_median": layout_ms,
        "layout_ms_per_session_mean": 1e3 * float(np.mean(per_layout)),
        "layout_cpu_ms_per_session_median": layout_cpu_ms,
        "speedup_vs_reference_layout": layout_ms / replay_ms,
        "speedup_vs_reference_layout_cpu": layout_cpu_ms / replay_cpu_ms,
        "layout_identical_item_sessions": layout_same,
        "layout_max_abs_theta_diff": layout_dtheta,
        "layout_differing_sessions": layout_diff,
        "layout_identical_output": layout_identical,
        "identical_item_sessions": n_same,
        "max_abs_theta_diff": max_dtheta,
        "max_abs_se_diff": max_dse,
        "differing_sessions": first_diff,
        "identical_output": identical,
        "target_met_vs_reference_layout": identical
        and layout_identical
        and layout_ms / replay_ms >= 50,
        "target_met_vs_lean_loop": identical and ref_ms / replay_ms >= 50,
    }


def _cache_load_time(args) -> float | None:
    """Seconds a fresh process takes for its first tiny replay, kernels from the cache."""
    cmd = [sys.executable, __file__, "--cache-child", "--seed", str(args.seed)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
    except subprocess.CalledProcessError as exc:
        print(exc.stderr, file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["first_call_s"]


def _first_replay_s(seed: int) -> float:
    """Seconds of a tiny paper replay (2 subjects, 50 items): the first one compiles."""
    from fluid_bayes import from_array
    from fluid_bayes.adaptive.replay import replay
    from fluid_bayes.adaptive.selection import BankArrays

    bank = make_bank(50, 1, 1, seed)
    arrays = BankArrays.from_bank(bank)
    y, _ = simulate_answers(arrays.a_point, arrays.b_point, 2, seed)
    data = from_array(y, subjects=["s0", "s1"], items=arrays.items)
    t0 = time.perf_counter()
    replay(bank, data, method="paper", max_items=5, start_ability=0.0, arrays=arrays)
    return time.perf_counter() - t0


def _cache_child(seed: int) -> None:
    print(json.dumps({"first_call_s": _first_replay_s(seed)}))


def bayes_part(bank, arrays, data, answers, args, reference_ms: float, lean_ms: float) -> dict:
    """Bayesian mode: table build, batched replay and one interactive session."""
    from fluid_bayes.adaptive.replay import replay
    from fluid_bayes.adaptive.session import run_session

    t0 = time.perf_counter()
    arrays.info_table  # noqa: B018  (builds the information and accuracy tables)
    table_s = time.perf_counter() - t0
    n = min(args.bayes_subjects, data.n_subjects)
    subjects = list(data.subjects[:n])
    opts = {"method": "bayes", "max_items": args.items, "start_ability": 0.0, "arrays": arrays}
    t0 = time.perf_counter()  # compiles (or loads) the bayes-mode kernels, not timed below
    replay(bank, data, subjects=subjects[:1], **{**opts, "max_items": 5})
    warm_s = time.perf_counter() - t0
    replay_s, runs, replay_cpu, res = _median_time(
        lambda: replay(bank, data, subjects=subjects, **opts), args.bayes_repeats
    )

    row = answers[0]
    index = {item: j for j, item in enumerate(arrays.items)}

    def one():
        return run_session(bank, lambda item: row[index[item]], subject=subjects[0], **opts)

    single_s, single_runs, single_cpu, single = _median_time(one, args.single_repeats)
    same = single.items == res.results[0].items
    dtheta = max(
        abs(s.theta_mean - r.theta_mean)
        for s, r in zip(single.steps, res.results[0].steps, strict=True)
    )
    replay_ms = 1e3 * replay_s / n
    return {
        "draws": arrays.n_draws,
        "grid_nodes": int(arrays.nodes.size),
        "subjects": n,
        "items": args.items,
        "table_build_s": table_s,
        "kernel_warmup_s": warm_s,
        "replay_s": replay_s,
        "replay_runs_s": runs,
        "replay_ms_per_session": replay_ms,
        "replay_cpu_ms_per_session": 1e3 * replay_cpu / n,
        "single_session_ms": 1e3 * single_s,
        "single_session_cpu_ms": 1e3 * single_cpu,
        "single_session_runs_s": single_runs,
        "single_matches_replay_items": bool(same),
        "single_vs_replay_max_abs_theta_diff": float(dtheta),
        "reference_ms_per_session": reference_ms,
        "lean_loop_ms_per_session": lean_ms,
        "replay_target_met": replay_ms <= reference_ms,
        "single_target_met": 1e3 * single_s <= reference_ms,
        "replay_faster_than_lean_loop": replay_ms <= lean_ms,
    }


def memory_part(args) -> dict:
    """Build the big bank in a child process and read its peak RSS."""
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        "--seed",
        str(args.seed),
        "--memory-items",
        str(args.memory_items),
        "--memory-draws",
        str(args.memory_draws),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rss() -> tuple[int, int, int]:
    """Current RSS, peak RSS of this process image (VmHWM) and getrusage's ru_maxrss.

    ``ru_maxrss`` survives ``exec`` (it can include the parent's RSS at fork time),
    ``VmHWM`` does not; the memory child runs first, while the parent is small.
    """
    status = Path("/proc/self/status").read_text().split("\n")
    kib = {ln.split(":")[0]: int(ln.split()[1]) for ln in status if ln.startswith("Vm")}
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib["VmRSS"] * 1024, kib["VmHWM"] * 1024, maxrss * 1024


def _memory_child(n_items: int, n_draws: int, seed: int) -> None:
    from fluid_bayes import ItemBank
    from fluid_bayes.adaptive.selection import BankArrays

    chains = 4 if n_draws % 4 == 0 else 1
    stages = {"imports": _rss()}
    a, b = make_draws(n_items, chains, n_draws // chains, seed)
    stages["draws generated"] = _rss()
    t0 = time.perf_counter()
    bank = ItemBank.from_draws(a, b, items=[f"i{j:05d}" for j in range(n_items)], source="mem")
    bank_s = time.perf_counter() - t0
    del a, b  # the bank holds them (no copy)
    stages["ItemBank.from_draws"] = _rss()
    t0 = time.perf_counter()
    arrays = BankArrays.from_bank(bank)
    arrays_s = time.perf_counter() - t0
    nbytes_arrays = arrays.nbytes()
    stages["BankArrays.from_bank"] = _rss()
    t0 = time.perf_counter()
    arrays.info_table  # noqa: B018
    arrays.order  # noqa: B018
    table_s = time.perf_counter() - t0
    stages["tables built"] = _rss()
    rss, hwm, maxrss = _rss()
    print(
        json.dumps(
            {
                "items": n_items,
                "draws": n_draws,
                "bank_dtype": str(bank.a.dtype),
                "posterior_bytes_float64": n_items * n_draws * 2 * 8,
                "posterior_bytes_float32": n_items * n_draws * 2 * 4,
                "posterior_bytes_held": int(bank.a.nbytes + bank.b.nbytes),
                "bank_build_s": bank_s,
                "arrays_build_s": arrays_s,
                "table_build_s": table_s,
                "bankarrays_nbytes_before_tables": nbytes_arrays,
                "bankarrays_nbytes": arrays.nbytes(),
                "table_bytes": arrays.nbytes() - nbytes_arrays,
                "rss_by_stage": {
                    k: {"rss": v[0], "peak_rss": v[1], "ru_maxrss": v[2]} for k, v in stages.items()
                },
                "rss_end": rss,
                "peak_rss": hwm,
                "ru_maxrss": maxrss,
            }
        )
    )


# ------------------------------------------------------------------------------ main


def _mib(x: float) -> str:
    return f"{x / 2**20:,.0f} MiB"


def print_tables(out: dict) -> None:
    p, y, m = out["paper"], out["bayes"], out["memory"]
    print(
        f"\nadaptive evaluation, {p['items']} items per session over a "
        f"{p['bank_items']:,}-item bank (medians; wall, and CPU of all threads)\n"
    )
    rows = [
        (
            "reference-layout loop, per session",
            f"{p['layout_ms_per_session_median']:.1f} ms",
            f"CPU {p['layout_cpu_ms_per_session_median']:.1f} ms, "
            f"{p['reference_subjects']} subjects",
        ),
        (
            "lean loop (numpy Newton + argmax), per session",
            f"{p['reference_ms_per_session_median']:.1f} ms",
            f"CPU {p['reference_cpu_ms_per_session_median']:.1f} ms, "
            f"{p['reference_subjects']} subjects",
        ),
        (
            "paper replay, per session",
            f"{p['replay_ms_per_session']:.2f} ms",
            f"CPU {p['replay_cpu_ms_per_session']:.2f} ms, {p['subjects']:,} subjects, "
            f"{p['replay_s']:.1f} s in all",
        ),
        (
            "  kernel alone, per session",
            f"{p['kernel_ms_per_session']:.2f} ms",
            f"CPU {p['kernel_cpu_ms_per_session']:.2f} ms",
        ),
        (
            "  kernel compile (cold) / cache load",
            f"{p['compile_s']:.1f} s",
            f"{p['cache_load_s']:.2f} s" if p["cache_load_s"] is not None else "n/a",
        ),
        (
            "  MFI rankings (801 nodes), one-off per bank",
            f"{p['ranking_build_s']:.2f} s",
            f"{p['ranking_mib']:.1f} MiB",
        ),
        (
            "speedup vs reference-layout loop (wall / CPU)",
            f"{p['speedup_vs_reference_layout']:.1f}x",
            f"{p['speedup_vs_reference_layout_cpu']:.1f}x; target >= 50x",
        ),
        (
            "speedup vs lean loop (wall / CPU)",
            f"{p['speedup_vs_plain_loop']:.1f}x",
            f"{p['speedup_vs_plain_loop_cpu']:.1f}x",
        ),
        (
            "speedup vs issue's 300 ms reference",
            f"{p['speedup_vs_issue_reference_300ms']:.1f}x",
            "",
        ),
        (
            "identical items / max |d theta|, lean loop",
            f"{p['identical_item_sessions']}/{p['reference_subjects']}",
            f"{p['max_abs_theta_diff']:.1e}",
        ),
        (
            "identical items / max |d theta|, reference layout",
            f"{p['layout_identical_item_sessions']}/{p['reference_subjects']}",
            f"{p['layout_max_abs_theta_diff']:.1e}",
        ),
        (
            f"bayes tables ({y['draws']} draws x {y['grid_nodes']} nodes), one-off",
            f"{y['table_build_s']:.1f} s",
            "",
        ),
        (
            "bayes replay, per session",
            f"{y['replay_ms_per_session']:.0f} ms",
            f"CPU {y['replay_cpu_ms_per_session']:.0f} ms, {y['subjects']} subjects",
        ),
        (
            "bayes run_session, one session",
            f"{y['single_session_ms']:.0f} ms",
            f"CPU {y['single_session_cpu_ms']:.0f} ms, "
            + ("same items as replay" if y["single_matches_replay_items"] else "items differ"),
        ),
        (
            f"bank {m['items']:,} items x {m['draws']:,} draws, posterior",
            _mib(m["posterior_bytes_float64"]),
            f"float32 {_mib(m['posterior_bytes_float32'])}",
        ),
        (
            "BankArrays.nbytes() with tables",
            _mib(m["bankarrays_nbytes"]),
            f"tables {_mib(m['table_bytes'])}",
        ),
        (
            "peak RSS building bank + arrays + tables",
            _mib(m["peak_rss"]),
            f"table build {m['table_build_s']:.1f} s",
        ),
    ]
    w = max(len(r[0]) for r in rows)
    for name, val, note in rows:
        print(f"{name:<{w}}  {val:>10}  {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=2000)
    ap.add_argument("--items", type=int, default=500, help="items per session")
    ap.add_argument("--bank-items", type=int, default=5000)
    ap.add_argument("--reference-subjects", type=int, default=30)
    ap.add_argument("--bayes-subjects", type=int, default=16)
    ap.add_argument("--draws", type=int, default=500, help="bank draws (2 chains)")
    ap.add_argument("--memory-items", type=int, default=14000)
    ap.add_argument("--memory-draws", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the paper replay")
    ap.add_argument("--bayes-repeats", type=int, default=1, help="repeats of the bayes replay")
    ap.add_argument("--single-repeats", type=int, default=3, help="repeats of run_session")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cache-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_items, args.memory_draws, args.seed)
        return 0
    if args.cache_child:
        _cache_child(args.seed)
        return 0
    if args.quick:
        args.subjects, args.items, args.bank_items = 200, 100, 1000
        args.reference_subjects, args.bayes_subjects, args.draws = 5, 8, 100
        args.memory_items, args.memory_draws = 2000, 200
    out_path = args.out or RESULTS / ("adaptive_quick.json" if args.quick else "adaptive.json")
    t_start = time.perf_counter()
    fingerprint = source_fingerprint()

    memory = memory_part(args)  # first: the child's ru_maxrss then excludes this process
    print(f"memory done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    from fluid_bayes import from_array
    from fluid_bayes.adaptive.selection import BankArrays

    bank = make_bank(args.bank_items, 2, args.draws // 2, args.seed)
    arrays = BankArrays.from_bank(bank)
    answers, _ = simulate_answers(arrays.a_point, arrays.b_point, args.subjects, args.seed)
    subjects = [f"s{k:05d}" for k in range(args.subjects)]
    data = from_array(answers, subjects=subjects, items=arrays.items, source="simulated")
    print(
        f"data: {args.subjects:,} subjects x {args.bank_items:,} items, bank "
        f"{arrays.n_draws} draws ({time.perf_counter() - t_start:.0f} s)",
        flush=True,
    )

    paper = paper_part(bank, arrays, data, answers, args)
    print(f"paper done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    bayes = bayes_part(
        bank,
        arrays,
        data,
        answers,
        args,
        paper["layout_ms_per_session_median"],
        paper["reference_ms_per_session_median"],
    )
    print(f"bayes done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    out = {
        "benchmark": "adaptive",
        "command": " ".join(
            ["python benchmarks/adaptive.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_avg_at_end": os.getloadavg(),
        },
        "total_s": time.perf_counter() - t_start,
        "fluid_bayes_sources_sha256": fingerprint,
        "sources_changed_during_run": source_fingerprint() != fingerprint,
        "paper": paper,
        "bayes": bayes,
        "memory": memory,
    }
    print_tables(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {out_path} ({out['total_s']:.0f} s)")
    if out["sources_changed_during_run"]:
        print("WARNING: fluid_bayes sources changed during the run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
