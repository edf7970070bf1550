"""fluid_bayes: Bayesian adaptive benchmarking of language models.

Fluid Benchmarking (Hofmann et al., COLM 2025) done the Bayesian way: a hierarchical
2PL item-response model in PyMC whose item parameters are kept as posterior draws.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .bank import BankMeta, ItemBank
from .diagnostics import ConvergenceReport, check_convergence
from .exceptions import BankError, ConvergenceError, DataError, FluidBayesError
from .experiment import ExperimentResult, run_experiment
from .io import read_point_params, read_responses
from .lmeval import read_lm_eval
from .mislabels import MislabelReport, detect_mislabels
from .model import Gamma, HalfNormal, HierarchicalTwoPL, Normal, Priors
from .replay import ReplayResult, replay, score_all
from .responses import DataReport, ResponseMatrix, from_array
from .selection import BankArrays
from .series import checkpoint_series
from .session import Session, SessionConfig, SessionResult, run_session
from .simulate import simulate_bank, simulate_training_runs
from .stopping import StopRule

__all__ = [
    "BankArrays",
    "BankError",
    "BankMeta",
    "ConvergenceError",
    "ConvergenceReport",
    "DataError",
    "DataReport",
    "ExperimentResult",
    "FluidBayesError",
    "Gamma",
    "HalfNormal",
    "HierarchicalTwoPL",
    "ItemBank",
    "MislabelReport",
    "Normal",
    "Priors",
    "ReplayResult",
    "ResponseMatrix",
    "Session",
    "SessionConfig",
    "SessionResult",
    "StopRule",
    "__version__",
    "check_convergence",
    "checkpoint_series",
    "detect_mislabels",
    "from_array",
    "read_lm_eval",
    "read_point_params",
    "read_responses",
    "replay",
    "run_experiment",
    "run_session",
    "score_all",
    "simulate_bank",
    "simulate_training_runs",
]
