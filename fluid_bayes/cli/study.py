"""Command-line study commands: ``experiment``, ``simulate`` and ``mislabels``.

Registered by :mod:`fluid_bayes.cli.main`; kept apart so each module stays small.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fluid_bayes.cli import checks
from fluid_bayes.ranges import COUNT, SEED, Range

__all__ = [
    "add_study_commands",
    "check_simulate",
    "cmd_experiment",
    "cmd_mislabels",
    "cmd_simulate",
]


def add_study_commands(sub: Any, formats: tuple[str, ...], add_input_args) -> None:
    """Add the study subcommands to the ``fluid-bayes`` parser."""
    from fluid_bayes.study.options import DEFAULT_BUDGETS, EXPERIMENT_METHODS

    count, seed = checks.typed(COUNT), checks.typed(SEED)

    ex = sub.add_parser(
        "experiment",
        help="the paper's comparison of methods over checkpoints (validity, variance, "
        "monotonicity, mislabels vs budget)",
    )
    ex.add_argument("data", type=checks.input_path,
                    help="full answers of every checkpoint (any input layout)")  # fmt: skip
    ex.add_argument("--bank", required=True, type=checks.input_file, help="bank file (netCDF)")
    ex.add_argument("--out", required=True, type=checks.output_dir,
                    help="folder for results, summary and figures")  # fmt: skip
    ex.add_argument("--reference", default=None, metavar="SCORES.csv", type=checks.input_file,
                    help="external score per subject (subject, score) for validity")  # fmt: skip
    ex.add_argument("--methods", nargs="+", choices=EXPERIMENT_METHODS,
                    default=list(EXPERIMENT_METHODS), help="methods to compare (all)")  # fmt: skip
    ex.add_argument("--budgets", nargs="+", type=count, default=list(DEFAULT_BUDGETS),
                    help=f"items per session {' '.join(map(str, DEFAULT_BUDGETS))}")  # fmt: skip
    ex.add_argument("--repeats", type=count, default=5,
                    help="repetitions of the random methods (5)")  # fmt: skip
    ex.add_argument("--seed", type=seed, default=0, help="random seed (0)")
    ex.add_argument("--baseline", default="fluid",
                    choices=(*(m for m in EXPERIMENT_METHODS if not m.startswith("full")), "none"),
                    help="method the others are compared with by a paired bootstrap over "
                    "runs (fluid, the paper's; none: no comparison)")  # fmt: skip
    ex.add_argument("--bootstrap", type=checks.typed(Range(int, 10, 10**6)), default=1000,
                    metavar="N", help="bootstrap resamples of the comparison (1000)")  # fmt: skip
    g = ex.add_argument_group("checkpoint series (default: --series-pattern)")
    g = g.add_mutually_exclusive_group()
    g.add_argument("--series-columns", nargs=2, default=None, metavar=("RUN", "STEP"),
                   help="wide data: columns holding each subject's run and step")  # fmt: skip
    g.add_argument("--series", default=None, metavar="FILE", type=checks.input_file,
                   help="mapping file with columns subject, run, step")  # fmt: skip
    g.add_argument("--series-pattern", default=None, metavar="REGEX",
                   help="regex with named groups run and step matched against subject ids "
                   "(default reads e.g. 'olmo2-7b@step120000')")  # fmt: skip
    g.add_argument("--no-series", action="store_true",
                   help="subjects are unrelated models: validity and mislabels only")  # fmt: skip
    ex.add_argument("--labels", default=None, metavar="ITEMS.csv", type=checks.input_file,
                    help="item labels (item_id and mislabeled or error_type) for "
                    "mislabels_per_session")  # fmt: skip
    ex.add_argument("--positive", choices=("any", "key"), default="any",
                    help="error_type: any annotated error, or answer-key errors only")  # fmt: skip
    ex.add_argument("--csv", action="store_true", help="write results.csv instead of parquet")
    ex.add_argument("--no-figures", action="store_true", help="skip the figures")
    ex.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                    help="print progress to stderr (default on)")  # fmt: skip
    checks.add_worker_args(ex)
    add_input_args(ex, formats)

    sim = sub.add_parser("simulate", help="simulate a bank and pretraining runs answering it")
    sim.add_argument("--out", required=True, type=checks.output_dir,
                     help="folder: bank.nc, responses.csv, reference.csv, truth.csv")  # fmt: skip
    sim.add_argument("--like", default=None, type=checks.input_file,
                     help="fitted bank to resemble (default: given populations)")  # fmt: skip
    sim.add_argument("--items", type=count, default=1000, help="items in the bank (1000)")
    sim.add_argument("--chains", type=count, default=2, help="posterior chains of the bank (2)")
    sim.add_argument("--draws", type=count, default=100, help="posterior draws per chain (100)")
    sim.add_argument("--runs", type=count, default=6, help="pretraining runs (6)")
    sim.add_argument("--checkpoints", type=count, default=80, help="checkpoints per run (80)")
    sim.add_argument("--noise-sd", type=checks.typed(Range(float, 0.0)), default=0.05,
                     help="checkpoint ability noise (0.05)")  # fmt: skip
    sim.add_argument("--seed", type=seed, default=0, help="random seed (0)")

    ml = sub.add_parser(
        "mislabels", help="suspected mislabeled items of a bank, from its posterior"
    )
    ml.add_argument("bank", type=checks.input_file, help="bank file (netCDF)")
    ml.add_argument("--labels", default=None, metavar="ITEMS.csv", type=checks.input_file,
                    help="known labels to evaluate against (item_id and mislabeled or "
                    "error_type; optional subject column)")  # fmt: skip
    ml.add_argument("--positive", choices=("any", "key"), default="any",
                    help="error_type: any annotated error, or answer-key errors only")  # fmt: skip
    ml.add_argument("--flag-prob", type=checks.typed(Range(float, 0.0, 1.0, low_open=True)),
                    default=0.5, help="flag at score >= X (0.5)")  # fmt: skip
    ml.add_argument("--tail", type=checks.typed(Range(float, 0.0, 1.0, True, True)),
                    default=0.05, help="discrimination tail counted as flat (0.05)")  # fmt: skip
    ml.add_argument("--json", action="store_true", help="print the report as JSON")
    ml.add_argument("--csv", default=None, metavar="OUT", type=checks.output_file,
                    help="also write the item table")  # fmt: skip


def _series(args, data):
    from fluid_bayes.data.series import checkpoint_series

    if args.no_series:
        return None
    if args.series_columns:
        return checkpoint_series(data.subjects, meta=data.subject_meta.rename(
            columns=dict(zip(args.series_columns, ("run", "step"), strict=True))),
            source=str(args.data))  # fmt: skip
    if args.series:
        return checkpoint_series(data.subjects, mapping=args.series)
    return checkpoint_series(data.subjects, pattern=args.series_pattern, source=str(args.data))


def cmd_experiment(args: argparse.Namespace, read_data) -> int:
    """``fluid-bayes experiment``."""
    from fluid_bayes.bank import ItemBank
    from fluid_bayes.data.series import read_reference
    from fluid_bayes.study.experiment import run_experiment
    from fluid_bayes.upkeep.mislabels import read_item_labels

    log = _log if args.progress else None
    with checks.worker_pool(args, log=log) as pool:  # a --scheduler is reached first
        bank = ItemBank.load(args.bank)
        extra = {"subject_columns": args.series_columns} if args.series_columns else {}
        data = read_data(args, **extra)
        series = _series(args, data)
        reference = read_reference(args.reference) if args.reference else None
        labels = (read_item_labels(args.labels, positive=args.positive)[0] if args.labels
                  else None)  # fmt: skip
        try:
            result = run_experiment(
                bank, data, series=series, reference=reference, labels=labels,
                methods=args.methods, budgets=args.budgets, repeats=args.repeats,
                seed=args.seed, progress=args.progress, workers=pool,
                baseline=None if args.baseline == "none" else args.baseline,
                bootstrap=args.bootstrap,
            )  # fmt: skip
        except ValueError as exc:
            from fluid_bayes.exceptions import DataError

            raise DataError(str(exc)) from None
    paths = result.save(args.out, figures=not args.no_figures)
    if args.csv:
        csv = Path(args.out) / "results.csv"
        result.results.to_csv(csv, index=False)
        paths["results"].unlink()
        paths["results"] = csv
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(result.table2().round(3).to_string())
    for name, p in paths.items():
        print(f"wrote {name}: {p}", file=sys.stderr)
    return 0


def _log(text: str) -> None:
    print(f"experiment: {text}", file=sys.stderr, flush=True)


def check_simulate(args: argparse.Namespace) -> None:
    """Refuse a ``simulate`` whose draws and answers would not fit in memory.

    Raises
    ------
    OptionError
        Naming the sizes, the memory they need and the flags to lower.
    """
    from fluid_bayes.calibration.options import require_memory

    n_subjects = args.runs * args.checkpoints
    require_memory(
        8 * args.items * (2 * args.chains * args.draws + 2 * n_subjects),
        what=f"a bank of {args.items:,} items x {args.chains} chains x {args.draws:,} draws "
        f"answered by {n_subjects:,} checkpoints",
        hint="lower --items, --draws, --chains, --runs or --checkpoints",
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    """``fluid-bayes simulate`` (its sizes checked first by :func:`check_simulate`)."""
    from fluid_bayes.bank import ItemBank
    from fluid_bayes.study.simulate import simulate_bank, simulate_training_runs

    check_simulate(args)
    like = ItemBank.load(args.like) if args.like else None
    bank = simulate_bank(args.items, like=like, seed=args.seed, chains=args.chains,
                         draws=args.draws)  # fmt: skip
    sim = simulate_training_runs(bank, runs=args.runs, checkpoints=args.checkpoints,
                                 seed=args.seed + 1, noise_sd=args.noise_sd)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bank.save(out / "bank.nc")
    frame = sim.responses.to_frame().astype("Int8")
    frame.insert(0, "step", sim.truth["step"].astype(int))
    frame.insert(0, "run", sim.truth["run"])
    frame.index.name = "subject"
    frame.to_csv(out / "responses.csv")
    sim.reference.rename("score").to_csv(out / "reference.csv", index_label="subject")
    sim.truth.to_csv(out / "truth.csv")
    print(f"simulated {bank.n_items} items x {sim.responses.n_subjects} checkpoints "
          f"({args.runs} runs); wrote {out}/bank.nc, responses.csv (run, step columns), "
          "reference.csv, truth.csv")  # fmt: skip
    return 0


def cmd_mislabels(args: argparse.Namespace) -> int:
    """``fluid-bayes mislabels``."""
    from fluid_bayes.bank import ItemBank
    from fluid_bayes.upkeep.mislabels import detect_mislabels, read_item_labels

    bank = ItemBank.load(args.bank)
    labels = groups = None
    if args.labels:
        labels, groups = read_item_labels(args.labels, positive=args.positive)
    try:
        report = detect_mislabels(bank, flag_prob=args.flag_prob, tail=args.tail,
                                  labels=labels, groups=groups)  # fmt: skip
    except ValueError as exc:
        from fluid_bayes.exceptions import DataError

        raise DataError(str(exc)) from None
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report)
    if args.csv:
        report.table.to_csv(args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    return 0
