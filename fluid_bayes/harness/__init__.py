"""Live evaluation through evaluation harnesses (lm-evaluation-harness, Inspect AI).

Each driver asks a live model only the documents an adaptive session chooses, round by
round; see :mod:`fluid_bayes.harness.lm_eval` and :mod:`fluid_bayes.harness.inspect`.
Neither harness is imported by ``import fluid_bayes``; they are the extras
``fluid-bayes[lm-eval]`` and ``fluid-bayes[inspect]``.
"""

__all__: list[str] = []
