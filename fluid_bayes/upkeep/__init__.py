"""Stage 5, upkeep: model checking, new models, refit advice, drift, linking, mislabels."""

__all__: list[str] = []
