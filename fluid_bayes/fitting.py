"""Fitting a :class:`~fluid_bayes.model.HierarchicalTwoPL` to answers: the item bank.

Kept apart from the model specification (cmdstanpy's model / fit split): the spec
stores settings, :func:`run_fit` samples and returns a new :class:`ItemBank`.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from . import irt
from ._constant import draw_constant_items
from ._constants import CHAIN, DRAW, GROUP, HDI_PROB, ITEM, SUBJECT
from .bank import BankMeta, ItemBank, _items_dataset, bank_hash
from .diagnostics import ConvergenceReport, check_convergence
from .exceptions import ConvergenceError
from .model import DEFAULT_TUNE, SAMPLERS

if TYPE_CHECKING:
    from ._constant import ConstantItems
    from .model import HierarchicalTwoPL
    from .responses import ResponseMatrix

__all__ = ["TARGET_ACCEPT", "ConvergenceWarning", "items_frame", "run_fit"]

#: default NUTS target acceptance per likelihood (``benchmarks/README.md``). Marginal:
#: 0.95, because LSAT-7 at 0.9 had 1 divergent transition in 4,000 draws and none at
#: 0.95, in less time (13.7 s vs 16.8 s). Joint with non-centred items (few answers per
#: item): 0.9, since ChemBench at 0.8 halved the trees but missed R-hat (1.018, ESS
#: 365). Joint with centred items (``joint_centered``): 0.8, which at 100 x 2,000 mixed
#: better per second than 0.9 (min ESS 920 in 146 s against 617 in 166 s).
TARGET_ACCEPT = {"marginal": 0.95, "joint": 0.9, "joint_centered": 0.8}

_HYPER = ("mu_b", "sigma_b", "mu_log_a", "sigma_log_a", "tau_b", "tau_log_a")
_GROUP_VARS = ("mu_b_group", "mu_log_a_group")


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
    backend: str,
) -> xr.DataTree:
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
        extra = {}
        if sampler == "nutpie":
            extra["compile_kwargs"] = {
                "backend": backend,
                "gradient_backend": "jax" if backend == "jax" else "pytensor",
            }
        return pm.sample(
            draws,
            tune=tune,
            chains=chains,
            cores=min(chains, os.cpu_count() or 1),
            random_seed=seed,
            nuts_sampler=sampler,
            progressbar=progress,
            nuts={"target_accept": target_accept},
            **extra,
        )


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


def run_fit(
    spec: HierarchicalTwoPL,
    data: ResponseMatrix,
    *,
    sampler: str = "nutpie",
    draws: int = 1000,
    tune: int = DEFAULT_TUNE,
    chains: int = 4,
    seed: int = 0,
    progress: bool = False,
    target_accept: float | None = None,
    strict: bool = False,
    backend: str = "auto",
) -> ItemBank:
    """Fit ``spec`` to ``data``; see :meth:`HierarchicalTwoPL.fit` for the arguments.

    Returns
    -------
    ItemBank
        Posterior of ``a``, ``b``, the calibration abilities ``theta`` and the
        hyperparameters, with diagnostics and provenance.
    """
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
    raw = _sample(
        model,
        sampler=sampler,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progress=progress,
        target_accept=target_accept,
        backend=backend,
    )
    full = raw["posterior"].to_dataset()
    keep = [v for v in ("a", "b", "theta", *_HYPER, *_GROUP_VARS) if v in full]
    post = _with_constant_items(full[keep], const, data, seed)
    checked = [v for v in keep if v != "theta" or likelihood == "joint"]
    if sampler == "advi":
        nan = float("nan")
        report = ConvergenceReport(nan, nan, nan, 0, nan, (), sampler="advi", approximate=True)
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
        groups["items"] = _items_dataset(data.item_meta.reindex(list(data.items)))
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
            "draws": draws,
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
