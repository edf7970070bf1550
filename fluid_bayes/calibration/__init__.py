"""Stage 2, calibration: the hierarchical 2PL spec, its PyMC graph, priors and fitting.

Modules: :mod:`~fluid_bayes.calibration.model` (:class:`HierarchicalTwoPL`, the spec),
:mod:`~.priors`, :mod:`~.fitting` (samplers -> :class:`~fluid_bayes.bank.ItemBank`),
:mod:`~.diagnostics` (ArviZ R-hat / ESS / divergences), :mod:`~.loglik` (compiled joint
likelihood), :mod:`~.constant_items` (items everyone got right or wrong, integrated out),
:mod:`~.diagworker` (diagnostics of one block of parameters in a child process).
"""

__all__: list[str] = []
