"""Stage 4, study: the paper's experiments, their metrics, simulation and plots."""

__all__: list[str] = []
