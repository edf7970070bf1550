"""Stage 1, data: readers of answer files, the response matrix, its data report, series.

Modules: :mod:`~fluid_bayes.data.readers` (every input layout), :mod:`~.tables` (text-table
parsing shared by the readers), :mod:`~.lmeval` (lm-evaluation-harness sample logs),
:mod:`~.harness_logs` (Inspect AI, lighteval), :mod:`~.eval_records` (HELM, every_eval_ever),
:mod:`~.responses` (:class:`ResponseMatrix`), :mod:`~.report` (what was dropped and why),
:mod:`~.series` (checkpoint series). The shipped answer data lie beside them in folders
(``chembench/``, ``lsat/``, ``mmlu_redux_helm/``; licenses in ``README.md``).
"""

__all__: list[str] = []
