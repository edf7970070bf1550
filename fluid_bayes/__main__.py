"""``python -m fluid_bayes``: the command line."""

from fluid_bayes.cli.main import main

raise SystemExit(main())
