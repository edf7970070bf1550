"""Convergence diagnostics of a fit, computed by ArviZ.

The thresholds follow current practice (Vehtari et al. 2021): rank-normalized split
R-hat <= 1.01, bulk ESS >= 400, no divergent transitions; an E-BFMI below 0.3 is reported
as a warning sign of poor energy exploration.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

from fluid_bayes.calibration.diagworker import per_parameter
from fluid_bayes.dims import CHAIN, DRAW

__all__ = [
    "BFMI_MIN",
    "ConvergenceReport",
    "ESS_MIN",
    "RHAT_MAX",
    "check_convergence",
]

RHAT_MAX = 1.01
ESS_MIN = 400.0
BFMI_MIN = 0.3
_N_WORST = 5
#: parameters per process of the R-hat/ESS computation (fewer: computed in-process)
PARAMS_PER_WORKER = 1000


@dataclass(frozen=True)
class ConvergenceReport:
    """Convergence of one fit.

    Attributes
    ----------
    max_rhat, min_ess_bulk, min_ess_tail : float
        Worst values over all checked parameters (NaN when not computable, e.g. 1 chain).
    divergences : int
        Divergent transitions after tuning, all chains.
    min_bfmi : float
        Smallest E-BFMI over chains (NaN when the sampler reports no energy).
    worst : tuple of (str, float, float)
        Up to five ``(parameter, rhat, ess_bulk)`` with the lowest ESS / highest R-hat.
    sampler : str
        What produced the draws; approximations are labelled as such.
    approximate : bool
        True for variational fits (ADVI) and point banks: R-hat/ESS do not apply.
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    min_bfmi: float
    worst: tuple[tuple[str, float, float], ...]
    sampler: str = "nuts"
    approximate: bool = False

    @property
    def ok(self) -> bool:
        """Whether the fit meets R-hat <= 1.01, ESS_bulk >= 400 and has no divergences."""
        if self.approximate:
            return False
        return bool(
            self.max_rhat <= RHAT_MAX and self.min_ess_bulk >= ESS_MIN and self.divergences == 0
        )

    def problems(self) -> list[str]:
        """Human-readable list of every missed criterion (empty when converged)."""
        if self.approximate:
            return [f"{self.sampler} is an approximation: no MCMC convergence guarantee"]
        out = []
        if not self.max_rhat <= RHAT_MAX:
            out.append(f"max R-hat {self.max_rhat:.3f} > {RHAT_MAX}")
        if not self.min_ess_bulk >= ESS_MIN:
            out.append(f"min bulk ESS {self.min_ess_bulk:.0f} < {ESS_MIN:.0f}")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions")
        if self.min_bfmi < BFMI_MIN:
            out.append(f"E-BFMI {self.min_bfmi:.2f} < {BFMI_MIN}")
        return out

    def __str__(self) -> str:
        head = (
            f"convergence ({self.sampler}): max R-hat {self.max_rhat:.3f}, "
            f"min ESS bulk {self.min_ess_bulk:.0f}, tail {self.min_ess_tail:.0f}, "
            f"divergences {self.divergences}, min E-BFMI {self.min_bfmi:.2f}"
        )
        if self.ok:
            return head + " -- OK"
        worst = ", ".join(f"{p} (R-hat {r:.3f}, ESS {e:.0f})" for p, r, e in self.worst)
        lines = [head, "WARNING: NOT CONVERGED: " + "; ".join(self.problems())]
        if worst:
            lines.append("worst parameters: " + worst)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able dict of every field (worst as a list of dicts)."""
        d = dataclasses.asdict(self)
        d["worst"] = [{"parameter": p, "rhat": r, "ess_bulk": e} for p, r, e in self.worst]
        d["ok"] = self.ok
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ConvergenceReport:
        """Inverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        kw["worst"] = tuple((w["parameter"], w["rhat"], w["ess_bulk"]) for w in d["worst"])
        return cls(**kw)


