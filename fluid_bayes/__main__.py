"""``python -m fluid_bayes``: the command line."""

from .cli import main

raise SystemExit(main())
