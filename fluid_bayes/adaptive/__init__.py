"""Stage 3, adaptive evaluation: bank arrays, ability, selection, stopping, sessions.

Modules: :mod:`~fluid_bayes.adaptive.selection` (:class:`BankArrays` and the selection
rules), :mod:`~.ability` (estimators), :mod:`~.stopping` (:class:`StopRule`),
:mod:`~.session` (:class:`Session`), :mod:`~.results` (:class:`SessionResult`),
:mod:`~.replay` (sessions over stored answers), :mod:`~.kernels` and
:mod:`~.paper_kernels` (compiled numba kernels of the Bayesian and the paper path).
"""

__all__: list[str] = []