def _matrix(post: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """Every parameter's draws as one ``(chain, draw, parameter)`` array, with labels."""
    blocks, labels = [], []
    for name, da in post.data_vars.items():
        dims = [d for d in da.dims if d not in (CHAIN, DRAW)]
        if not dims:
            blocks.append(da.transpose(CHAIN, DRAW).values[..., None])
            labels.append(str(name))
            continue
        flat = da.stack(_p=dims).transpose(CHAIN, DRAW, "_p")
        blocks.append(flat.values)
        labels.extend(
            f"{name}[{', '.join(str(c) for c in (k if isinstance(k, tuple) else (k,)))}]"
            for k in flat.indexes["_p"]
        )
    return np.concatenate([np.asarray(b, dtype=float) for b in blocks], axis=-1), labels


def _workers(n_params: int) -> int:
    """Processes for the per-parameter diagnostics.

    One per core, at most one per ``PARAMS_PER_WORKER`` parameters (a child takes
    ~1.5 s to import ArviZ).
    """
    return max(1, min(_cores(), n_params // PARAMS_PER_WORKER))


def _cores() -> int:
    """CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _per_parameter(values: np.ndarray) -> np.ndarray:
    """R-hat, bulk ESS and tail ESS (shape ``(3, parameter)``), blocks in parallel.

    The first block is computed here, the others by ``diagworker.py`` run as scripts
    in child processes; a child that fails is reported and its block recomputed here.
    """
    blocks = np.array_split(np.arange(values.shape[-1]), _workers(values.shape[-1]))
    if len(blocks) == 1:
        return per_parameter(values)
    with tempfile.TemporaryDirectory(prefix="fluid_bayes_diag_") as tmp:
        children = []
        for k, idx in enumerate(blocks[1:], start=1):
            src, dst = Path(tmp) / f"in{k}.npy", Path(tmp) / f"out{k}.npy"
            np.save(src, values[..., idx])
            cmd = [sys.executable, str(Path(__file__).with_name("diagworker.py")), src, dst]
            children.append((idx, dst, subprocess.Popen(cmd, stderr=subprocess.PIPE)))
        out = [per_parameter(values[..., blocks[0]])]
        for idx, dst, child in children:
            _, err = child.communicate()
            if child.returncode == 0:
                out.append(np.load(dst))
                continue
            warnings.warn(
                f"diagnostics worker failed (exit {child.returncode}): "
                f"{err.decode(errors='replace').strip()[-500:]}; computed in this process",
                RuntimeWarning,
                stacklevel=3,
            )
            out.append(per_parameter(values[..., idx]))
    return np.concatenate(out, axis=1)


def check_convergence(
    idata: xr.DataTree, *, var_names: list[str], sampler: str = "nuts"
) -> ConvergenceReport:
    """Compute R-hat, bulk/tail ESS, divergences and E-BFMI with ArviZ.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of sampling with ``posterior`` (and ``sample_stats``) groups.
    var_names : list of str
        Posterior variables to check (item parameters, hyperparameters, abilities).
    sampler : str
        Label stored in the report.

    Returns
    -------
    ConvergenceReport
    """
    post = idata["posterior"].to_dataset()[var_names]
    n_chains, n_draws = post.sizes[CHAIN], post.sizes[DRAW]
    if n_chains * n_draws < 8:
        nan = float("nan")
        return ConvergenceReport(nan, nan, nan, 0, nan, (), sampler=sampler)
    values, labels = _matrix(post)
    rhat, ess_bulk, ess_tail = _per_parameter(values)
    divergences, bfmi = 0, float("nan")
    if "sample_stats" in idata.children:
        stats = idata["sample_stats"].to_dataset()
        if "diverging" in stats:
            divergences = int(stats["diverging"].sum())
        if "energy" in stats:
            bfmi = float(az.bfmi(idata)["energy"].min())
    # worst first: R-hat misses (highest first), then the lowest bulk ESS
    rhat_miss = np.nan_to_num(rhat, nan=np.inf) > RHAT_MAX
    order = np.lexsort((ess_bulk, -np.nan_to_num(rhat, nan=np.inf), ~rhat_miss))[:_N_WORST]
    worst = tuple((labels[i], float(rhat[i]), float(ess_bulk[i])) for i in order)
    return ConvergenceReport(
        max_rhat=float(np.nanmax(rhat)) if np.isfinite(rhat).any() else float("nan"),
        min_ess_bulk=float(np.nanmin(ess_bulk)),
        min_ess_tail=float(np.nanmin(ess_tail)),
        divergences=divergences,
        min_bfmi=bfmi,
        worst=worst,
        sampler=sampler,
    )
