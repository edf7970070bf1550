"""Sampler options of a calibration fit: defaults, allowed values, memory they need.

Pure Python (no PyMC, PyTensor or ArviZ): the command line builds its sampler flags
from the fields of :class:`SamplerOptions` without importing the model, and
:mod:`fluid_bayes.calibration.model` and :mod:`~fluid_bayes.calibration.fitting` take
their defaults from here. :func:`~fluid_bayes.calibration.fitting.run_fit` checks its
arguments by building a :class:`SamplerOptions` and estimates the memory of the draws
(:meth:`SamplerOptions.trace_bytes`) before anything is compiled or sampled.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from fluid_bayes.exceptions import OptionError
from fluid_bayes.ranges import COUNT, SEED, Range, check_fields, option

__all__ = [
    "BACKENDS",
    "DEFAULT_CHAINS",
    "DEFAULT_DRAWS",
    "DEFAULT_TUNE",
    "MAX_DRAWS_FACTOR",
    "SAMPLERS",
    "SamplerOptions",
    "available_memory",
    "require_memory",
]

#: tuning steps per chain by default. Measured with the sampled-items frame: ChemBench
#: converged alike after 500 and 1,000 (R-hat 1.0076 and 1.0087, min bulk ESS 580 and
#: 563) in 91 s instead of 122 s (``benchmarks/README.md``)
DEFAULT_TUNE = 500
#: posterior draws per chain by default; with nutpie a default fit that misses R-hat <=
#: 1.01 or bulk ESS >= 400 goes on sampling the same chains in blocks of this many, up to
#: ``MAX_DRAWS_FACTOR`` times as many (fewer if the draws would pass
#: ``fitting.TRACE_BUDGET_BYTES``). Measured: MMLU-Redux's spread of log discriminations
#: mixed at a bulk ESS of 120-155 per 1,000 draws x 4 chains under every parametrization
#: tried and converged after 4,000-5,000 (``benchmarks/README.md``); ChemBench, LSAT-7 and the
#: simulated cases converge at the first check
DEFAULT_DRAWS = 1000
MAX_DRAWS_FACTOR = 8
DEFAULT_CHAINS = 4
SAMPLERS = ("nutpie", "pymc", "numpyro", "advi")
BACKENDS = ("auto", "jax", "numba")
_OPTIONAL_COUNT = dataclasses.replace(COUNT, optional=True)


@dataclass(frozen=True, kw_only=True)
class SamplerOptions:
    """How a calibration samples (the keyword arguments of ``HierarchicalTwoPL.fit``).

    Every field's metadata holds its help text and allowed values; the command line
    builds ``--sampler``, ``--draws``, ... from them.

    Attributes
    ----------
    sampler : {"nutpie", "pymc", "numpyro", "advi"}
        NUTS implementation, or ADVI (a labelled approximation).
    draws : int, optional
        Posterior draws per chain (>= 1); default :data:`DEFAULT_DRAWS`, extended with
        nutpie up to ``max_draws`` until converged.
    max_draws : int, optional
        nutpie: most draws per chain when the first ``draws`` miss the criteria.
    tune : int
        Tuning steps per chain (>= 1).
    chains : int
        Number of chains (>= 1).
    seed : int
        Random seed (>= 0).
    target_accept : float, optional
        NUTS target acceptance rate in (0, 1); default by likelihood.
    backend : {"auto", "jax", "numba"}
        nutpie's log-density backend.
    strict : bool
        Raise ``ConvergenceError`` unless converged.
    progress : bool
        Show the sampler's progress bar.
    """

    sampler: str = option(
        "nutpie", "NUTS backend, or 'advi' (a labelled approximation)", choices=SAMPLERS
    )
    draws: int | None = option(
        None,
        f"posterior draws per chain (default {DEFAULT_DRAWS}, and with nutpie more, in "
        f"blocks of {DEFAULT_DRAWS}, until R-hat and bulk ESS pass, up to --max-draws; "
        "a number given here is sampled exactly)",
        range=_OPTIONAL_COUNT,
    )
    max_draws: int | None = option(
        None,
        "nutpie: if R-hat or bulk ESS miss after --draws, go on in blocks of --draws "
        f"up to this many per chain (default {MAX_DRAWS_FACTOR * DEFAULT_DRAWS} with the "
        "default --draws, else --draws)",
        range=_OPTIONAL_COUNT,
    )
    tune: int = option(DEFAULT_TUNE, "tuning steps per chain", range=COUNT)
    chains: int = option(DEFAULT_CHAINS, "chains (nutpie runs one per core at a time)", range=COUNT)
    seed: int = option(0, "random seed", range=SEED)
    target_accept: float | None = option(
        None,
        "NUTS target acceptance (default 0.95 marginal; joint 0.9, 0.8 with centred items)",
        range=Range(float, 0.0, 1.0, low_open=True, high_open=True, optional=True),
    )
    backend: str = option(
        "auto",
        "log-density backend for nutpie (auto: numba, whose chains run in parallel)",
        choices=BACKENDS,
    )
    strict: bool = option(
        False, "fail (exit 3, no bank written) unless R-hat <= 1.01, ESS >= 400, no divergences"
    )
    progress: bool = option(
        False, "show the sampler's progress bar (default: when stderr is a terminal)"
    )

    def __post_init__(self) -> None:
        check_fields(self)
        draws, max_draws = self.resolved_draws()
        if max_draws < draws:
            raise OptionError(f"max_draws ({max_draws}) must be at least draws ({draws})")

    def resolved_draws(self) -> tuple[int, int]:
        """``(draws, max_draws)`` per chain with the defaults filled in.

        Returns
        -------
        (int, int)
            Draws of the first block; most draws per chain (nutpie; the other samplers
            draw exactly ``draws``).
        """
        if self.draws is None:
            default_max = MAX_DRAWS_FACTOR * DEFAULT_DRAWS
            return DEFAULT_DRAWS, default_max if self.max_draws is None else self.max_draws
        return self.draws, self.draws if self.max_draws is None else self.max_draws

    def to_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of ``HierarchicalTwoPL.fit``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def trace_bytes(self, n_values: int, *, budget: int | None = None) -> int:
        """Most memory the stored draws can take, in bytes (8 per value).

        Parameters
        ----------
        n_values : int
            Values stored per draw: ``2 * n_items + n_subjects`` plus hyperparameters.
        budget : int, optional
            Trace budget a default nutpie run stops extending at (bytes).

        Returns
        -------
        int
            ``chains * draws_cap * n_values * 8``, where ``draws_cap`` is ``max_draws``
            with nutpie (lowered to the budget when the draws were not given), else
            ``draws``.
        """
        draws, max_draws = self.resolved_draws()
        per_draw = self.chains * int(n_values) * 8
        cap = max_draws if self.sampler == "nutpie" else draws
        if self.draws is None and budget is not None:
            cap = min(cap, max(draws, budget // per_draw))
        return cap * per_draw


def available_memory() -> int | None:
    """Memory available to a new allocation, in bytes (``None`` where unknown).

    Returns
    -------
    int or None
        ``MemAvailable`` of ``/proc/meminfo`` on Linux, else free physical pages.
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def require_memory(n_bytes: int, *, what: str, hint: str) -> None:
    """Refuse to start work that would need more memory than is available.

    Parameters
    ----------
    n_bytes : int
        Estimated memory of the work.
    what : str
        What needs it, e.g. ``"draws 1000000 x 4 chains x 2,003 values"``.
    hint : str
        What to lower, e.g. ``"lower draws or chains"``.

    Raises
    ------
    OptionError
        ``n_bytes`` exceeds :func:`available_memory`.
    """
    free = available_memory()
    if free is not None and n_bytes > free:
        raise OptionError(
            f"{what} would need {_size(n_bytes)} of memory, but {_size(free)} is available; {hint}"
        )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError  # pragma: no cover
