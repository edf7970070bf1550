"""``python -m fluid_bayes``: the command line."""

from fluid_bayes.cli.main import main

__all__: list[str] = []

raise SystemExit(main())
