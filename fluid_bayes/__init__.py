"""fluid_bayes: Bayesian adaptive benchmarking of language models.

Fluid Benchmarking (Hofmann et al., COLM 2025) done the Bayesian way: a hierarchical
2PL item-response model in PyMC whose item parameters are kept as posterior draws.

The package is laid out by stage (see ``ARCHITECTURE.md``): :mod:`fluid_bayes.data`
(readers, response matrix), :mod:`fluid_bayes.calibration` (the PyMC model and its fit),
:mod:`fluid_bayes.bank` (the fitted item bank), :mod:`fluid_bayes.adaptive` (sessions and
replay), :mod:`fluid_bayes.study` (the paper's experiments), :mod:`fluid_bayes.upkeep`
(model checking, refit, drift), :mod:`fluid_bayes.harness` (live evaluation through
lm-evaluation-harness and Inspect) and :mod:`fluid_bayes.cli`. The public names below are
imported on first use, so ``import fluid_bayes`` (and ``fluid-bayes --help``) load no
PyMC, PyTensor, JAX or ArviZ until something needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first attribute access).
_EXPORTS = {
    "BankArrays": "fluid_bayes.adaptive.selection",
    "BankError": "fluid_bayes.exceptions",
    "BankMeta": "fluid_bayes.bank",
    "ConvergenceError": "fluid_bayes.exceptions",
    "ConvergenceReport": "fluid_bayes.calibration.diagnostics",
    "DataError": "fluid_bayes.exceptions",
    "DataReport": "fluid_bayes.data.responses",
    "ExperimentResult": "fluid_bayes.study.experiment",
    "FluidBayesError": "fluid_bayes.exceptions",
    "Gamma": "fluid_bayes.calibration.model",
    "HalfNormal": "fluid_bayes.calibration.model",
    "HierarchicalTwoPL": "fluid_bayes.calibration.model",
    "ItemBank": "fluid_bayes.bank",
    "MislabelReport": "fluid_bayes.upkeep.mislabels",
    "Normal": "fluid_bayes.calibration.model",
    "OptionError": "fluid_bayes.exceptions",
    "Priors": "fluid_bayes.calibration.model",
    "ReplayResult": "fluid_bayes.adaptive.replay",
    "ResponseMatrix": "fluid_bayes.data.responses",
    "SamplerOptions": "fluid_bayes.calibration.options",
    "Session": "fluid_bayes.adaptive.session",
    "SessionConfig": "fluid_bayes.adaptive.options",
    "SessionResult": "fluid_bayes.adaptive.session",
    "StopRule": "fluid_bayes.adaptive.stopping",
    "check_convergence": "fluid_bayes.calibration.diagnostics",
    "checkpoint_series": "fluid_bayes.data.series",
    "detect_mislabels": "fluid_bayes.upkeep.mislabels",
    "from_array": "fluid_bayes.data.responses",
    "read_lm_eval": "fluid_bayes.data.lmeval",
    "read_point_params": "fluid_bayes.data.readers",
    "read_responses": "fluid_bayes.data.readers",
    "replay": "fluid_bayes.adaptive.replay",
    "run_experiment": "fluid_bayes.study.experiment",
    "run_session": "fluid_bayes.adaptive.session",
    "score_all": "fluid_bayes.adaptive.replay",
    "simulate_bank": "fluid_bayes.study.simulate",
    "simulate_training_runs": "fluid_bayes.study.simulate",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'fluid_bayes' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
