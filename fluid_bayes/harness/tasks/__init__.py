"""Harness tasks shipped with fluid-bayes (local copies of benchmarks, run offline).

* ``mmlu_redux_inspect.py``: the Inspect AI task ``mmlu_redux_local`` (imports
  ``inspect_ai``; loaded only when used).
"""

__all__: list[str] = []
