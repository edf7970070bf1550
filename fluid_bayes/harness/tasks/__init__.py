"""Harness tasks shipped with fluid-bayes (local copies of benchmarks, run offline).

* ``mmlu_redux_inspect.py``: the Inspect AI task ``mmlu_redux_local`` (imports
  ``inspect_ai``; loaded only when used).
* ``mmlu_redux_local/``: the lm-evaluation-harness task of the same name (a YAML and
  its ``utils.py``, found by ``TaskManager(include_path=<this folder>)``; see
  :mod:`fluid_bayes.harness.lm_eval_tasks`). Document / sample k is row k of
  ``fluid_bayes/data/mmlu_redux_helm/questions.csv`` in both.
"""

__all__: list[str] = []
