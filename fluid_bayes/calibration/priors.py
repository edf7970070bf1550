"""Priors of the hierarchical 2PL: small frozen objects with documented defaults.

Each prior builds its PyMC variable (``to_pymc``) or unnamed distribution (``dist``);
:class:`Priors` holds the model's hyperpriors, merges user overrides and round-trips
through the JSON a bank stores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

__all__ = ["Gamma", "HalfNormal", "Normal", "Prior", "Priors"]


@dataclass(frozen=True)
class Normal:
    """Normal prior ``N(mu, sigma)``."""

    mu: float = 0.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.mu) and self.sigma > 0):
            raise ValueError(f"Normal prior needs finite mu and sigma > 0, got {self}")

    def to_pymc(self, name: str, **kwargs: Any) -> pt.TensorVariable:
        """Create the PyMC variable inside the current model context."""
        return pm.Normal(name, mu=self.mu, sigma=self.sigma, **kwargs)

    def dist(self) -> pt.TensorVariable:
        """The unnamed distribution (for ``pm.logp``)."""
        return pm.Normal.dist(mu=self.mu, sigma=self.sigma)


@dataclass(frozen=True)
class HalfNormal:
    """Half-normal prior on a positive scale, ``|N(0, sigma)|``."""

    sigma: float = 1.0

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"HalfNormal prior needs sigma > 0, got {self}")

    def to_pymc(self, name: str, **kwargs: Any) -> pt.TensorVariable:
        """Create the PyMC variable inside the current model context."""
        return pm.HalfNormal(name, sigma=self.sigma, **kwargs)

    def dist(self) -> pt.TensorVariable:
        """The unnamed distribution (for ``pm.logp``)."""
        return pm.HalfNormal.dist(sigma=self.sigma)


@dataclass(frozen=True)
class Gamma:
    """Gamma prior on a positive scale (shape ``alpha``, rate ``beta``).

    With ``alpha = 2`` it is the boundary-avoiding prior of Chung et al. (2013) for
    group-level standard deviations: zero density at 0, so a population spread is
    not collapsed when few items inform it (LSAT's five), while thousands of items
    overwhelm it.
    """

    alpha: float = 2.0
    beta: float = 1.0

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.beta > 0):
            raise ValueError(f"Gamma prior needs alpha > 0 and beta > 0, got {self}")

    def to_pymc(self, name: str, **kwargs: Any) -> pt.TensorVariable:
        """Create the PyMC variable inside the current model context."""
        return pm.Gamma(name, alpha=self.alpha, beta=self.beta, **kwargs)

    def dist(self) -> pt.TensorVariable:
        """The unnamed distribution (for ``pm.logp``)."""
        return pm.Gamma.dist(alpha=self.alpha, beta=self.beta)


Prior = Normal | HalfNormal | Gamma
_PRIOR_TYPES = {"Normal": Normal, "HalfNormal": HalfNormal, "Gamma": Gamma}


@dataclass(frozen=True)
class Priors:
    """Hyperpriors of the hierarchical 2PL, on the ability scale.

    Defaults are weakly informative for benchmark items: difficulties anywhere within
    a few SDs of the calibration models, discriminations mostly within [0.2, 5].

    Attributes
    ----------
    mu_b : Normal
        Mean difficulty, default N(0, 2).
    sigma_b : Gamma
        Spread of difficulties, default Gamma(2, 1) (mean 2, mode 1).
    mu_log_a : Normal
        Mean log discrimination, default N(0, 1).
    sigma_log_a : Gamma
        Spread of log discriminations, default Gamma(4, 4) (mean 1, mode 0.75).
    tau_b, tau_log_a : HalfNormal
        Spread of group means around the global ones (used only with grouping),
        defaults HalfNormal(1) and HalfNormal(0.5).
    """

    mu_b: Normal = field(default_factory=lambda: Normal(0.0, 2.0))
    sigma_b: Gamma = field(default_factory=lambda: Gamma(2.0, 1.0))
    mu_log_a: Normal = field(default_factory=lambda: Normal(0.0, 1.0))
    sigma_log_a: Gamma = field(default_factory=lambda: Gamma(4.0, 4.0))
    tau_b: HalfNormal = field(default_factory=lambda: HalfNormal(1.0))
    tau_log_a: HalfNormal = field(default_factory=lambda: HalfNormal(0.5))

    def updated(self, overrides: dict[str, Any] | None) -> Priors:
        """Return a copy with user overrides merged over these priors.

        Parameters
        ----------
        overrides : dict
            ``{name: prior}`` where prior is a prior object or a dict such as
            ``{"dist": "Normal", "mu": 0, "sigma": 3}`` (the form :meth:`to_dict` writes).
        """
        if not overrides:
            return self
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown prior(s) {unknown}; known: {sorted(known)}")
        parsed = {k: _parse_prior(k, v) for k, v in overrides.items()}
        return dataclasses.replace(self, **parsed)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-able form: ``{name: {"dist": ..., **params}}``."""
        return {
            f.name: {"dist": type(getattr(self, f.name)).__name__}
            | dataclasses.asdict(getattr(self, f.name))
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Priors:
        """Inverse of :meth:`to_dict` (missing names keep their defaults)."""
        return cls().updated(d)


def _parse_prior(name: str, value: Any) -> Prior:
    if isinstance(value, Normal | HalfNormal | Gamma):
        return value
    if isinstance(value, dict) and value.get("dist") in _PRIOR_TYPES:
        params = {k: float(v) for k, v in value.items() if k != "dist"}
        return _PRIOR_TYPES[value["dist"]](**params)
    raise ValueError(
        f"prior {name!r}: expected Normal/HalfNormal or a dict with 'dist', got {value!r}"
    )
