"""Fitting a :class:`~fluid_bayes.calibration.model.HierarchicalTwoPL` to answers: the item bank.

Kept apart from the model specification (cmdstanpy's model / fit split): the spec
stores settings, :func:`run_fit` samples and returns a new :class:`ItemBank`.

With nutpie, every chain is a background run of its own, at most one per core at a
time, and the draws are checked in blocks (:func:`_sample_nutpie_until_converged`): a
default fit that has not reached R-hat <= 1.01 and bulk ESS >= 400 after 1,000 draws per
chain goes on with the same chains, up to 8,000 (``max_draws``; fewer if the draws would
pass ``TRACE_BUDGET_BYTES``), and keeps the draws up to the first block count that passed.
The decision only ever looks at complete prefixes of seeded chains, so the bank is the
same on every run with the same seed.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from fluid_bayes import irt
from fluid_bayes.bank import BankMeta, ItemBank, bank_hash, items_dataset
from fluid_bayes.calibration.constant_items import draw_constant_items
from fluid_bayes.calibration.diagnostics import (
    ESS_MIN,
    RHAT_MAX,
    ConvergenceReport,
    check_convergence,
)
from fluid_bayes.calibration.model import SAMPLERS
from fluid_bayes.calibration.options import (
    DEFAULT_CHAINS,
    DEFAULT_TUNE,
    SamplerOptions,
    require_memory,
)
from fluid_bayes.dims import CHAIN, DRAW, GROUP, HDI_PROB, ITEM, SUBJECT
from fluid_bayes.exceptions import ConvergenceError

if TYPE_CHECKING:
    from fluid_bayes.calibration.constant_items import ConstantItems
    from fluid_bayes.calibration.model import HierarchicalTwoPL
    from fluid_bayes.data.responses import ResponseMatrix

__all__ = ["TARGET_ACCEPT", "TRACE_BUDGET_BYTES", "ConvergenceWarning", "items_frame", "run_fit"]

#: default NUTS target acceptance per likelihood (``benchmarks/README.md``). Marginal:
#: 0.95, because LSAT-7 at 0.9 had 1 divergent transition in 4,000 draws and none at
#: 0.95, in less time (13.7 s vs 16.8 s). Joint with non-centred items (few answers per
#: item): 0.9, since ChemBench at 0.8 halved the trees but missed R-hat (1.018, ESS
#: 365). Joint with centred items (``joint_centered``): 0.8, which at 100 x 2,000 mixed
#: better per second than 0.9 (min ESS 920 in 146 s against 617 in 166 s).
TARGET_ACCEPT = {"marginal": 0.95, "joint": 0.9, "joint_centered": 0.8}
#: a fit that goes on sampling stops before its draws (all chains) would take more than
#: this: the sampler, the checks and the bank each hold a copy or part of one
TRACE_BUDGET_BYTES = 4 * 2**30

_HYPER = ("mu_b", "sigma_b", "mu_log_a", "sigma_log_a", "tau_b", "tau_log_a")
_GROUP_VARS = ("mu_b_group", "mu_log_a_group")
_STORED = ("a", "b", "theta", *_HYPER, *_GROUP_VARS)  # what a bank keeps of the posterior


class ConvergenceWarning(UserWarning):
    """A fit missed R-hat <= 1.01, ESS_bulk >= 400 or had divergences."""


def _sample(
    model: pm.Model,
    *,
    sampler: str,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    progress: bool,
    target_accept: float,
) -> xr.DataTree:
    """ADVI, or NUTS through ``pm.sample`` (PyMC's own sampler, numpyro).

    nutpie runs through :func:`_sample_nutpie_until_converged` instead.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    with model:
        if sampler == "advi":
            approx = pm.fit(
                n=max(20_000, 20 * tune),
                method="advi",
                random_seed=seed,
                progressbar=progress,
            )
            idata = approx.sample(draws * chains, random_seed=seed)
            post = idata["posterior"].to_dataset()
            post = post.isel(chain=0, drop=True).assign_coords(draw=np.arange(post.sizes[DRAW]))
            post = post.coarsen(draw=draws).construct(draw=(CHAIN, DRAW))
            post = post.assign_coords({CHAIN: np.arange(chains), DRAW: np.arange(draws)})
            return xr.DataTree.from_dict({"posterior": post})
        return pm.sample(
            draws,
            tune=tune,
            chains=chains,
            cores=min(chains, os.cpu_count() or 1),
            random_seed=seed,
            nuts_sampler=sampler,
            progressbar=progress,
            nuts={"target_accept": target_accept},
        )


def _first_draws(trace: xr.DataTree, n: int) -> xr.DataTree:
    """The first ``n`` draws of every chain (nutpie pads unfinished chains with NaN)."""
    groups = {}
    for name in ("posterior", "sample_stats"):
        if name in trace.children:
            groups[name] = trace[name].to_dataset().isel({DRAW: slice(0, n)})
    return xr.DataTree.from_dict(groups)


def _done(run: Any) -> bool:
    """Whether a background nutpie run has finished (nutpie 0.16 raises while it runs)."""
    try:
        return bool(run.is_finished)
    except TimeoutError:
        return False


def _chain_seeds(seed: int, chains: int) -> list[int]:
    """One nutpie seed per chain (each chain is a run of its own), from ``seed``."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(chains, np.uint64)]


def _affordable(trace: xr.DataTree, n: int, draws: int, max_draws: int) -> int:
    """``max_draws``, lowered in blocks of ``draws`` to keep within the trace budget.

    A warning says so when it is lowered (``TRACE_BUDGET_BYTES``).
    """
    per_draw = trace["posterior"].to_dataset().nbytes / n
    fits = max(n, int(TRACE_BUDGET_BYTES // per_draw) // draws * draws)
    if fits >= max_draws:
        return max_draws
    warnings.warn(
        f"sampling stops at {fits} draws per chain, not {max_draws}: more would hold over "
        f"{TRACE_BUDGET_BYTES / 2**30:.0f} GiB of draws ({per_draw / 2**20:.1f} MiB per draw)",
        RuntimeWarning,
        stacklevel=2,
    )
    return fits


class _Chains:
    """Chains that are nutpie runs of their own, advanced at most ``cores`` at a time.

    One run per chain lets each be paused on its own: a chain that has its draws for
    the next check yields its core to a chain behind, so no more chains than cores
    ever run (``benchmarks/README.md``: at 100 x 14,000, four chains sharing two cores
    took 17% longer per leapfrog step), and the checks run with every chain paused. A
    chain's draws depend only on its seed, never on when it was paused.
    """

    def __init__(self, compiled: Any, seeds: list[int], cores: int, bar: Any, **options):
        import nutpie

        self.cores = cores
        self.tune = options["tune"]
        self.finished = np.zeros(len(seeds), np.int64)
        self._latest: list[Any] = [None] * len(seeds)
        self._bar = bar
        self._whole: dict[int, xr.DataTree] = {}
        self.runs: list[Any] = []
        for c, chain_seed in enumerate(seeds):
            run = nutpie.sample(
                compiled, chains=1, cores=1, seed=chain_seed, blocking=False,
                progress_bar=False, progress_callback=self._on_progress(c), **options,
            )  # fmt: skip
            run.pause()  # started by ``advance``, at most ``cores`` at a time
            self.runs.append(run)

    def _on_progress(self, c: int) -> Callable[[Any], None]:
        def on_progress(states) -> None:
            self.finished[c] = states[0].finished_draws
            self._latest[c] = states[0]
            if all(s is not None for s in self._latest):
                self._bar.update(self._latest)

        return on_progress

    def advance(self, target: int) -> None:
        """Run the chains until each has ``target`` draws (tuning included), then pause."""
        running: set[int] = set()
        while True:
            for c in sorted(running):
                if self.finished[c] >= target:
                    if not _done(self.runs[c]):
                        self.runs[c].pause()
                    running.discard(c)
                elif _done(self.runs[c]):  # its last progress report may be pending
                    self.finished[c] = self.tune + self._take(c)["posterior"].sizes[DRAW]
                    if self.finished[c] < target:
                        raise RuntimeError(
                            f"nutpie chain {c} stopped after {self.finished[c]} draws"
                        )
                    running.discard(c)
            behind = [c for c in range(len(self.runs)) if self.finished[c] < target]
            if not behind:
                return
            for c in behind:
                if len(running) < self.cores and c not in running:
                    self.runs[c].resume()
                    running.add(c)
            time.sleep(0.1)

    def _take(self, c: int) -> xr.DataTree:
        """The whole trace of finished chain ``c`` (``wait`` raises what stopped it)."""
        if c not in self._whole:
            self._whole[c] = self.runs[c].wait()
        return self._whole[c]

    def first(self, n: int) -> xr.DataTree:
        """The first ``n`` draws of every chain, once each has them stored."""
        parts = []
        for c, run in enumerate(self.runs):
            for _ in range(300):  # counted draws are stored within a moment
                whole = c in self._whole or _done(run)
                trace = _first_draws(self._take(c) if whole else run.inspect(), n)
                post = trace["posterior"].to_dataset()
                first = next(iter(post.data_vars.values()))
                if first.sizes[DRAW] == n and not np.isnan(first.values).any():
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"nutpie chain {c} reported {n} draws but stored fewer")
            parts.append(trace)
        groups = {}
        for name in ("posterior", "sample_stats"):
            if name in parts[0].children:
                ds = xr.concat([p[name].to_dataset() for p in parts], dim=CHAIN)
                groups[name] = ds.assign_coords({CHAIN: np.arange(len(parts))})
        return xr.DataTree.from_dict(groups)

    def cancel(self) -> None:
        """Stop every chain still running or paused; its draws are discarded."""
        for c, run in enumerate(self.runs):
            if c not in self._whole:
                run.cancel()


def _sample_nutpie_until_converged(
    model: pm.Model,
    *,
    draws: int,
    max_draws: int,
    tune: int,
    chains: int,
    seed: int,
    progress: bool,
    target_accept: float,
    backend: str,
    converged: Callable[[xr.DataTree], bool],
) -> xr.DataTree:
    """NUTS (nutpie) in blocks of ``draws``: stop at the first block count that converged.

    The chains are checked when each has ``draws``, ``2 draws``, ... draws after
    tuning; the first ``n`` draws for which ``converged`` holds (or ``max_draws``) are
    returned and the rest of the run is stopped. A chain's draws depend only on the
    seed, not on when it was checked, so the result is the same as a run of exactly
    ``n`` draws.
    """
    import nutpie
    from pymc.progress_bar.progress import NutpieProgressBarManager

    compiled = nutpie.compile_pymc_model(
        model,
        backend=backend,
        gradient_backend="jax" if backend == "jax" else "pytensor",
        var_names=[v for v in _STORED if v in model.named_vars],  # not the sampler's frame
    )
    bar = NutpieProgressBarManager(chains=chains, draws=max_draws, progressbar=progress)
    with bar:
        runs = _Chains(
            compiled, _chain_seeds(seed, chains), min(chains, os.cpu_count() or 1), bar,
            draws=max_draws, tune=tune, save_warmup=False, target_accept=target_accept,
        )  # fmt: skip
        n = draws
        try:
            while True:
                runs.advance(tune + n)
                trace = runs.first(n)
                if n >= max_draws or converged(trace):
                    return trace
                max_draws = _affordable(trace, n, draws, max_draws)
                n = min(n + draws, max_draws)
        finally:
            runs.cancel()


def _with_constant_items(
    post: xr.Dataset, const: ConstantItems | None, data: ResponseMatrix, seed: int
) -> xr.Dataset:
    """Add the integrated constant items' exact posterior draws to ``a`` and ``b``.

    Their conditional posterior given the abilities and the item population is the
    same on every scale, so it is drawn on the reported one, from the reported
    ``theta``, ``mu_b``, ``sigma_b``, ``mu_log_a``, ``sigma_log_a`` (or the group
    means). The items come back in the order of ``data``.
    """
    if const is None:
        return post
    flat = post.stack(sample=(CHAIN, DRAW)).transpose("sample", ...)
    if const.group is None:
        loc_b = np.repeat(flat["mu_b"].values[:, None], len(const.counts), axis=1)
        loc_la = np.repeat(flat["mu_log_a"].values[:, None], len(const.counts), axis=1)
    else:
        loc_b = flat["mu_b_group"].transpose("sample", GROUP).values[:, const.group]
        loc_la = flat["mu_log_a_group"].transpose("sample", GROUP).values[:, const.group]
    a, b = draw_constant_items(
        flat["theta"].transpose("sample", SUBJECT).values,
        loc_b,
        flat["sigma_b"].values,
        loc_la,
        flat["sigma_log_a"].values,
        const,
        np.random.default_rng([seed, 20252]),
    )
    shape = (post.sizes[CHAIN], post.sizes[DRAW], const.n_items)
    names = [data.items[j] for j in const.items]
    dims = (CHAIN, DRAW, ITEM)
    extra = xr.Dataset(
        {"a": (dims, a.reshape(shape)), "b": (dims, b.reshape(shape))},
        coords={CHAIN: post[CHAIN], DRAW: post[DRAW], ITEM: names},
    )
    items = xr.concat([post[["a", "b"]], extra], dim=ITEM).sel({ITEM: list(data.items)})
    return post.drop_dims(ITEM).assign(a=items["a"], b=items["b"])


def ability_draws_on_grid(
    values: np.ndarray,
    a: xr.DataArray,
    b: xr.DataArray,
    *,
    n_grid: int,
    rng: np.random.Generator,
    chunk: int = 64,
) -> np.ndarray:
    """Draw each subject's ability from its exact grid posterior, per posterior draw.

    Used by the marginal likelihood, where abilities are integrated out while
    sampling. A uniform jitter within the grid cell makes the draws continuous.

    Returns
    -------
    numpy.ndarray
        Shape ``(chain, draw, subject)``.
    """
    patterns, _ = irt.unique_patterns(values)
    coded = np.where(np.isnan(values), -1, values).astype(np.int8)
    pcoded = np.where(np.isnan(patterns), -1, patterns).astype(np.int8)
    index = {row.tobytes(): k for k, row in enumerate(pcoded)}
    which = np.array([index[row.tobytes()] for row in coded])
    nodes, logw = irt.normal_grid(n_grid)
    step = nodes[1] - nodes[0]
    av = a.transpose(CHAIN, DRAW, ITEM).values
    bv = b.transpose(CHAIN, DRAW, ITEM).values
    n_chain, n_draw = av.shape[:2]
    flat_a, flat_b = av.reshape(-1, av.shape[-1]), bv.reshape(-1, bv.shape[-1])
    out = np.empty((flat_a.shape[0], values.shape[0]))
    for start in range(0, flat_a.shape[0], chunk):
        sl = slice(start, start + chunk)
        logpost = irt.grid_log_posterior(patterns, flat_a[sl], flat_b[sl], nodes, logw)
        cdf = np.cumsum(np.exp(logpost), axis=-1)[:, which, :]  # (chunk, subjects, grid)
        u = rng.random(cdf.shape[:2])[..., None]
        k = np.minimum((cdf < u).sum(axis=-1), n_grid - 1)
        out[sl] = nodes[k] + step * (rng.random(k.shape) - 0.5)
    return out.reshape(n_chain, n_draw, values.shape[0])


def _subject_summary(theta: xr.DataArray, data: ResponseMatrix) -> xr.Dataset:
    hdi = az.hdi(theta.to_dataset(name="theta"), prob=HDI_PROB)["theta"]
    return xr.Dataset(
        {
            "theta_mean": theta.mean((CHAIN, DRAW)),
            "theta_sd": theta.std((CHAIN, DRAW), ddof=1),
            "theta_hdi_low": hdi.sel(ci_bound="lower", drop=True),
            "theta_hdi_high": hdi.sel(ci_bound="upper", drop=True),
            "accuracy": (SUBJECT, data.accuracy().to_numpy(float)),
            "n_answered": (SUBJECT, data.mask.sum(axis=1).astype(np.int64)),
        }
    )


def _check_memory(opts: SamplerOptions, data: ResponseMatrix) -> None:
    """Refuse, before compiling or sampling, draws that cannot fit in memory.

    Raises
    ------
    OptionError
        The stored draws (8 bytes per value) would pass the available memory.
    """
    n_values = 2 * data.n_items + data.n_subjects + len(_HYPER)
    need = opts.trace_bytes(n_values, budget=TRACE_BUDGET_BYTES)
    per_chain = need // (8 * n_values * opts.chains)
    require_memory(
        need,
        what=f"the draws ({per_chain:,} per chain x {opts.chains} chains x {n_values:,} "
        f"values: a and b of {data.n_items:,} items, {data.n_subjects:,} abilities and "
        f"{len(_HYPER)} hyperparameters)",
        hint="lower draws, max_draws or chains",
    )


def run_fit(
    spec: HierarchicalTwoPL,
    data: ResponseMatrix,
    *,
    sampler: str = "nutpie",
    draws: int | None = None,
    tune: int = DEFAULT_TUNE,
    chains: int = DEFAULT_CHAINS,
    seed: int = 0,
    progress: bool = False,
    target_accept: float | None = None,
    strict: bool = False,
    backend: str = "auto",
    max_draws: int | None = None,
) -> ItemBank:
    """Fit ``spec`` to ``data``; see :meth:`HierarchicalTwoPL.fit` for the arguments.

    Returns
    -------
    ItemBank
        Posterior of ``a``, ``b``, the calibration abilities ``theta`` and the
        hyperparameters, with diagnostics and provenance.
    """
    opts = SamplerOptions(
        sampler=sampler, draws=draws, max_draws=max_draws, tune=tune, chains=chains,
        seed=seed, progress=progress, target_accept=target_accept, strict=strict,
        backend=backend,
    )  # fmt: skip
    _check_memory(opts, data)
    draws, max_draws = opts.resolved_draws()
    likelihood = spec.resolve_likelihood(data)
    if target_accept is None:
        key = likelihood
        if likelihood == "joint" and spec.resolve_centered(data):
            key = "joint_centered"
        target_accept = TARGET_ACCEPT[key]
    if backend == "auto":
        backend = "numba"
    model = spec.build(data)
    const = spec.integrated_items(data)
    sampled = [
        v for v in _STORED if v in model.named_vars and (v != "theta" or likelihood == "joint")
    ]

    checks: dict[int, ConvergenceReport] = {}  # by number of draws

    def converged(trace: xr.DataTree) -> bool:
        report = check_convergence(trace, var_names=sampled, sampler=sampler)
        checks[trace["posterior"].sizes[DRAW]] = report
        return bool(report.max_rhat <= RHAT_MAX and report.min_ess_bulk >= ESS_MIN)

    options = {"draws": draws, "tune": tune, "chains": chains, "seed": seed,
               "progress": progress, "target_accept": target_accept}  # fmt: skip
    if sampler == "nutpie":
        raw = _sample_nutpie_until_converged(
            model, max_draws=max_draws, backend=backend, converged=converged, **options
        )
    else:
        raw = _sample(model, sampler=sampler, **options)
    full = raw["posterior"].to_dataset()
    keep = [v for v in _STORED if v in full]
    post = _with_constant_items(full[keep], const, data, seed)
    checked = [v for v in keep if v != "theta" or likelihood == "joint"]
    if sampler == "advi":
        nan = float("nan")
        report = ConvergenceReport(nan, nan, nan, 0, nan, (), sampler="advi", approximate=True)
    elif const is None and checked == sampled and full.sizes[DRAW] in checks:
        report = checks[full.sizes[DRAW]]  # these very draws were checked while sampling
    else:
        groups = {g: raw[g].to_dataset() for g in raw.children}
        groups["posterior"] = post  # with the constant items' draws
        report = check_convergence(
            xr.DataTree.from_dict(groups), var_names=checked, sampler=sampler
        )
    if likelihood == "marginal":
        rng = np.random.default_rng([seed, 20251])
        theta = ability_draws_on_grid(
            data.values, post["a"], post["b"], n_grid=spec.n_grid, rng=rng
        )
        post["theta"] = xr.DataArray(
            theta,
            dims=(CHAIN, DRAW, SUBJECT),
            coords={SUBJECT: list(data.subjects)},
        )
    post = post.transpose(CHAIN, DRAW, ...)
    groups: dict[str, xr.Dataset] = {
        "posterior": post,
        "subjects": _subject_summary(post["theta"], data),
    }
    if "sample_stats" in raw.children:
        stats = raw["sample_stats"].to_dataset()
        groups["sample_stats"] = stats[
            [v for v in ("diverging", "energy", "step_size", "n_steps", "tree_depth") if v in stats]
        ]
    if data.item_meta is not None and len(data.item_meta.columns):
        groups["items"] = items_dataset(data.item_meta.reindex(list(data.items)))
    config = spec.to_dict()
    fingerprint = data.fingerprint()
    meta = BankMeta(
        model_type=spec.model_type,
        kind="approximate" if sampler == "advi" else "posterior",
        config=config,
        config_hash=bank_hash(config, fingerprint),
        data_fingerprint=fingerprint,
        sampler={
            "sampler": sampler,
            "likelihood": likelihood,
            "draws": int(full.sizes[DRAW]),
            "min_draws": draws,
            "max_draws": max_draws if sampler == "nutpie" else draws,
            "tune": tune,
            "chains": chains,
            "seed": seed,
            "target_accept": target_accept,
            "backend": backend,
            "n_subjects": data.n_subjects,
            "constant_items_integrated": 0 if const is None else const.n_items,
        },
        convergence=report.to_dict(),
        data_report=data.report.to_dict(),
        source=data.report.source,
    )
    bank = ItemBank(tree=xr.DataTree.from_dict(groups), meta=meta).with_observed(data)
    if not report.ok:
        if strict:
            raise ConvergenceError(str(report))
        warnings.warn(str(report), ConvergenceWarning, stacklevel=3)
    return bank


def items_frame(bank: ItemBank) -> pd.DataFrame:
    """Item table of a bank joined with its metadata (for notebooks)."""
    return bank.summary().join(bank.item_meta)
