"""Broken items on MMLU-Redux (issue 19, part 1): answer-key errors asked per session.

Measures, on the shipped MMLU-Redux data (14 HELM models x 5,700 questions,
``fluid_bayes/data/mmlu_redux_helm/``) and the shipped bank ``models/mmlu-redux.nc``:

- per method, the annotated questions administered per 100-question session
  (``replay(..., max_items=100, stop_sd=None)``), averaged over the 14 models' sessions:
  answer-key errors (``KEY_ERRORS``: wrong ground truth, no or several correct answers)
  and any annotated error; only the annotated half (28 subjects, 2,800 questions, label
  ``ok`` or an error) is counted, as in notebook 03. Subjects are the 14 calibration
  models themselves (in sample, like the notebook's ``run_experiment``; no
  leave-one-model-out). ``random`` is averaged over ``--repeats`` seeds.
- methods: ``bayes`` (bayes estimator, ``epv`` selection), ``paper`` (MAP, ``mfi``),
  ``random``; ``bayes`` with information weighted by P(functions) = 1 - score of
  ``detect_mislabels`` (a 0/1 weight: items with score >= 0.5 are withheld from every
  session, their columns left out of the answers, so the replay withholds them);
  ``bayes`` with P(functions) from the broken-item mixture below (items with P(broken)
  > 0.5 withheld); and, as a label-free control, ``bayes`` with items answered right by
  fewer than half of the models withheld.
- a broken-item mixture 2PL fitted here in a plain ``pm.Model`` (not the package's fused
  Op): per item j, with probability pi_j its whole answer vector is theta-free,
  ``y_ij ~ Bernoulli(c_j)``, ``c_j ~ Beta(m kappa, (1 - m) kappa)`` integrated out
  analytically (beta-binomial of the item's k_j of n_j); otherwise the 2PL
  ``logistic(a_j (theta_i - b_j))`` with the package's default priors (theta zero-sum
  normal of scale 1,
  non-centred ``b ~ N(mu_b, sigma_b)``, ``log a ~ N(mu_log_a, sigma_log_a)``, mu_b ~
  N(0, 2), sigma_b ~ Gamma(2, 1), mu_log_a ~ N(0, 1), sigma_log_a ~ Gamma(4, 4));
  ``logit pi_j ~ N(mu_pi, sigma_pi)`` non-centred, mu_pi ~ N(logit 0.05, 1), sigma_pi ~
  HalfNormal(1); m ~ Beta(1, 1), kappa ~ Gamma(2, 0.2). The indicator is marginalized per
  item with ``pm.math.logaddexp`` over the item's summed log-likelihoods. Sampled by
  nutpie with a seed; R-hat (rank) and bulk ESS by ``arviz_stats``, divergences from
  ``sample_stats``. P(broken_j) = mean over draws of sigmoid(log w1 - log w0).
- AUROC and average precision (``evaluate_detector``) of each score for key errors and
  for any error against clean items, on the annotated items; beside the detector's.

Chains are short (a measurement, not a bank): defaults 2 chains x 300 draws after 600
tuning steps, kept whole (no thinning). Writes ``benchmarks/results/broken_items.json``.

    nice .venv/bin/python benchmarks/broken_items.py [--tune 600] [--draws 300] \
        [--chains 2] [--backend jax] [--repeats 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import fluid_bayes as fb
from fluid_bayes.adaptive.replay import replay
from fluid_bayes.upkeep.mislabels import detect_mislabels, evaluate_detector, read_item_labels

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "fluid_bayes" / "data" / "mmlu_redux_helm"
BANK = ROOT / "models" / "mmlu-redux.nc"
OUT = ROOT / "benchmarks" / "results" / "broken_items.json"
SUMMARY_VARS = ["theta", "mu_b", "sigma_b", "mu_log_a", "sigma_log_a", "mu_pi", "sigma_pi",
                "m_c", "kappa_c", "b", "log_a", "logit_pi"]  # fmt: skip
FITS = ("mixture", "mixture-free", "4pl")


def withheld(data, drop: np.ndarray):
    """``data`` without the items ``drop`` (bool per item): the replay then sees them
    missing for every subject and withholds them (``align_to_bank``)."""
    return data.select(items=[i for i, d in zip(data.items, drop, strict=True) if not d])


def count_errors(trace: pd.DataFrame, key: pd.Series, anyerr: pd.Series) -> dict:
    """Mean per session of administered key errors, any errors and annotated items."""
    t = trace.assign(key=key.reindex(trace["item"]).to_numpy(),
                     err=anyerr.reindex(trace["item"]).to_numpy())  # fmt: skip
    per = t.groupby("subject").agg(
        key=("key", lambda x: float((x == 1).sum())),
        any=("err", lambda x: float((x == 1).sum())),
        annotated=("err", lambda x: float(x.notna().sum())),
        n=("item", "size"),
    )
    return {
        "key_errors_per_session": float(per["key"].mean()),
        "any_errors_per_session": float(per["any"].mean()),
        "annotated_per_session": float(per["annotated"].mean()),
        "items_per_session": float(per["n"].mean()),
        "key_errors_by_subject": per["key"].to_dict(),
    }


def sessions(bank, data, method: str, key, anyerr, repeats: int) -> dict:
    """Replay every model for 100 items; random averaged over ``repeats`` seeds."""
    t0 = time.perf_counter()
    seeds = range(repeats) if method == "random" else [0]
    runs = [
        count_errors(
            replay(bank, data, method=method, max_items=100, stop_sd=None, seed=s).trace,
            key, anyerr,
        )
        for s in seeds
    ]  # fmt: skip
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0] if k != "key_errors_by_subject"}
    if len(runs) > 1:
        out["key_errors_per_session_by_seed"] = [r["key_errors_per_session"] for r in runs]
        out["any_errors_per_session_by_seed"] = [r["any_errors_per_session"] for r in runs]
    else:
        out["key_errors_by_subject"] = runs[0]["key_errors_by_subject"]
    out["seconds"] = time.perf_counter() - t0
    return out


def auroc(score: pd.Series, key: pd.Series, anyerr: pd.Series) -> dict:
    """``evaluate_detector`` for key errors and for any error (annotated items only)."""
    out = {}
    for name, lab in (("key", key), ("any", anyerr)):
        e = evaluate_detector(score, lab)
        out[name] = {k: e[k] for k in ("auroc", "average_precision", "base_rate",
                                       "n_labeled", "n_positive")}  # fmt: skip
    return out


def build_model(kind: str, y: np.ndarray, subjects, items):
    """The broken-item model ``kind`` as a plain ``pm.Model`` (see the module docstring)."""
    import pymc as pm
    import pytensor.tensor as pt

    n_sub, n_item = y.shape
    sign = 2.0 * y - 1.0
    k = y.sum(axis=0)
    n = np.full(n_item, float(n_sub))

    def betaln(u, v):
        return pt.gammaln(u) + pt.gammaln(v) - pt.gammaln(u + v)

    coords = {"subject": list(subjects), "item": list(items)}
    with pm.Model(coords=coords) as model:
        # zero-sum abilities: the location sits in mu_b (NOTES.md: mixes, a free one did not)
        theta = pm.ZeroSumNormal("theta", sigma=1.0, dims="subject")
        mu_b = pm.Normal("mu_b", 0.0, 2.0)
        sigma_b = pm.Gamma("sigma_b", alpha=2.0, beta=1.0)
        mu_la = pm.Normal("mu_log_a", 0.0, 1.0)
        sigma_la = pm.Gamma("sigma_log_a", alpha=4.0, beta=4.0)
        zb = pm.Normal("b_raw", 0.0, 1.0, dims="item")
        za = pm.Normal("log_a_raw", 0.0, 1.0, dims="item")
        b = pm.Deterministic("b", mu_b + sigma_b * zb, dims="item")
        log_a = pm.Deterministic("log_a", mu_la + sigma_la * za, dims="item")
        eta = pt.exp(log_a)[None, :] * (theta[:, None] - b[None, :])
        if kind == "4pl":  # upper asymptote d_j: P = d_j logistic(eta)
            mu_d = pm.Normal("mu_d", 3.0, 1.0)
            sigma_d = pm.HalfNormal("sigma_d", 1.0)
            zd = pm.Normal("d_raw", 0.0, 1.0, dims="item")
            logit_d = pm.Deterministic("logit_d", mu_d + sigma_d * zd, dims="item")
            log_p = -pt.softplus(-logit_d)[None, :] - pt.softplus(-eta)
            ll = pt.where(y > 0.5, log_p, pt.log1mexp(log_p))
            pm.Potential("loglik", ll.sum())
            return model
        mu_pi = pm.Normal("mu_pi", np.log(0.05 / 0.95), 1.0)
        sigma_pi = pm.HalfNormal("sigma_pi", 1.0)
        zp = pm.Normal("pi_raw", 0.0, 1.0, dims="item")
        logit_pi = pm.Deterministic("logit_pi", mu_pi + sigma_pi * zp, dims="item")
        m_c = pm.Beta("m_c", *((1.0, 1.0) if kind == "mixture-free" else (2.0, 8.0)))
        kappa = pm.Gamma("kappa_c", alpha=2.0, beta=0.2)
        al, be = m_c * kappa, (1.0 - m_c) * kappa
        ll_2pl = -pt.softplus(-sign * eta).sum(axis=0)
        ll_broken = betaln(k + al, n - k + be) - betaln(al, be)
        lw0 = -pt.softplus(logit_pi) + ll_2pl  # log(1 - pi) + 2PL
        lw1 = -pt.softplus(-logit_pi) + ll_broken  # log pi + theta-free
        pm.Deterministic("log_odds_broken", lw1 - lw0, dims="item")
        pm.Potential("mixture", pm.math.logaddexp(lw0, lw1).sum())
    return model


def fit_model(kind: str, data, args) -> dict:
    """Sample ``kind`` with nutpie; P(broken) per item and the convergence summary."""
    import arviz_stats
    import nutpie

    y = np.asarray(data.values, dtype=float)
    model = build_model(kind, y, data.subjects, data.items)
    t0 = time.perf_counter()
    kw = {"backend": "jax", "gradient_backend": "jax"} if args.backend == "jax" else {}
    compiled = nutpie.compile_pymc_model(model, **kw)
    t_compile = time.perf_counter() - t0
    trace = nutpie.sample(compiled, chains=args.chains, tune=args.tune, draws=args.draws,
                          seed=args.seed, cores=args.chains, progress_bar=False)  # fmt: skip
    t_sample = time.perf_counter() - t0 - t_compile
    post = (
        trace.posterior.to_dataset() if hasattr(trace.posterior, "to_dataset") else trace.posterior
    )
    stats = trace.sample_stats
    stats = stats.to_dataset() if hasattr(stats, "to_dataset") else stats
    if kind == "4pl":  # "broken" score: 1 - E[d_j], the missing top of the curve
        lo = np.asarray(post["logit_d"].transpose("chain", "draw", "item").values)
        p_broken = 1.0 - (1.0 / (1.0 + np.exp(-lo))).mean(axis=(0, 1))
        names = [v for v in SUMMARY_VARS if v in post] + ["mu_d", "sigma_d", "logit_d"]
    else:
        lo = np.asarray(post["log_odds_broken"].transpose("chain", "draw", "item").values)
        p_broken = (1.0 / (1.0 + np.exp(-lo))).mean(axis=(0, 1))
        names = SUMMARY_VARS
    sub = post[names]
    rhat = arviz_stats.rhat(sub)
    ess = arviz_stats.ess(sub)
    conv = {
        v: {"rhat_max": float(np.nanmax(rhat[v].values)),
            "ess_bulk_min": float(np.nanmin(ess[v].values))}
        for v in names
    }  # fmt: skip
    div = int(np.asarray(stats["diverging"].values).sum())
    depth = stats["depth"].values if "depth" in stats else None
    means = {v: float(post[v].mean()) for v in names if post[v].ndim == 2}
    return {
        "p_broken": pd.Series(p_broken, index=list(data.items)),
        "a_mean": pd.Series(np.exp(post["log_a"].values).mean(axis=(0, 1)), index=list(data.items)),
        "report": {
            "backend": args.backend, "chains": args.chains, "tune": args.tune,
            "draws": args.draws, "seed": args.seed, "compile_seconds": t_compile,
            "sample_seconds": t_sample, "divergences": div,
            "mean_tree_depth": None if depth is None else float(np.mean(depth)),
            "rhat_max": max(c["rhat_max"] for c in conv.values()),
            "ess_bulk_min": min(c["ess_bulk_min"] for c in conv.values()),
            "kind": kind, "convergence": conv, "posterior_means": means,
            "n_p_broken_gt_0.5": int((p_broken > 0.5).sum()),
            "expected_broken": float(p_broken.sum()),
        },
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tune", type=int, default=600)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--backend", choices=["numba", "jax"], default="jax")
    ap.add_argument("--repeats", type=int, default=5, help="random sessions' seeds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fits", default=",".join(FITS), help=f"comma list of {FITS}, or ''")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    t_all = time.perf_counter()
    bank = fb.ItemBank.load(BANK)
    data = fb.read_responses(DATA / "responses.csv")
    key, _ = read_item_labels(DATA / "items.csv", positive="key")
    anyerr, _ = read_item_labels(DATA / "items.csv", positive="any")
    items = pd.Index(list(data.items))
    result: dict = {"command": "benchmarks/broken_items.py", "args": vars(args), "methods": {},
                    "auroc": {}, "n_annotated": int(anyerr.notna().sum()),
                    "n_key_errors": int((key == 1).sum()),
                    "n_any_errors": int((anyerr == 1).sum())}  # fmt: skip

    def run(name, method, drop=None, score_note=""):
        d = data if drop is None else withheld(data, drop)
        r = sessions(bank, d, method, key, anyerr, args.repeats)
        if drop is not None:
            r["items_withheld"] = int(drop.sum())
            r["key_errors_withheld"] = int((key.reindex(items)[drop] == 1).sum())
            r["any_errors_withheld"] = int((anyerr.reindex(items)[drop] == 1).sum())
            r["clean_withheld"] = int((anyerr.reindex(items)[drop] == 0).sum())
        r["rule"] = score_note
        result["methods"][name] = r
        print(f"{name:<24} key {r['key_errors_per_session']:.2f}  any "
              f"{r['any_errors_per_session']:.2f}  annotated {r['annotated_per_session']:.1f}"
              f"  ({r['seconds']:.0f} s)", flush=True)  # fmt: skip

    for m in ("bayes", "paper", "random"):
        run(m, m, score_note=f"method preset {m!r}")
    det = detect_mislabels(bank).table["score"].reindex(items)
    result["auroc"]["detect_mislabels"] = auroc(det, key, anyerr)
    pcorr = pd.Series(np.nanmean(np.asarray(data.values, float), axis=0), index=items)
    result["auroc"]["1 - proportion correct"] = auroc(1.0 - pcorr, key, anyerr)
    run(
        "bayes+detector",
        "bayes",
        (det >= 0.5).to_numpy(),
        "bayes; items with detect_mislabels score >= 0.5 withheld",
    )
    run(
        "bayes+pcorrect",
        "bayes",
        (pcorr < 0.5).to_numpy(),
        "bayes; items right for fewer than half the models withheld (no IRT)",
    )
    result["fits"] = {}
    for kind in [f for f in args.fits.split(",") if f]:
        print(f"fitting {kind} ...", flush=True)
        fit = fit_model(kind, data, args)
        pb = fit["p_broken"].reindex(items)
        result["fits"][kind] = fit["report"]
        result["auroc"][f"{kind} P(broken)"] = auroc(pb, key, anyerr)
        result["auroc"][f"{kind} 1/a (mean)"] = auroc(
            1.0 / fit["a_mean"].reindex(items), key, anyerr
        )
        print(
            json.dumps({k: v for k, v in fit["report"].items() if k != "convergence"}), flush=True
        )
        run(
            f"bayes+{kind}",
            "bayes",
            (pb > 0.5).to_numpy(),
            f"bayes; items with {kind} P(broken) > 0.5 withheld",
        )
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=float))  # so far
    for k, v in result["auroc"].items():
        print(f"AUROC {k:<24} key {v['key']['auroc']:.3f}  any {v['any']['auroc']:.3f}")
    result["seconds"] = time.perf_counter() - t_all
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
