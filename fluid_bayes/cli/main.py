"""Command line: ``fluid-bayes`` (also ``python -m fluid_bayes``).

Every command that samples takes ``--seed`` and the sampler-size flags. Errors in the
user's input exit with status 2 and a one-line message naming the file, row or item;
a fit that misses the convergence criteria under ``--strict`` exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from fluid_bayes import __version__
from fluid_bayes.exceptions import BankError, ConvergenceError, DataError

__all__ = ["main"]


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    from fluid_bayes.calibration.model import (
        DEFAULT_DRAWS,
        DEFAULT_TUNE,
        MAX_DRAWS_FACTOR,
        SAMPLERS,
    )

    g = p.add_argument_group("sampler")
    g.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="nutpie",
        help="NUTS backend, or 'advi' (a labelled approximation); default nutpie",
    )
    g.add_argument(
        "--draws",
        type=int,
        default=None,
        help=f"posterior draws per chain (default {DEFAULT_DRAWS}, and with nutpie more, in "
        f"blocks of {DEFAULT_DRAWS}, until R-hat and bulk ESS pass, up to --max-draws; "
        "a number given here is sampled exactly)",
    )
    g.add_argument(
        "--max-draws",
        type=int,
        default=None,
        help="nutpie: if R-hat or bulk ESS miss after --draws, go on in blocks of --draws "
        f"up to this many per chain (default {MAX_DRAWS_FACTOR * DEFAULT_DRAWS} with the "
        "default --draws, else --draws)",
    )
    g.add_argument(
        "--tune",
        type=int,
        default=DEFAULT_TUNE,
        help=f"tuning steps per chain ({DEFAULT_TUNE})",
    )
    g.add_argument(
        "--chains", type=int, default=4, help="chains (4; nutpie runs one per core at a time)"
    )
    g.add_argument("--seed", type=int, default=0, help="random seed (0)")
    g.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance (default 0.95 marginal; joint 0.9, "
                        "0.8 with centred items)")  # fmt: skip
    g.add_argument(
        "--backend",
        choices=("auto", "jax", "numba"),
        default="auto",
        help="log-density backend for nutpie (auto: numba, whose chains run in parallel)",
    )
    g.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 3, no bank written) unless R-hat <= 1.01, ESS >= 400, no divergences",
    )
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the sampler's progress bar (default: when stderr is a terminal)",
    )


def _parser() -> argparse.ArgumentParser:
    from fluid_bayes.data.readers import FORMATS

    parser = argparse.ArgumentParser(
        prog="fluid-bayes",
        description="Bayesian adaptive benchmarking of language models.",
    )
    parser.add_argument("--version", action="version", version=f"fluid-bayes {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    cal = sub.add_parser("calibrate", help="fit a hierarchical 2PL item bank to past answers")
    cal.add_argument("data", help="answers: wide/long CSV or parquet, py-irt JSON lines, ...")
    cal.add_argument("--out", required=True, help="bank file to write (netCDF)")
    cal.add_argument("--format", choices=FORMATS, default="auto", help="input layout (auto)")
    cal.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="binarize continuous scores at >= X (required for non-0/1 scores)",
    )
    cal.add_argument(
        "--items-meta", default=None, help="CSV/parquet of item metadata (item_id, ...)"
    )
    cal.add_argument("--group-by", default=None, help="item metadata column for partial pooling")
    cal.add_argument(
        "--likelihood",
        choices=("auto", "joint", "marginal"),
        default="auto",
        help="abilities sampled (joint) or integrated out (marginal); auto by size",
    )
    cal.add_argument(
        "--frame",
        choices=("auto", "items", "subjects"),
        default="auto",
        help="joint likelihood's sampling frame; auto: subjects if they outnumber items",
    )
    cal.add_argument(
        "--constant-items",
        choices=("auto", "integrate", "sample"),
        default="auto",
        help="joint likelihood: integrate out the parameters of items everyone got right "
        "(or wrong) while sampling and draw them exactly afterwards, or sample them like "
        "the other items; auto: integrate when more than half the items are constant",
    )
    cal.add_argument(
        "--drop-constant",
        action="store_true",
        help="leave out (and report) items everyone got right or everyone got wrong; "
        "the bank then has no parameters for them",
    )
    cal.add_argument(
        "--priors",
        default=None,
        help='JSON overrides, e.g. \'{"sigma_b": {"dist": "Gamma", "alpha": 2, "beta": 1}}\'',
    )
    _add_lmeval_args(cal)
    _add_sampler_args(cal)

    bank = sub.add_parser("bank", help="inspect or import item banks")
    bsub = bank.add_subparsers(dest="bank_command", required=True)
    summ = bsub.add_parser("summary", help="print a bank's diagnostics and item table")
    summ.add_argument("bank", help="bank file (netCDF)")
    summ.add_argument("--json", action="store_true", help="print the summary as JSON")
    summ.add_argument(
        "--csv",
        default=None,
        metavar="OUT",
        help="also write the item table as wide CSV ('-' for stdout)",
    )
    imp = bsub.add_parser("import-params", help="import point estimates item_id,a,b as a bank")
    imp.add_argument("params", help="CSV with item_id,a,b (or item_id,a,d)")
    imp.add_argument("--out", required=True, help="bank file to write (netCDF)")
    bmap = bsub.add_parser(
        "map", help="attach the harness document of each item (item,task,doc_id CSV) to a bank"
    )
    bmap.add_argument("bank", help="bank file (netCDF)")
    bmap.add_argument(
        "--items-map", required=True,
        help="CSV with columns item,task,doc_id (lm-eval: 0-based doc index; Inspect: "
        "sample_id); must name every item of the bank",
    )  # fmt: skip
    bmap.add_argument("--out", required=True, help="bank file to write (netCDF)")

    _add_evaluate(sub, FORMATS)
    from fluid_bayes.cli.study import add_study_commands

    add_study_commands(sub, FORMATS, _add_input_args)
    from fluid_bayes.cli.upkeep import add_upkeep_commands

    add_upkeep_commands(sub, FORMATS, _add_input_args, _add_sampler_args)
    from fluid_bayes.cli.run import add_run_commands

    add_run_commands(sub)

    demo = sub.add_parser("demo", help="the main job on the shipped data")
    demo.add_argument("--out", default="out", help="folder for the demo's outputs (out/)")
    demo.add_argument(
        "--full",
        action="store_true",
        help="recalibrate ChemBench instead of loading the shipped bank",
    )
    _add_sampler_args(demo)
    return parser


def _add_lmeval_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("harness logs (--format lm-eval, inspect, lighteval, helm, eee)")
    g.add_argument("--metric", default=None,
                   help="metric to read (lm-eval and lighteval: default acc, ...; helm: the stat,"
                        " default exact_match; eee: the evaluation_result_id; inspect: the"
                        " scorer, default the first)")  # fmt: skip
    g.add_argument("--filter", default=None, help="filter to read when a task has several")


def _add_input_args(p: argparse.ArgumentParser, formats: tuple[str, ...]) -> None:
    p.add_argument("--format", choices=formats, default="auto", help="input layout (auto)")
    p.add_argument("--threshold", type=float, default=None,
                   help="binarize continuous scores at >= X")  # fmt: skip
    _add_lmeval_args(p)


def _add_evaluate(sub: Any, formats: tuple[str, ...]) -> None:
    from fluid_bayes.adaptive.selection import SELECTORS
    from fluid_bayes.adaptive.session import METHODS

    ev = sub.add_parser(
        "evaluate",
        help="adaptive evaluation (replay) of subjects' stored answers against a bank",
    )
    ev.add_argument("bank", help="bank file (netCDF)")
    ev.add_argument("data", help="answers of the subjects to evaluate (any input layout)")
    ev.add_argument("--format", choices=formats, default="auto", help="input layout (auto)")
    ev.add_argument("--threshold", type=float, default=None,
                    help="binarize continuous scores at >= X")  # fmt: skip
    ev.add_argument("--subjects", nargs="+", default=None, help="evaluate only these subjects")
    ev.add_argument("--method", choices=tuple(METHODS), default="bayes",
                    help="bayes (default), paper (MAP + MFI), eap, random")  # fmt: skip
    ev.add_argument("--select", choices=SELECTORS, default=None,
                    help="override the method's selection rule")  # fmt: skip
    ev.add_argument("--max-items", type=int, default=100, help="most items per session (100)")
    ev.add_argument("--min-items", type=int, default=0, help="fewest items before an SD stop")
    ev.add_argument("--stop-sd", default=None, metavar="X|auto",
                    help="stop once the posterior SD < X; auto: the bank's mean gap "
                    "between rank-adjacent calibration abilities")  # fmt: skip
    ev.add_argument("--start-ability", type=float, default=None,
                    help="ability for the first item (default: mean calibration "
                    "ability)")  # fmt: skip
    ev.add_argument("--randomesque", type=int, default=1, help="pick among the best K (1)")
    ev.add_argument("--exclude", default=None, metavar="FILE",
                    help="text file of item ids never to ask, one per line")  # fmt: skip
    ev.add_argument(
        "--integration",
        choices=("mixture", "weighted"),
        default="mixture",
        help="how bayes combines item draws (mixture; see fluid_bayes.adaptive.ability)",
    )
    ev.add_argument("--seed", type=int, default=0, help="random seed (0)")
    ev.add_argument("--json", action="store_true", help="one JSON object per subject")
    _add_lmeval_args(ev)
    ev.add_argument("--trace", default=None, metavar="OUT.csv",
                    help="write the step-by-step trace as CSV")  # fmt: skip


def _progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _fit(data: Any, args: argparse.Namespace, **spec_kw: Any):
    from fluid_bayes.calibration.model import HierarchicalTwoPL, Priors

    priors = Priors()
    if getattr(args, "priors", None):
        try:
            priors = priors.updated(json.loads(args.priors))
        except (json.JSONDecodeError, ValueError) as exc:
            raise DataError(f"--priors: {exc}") from exc
    from fluid_bayes.calibration.fitting import ConvergenceWarning

    spec = HierarchicalTwoPL(priors=priors, **spec_kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="pymc")
        warnings.simplefilter("always", ConvergenceWarning)
        bank = spec.fit(
            data,
            sampler=args.sampler,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            seed=args.seed,
            progress=_progress(args.progress),
            target_accept=args.target_accept,
            strict=args.strict,
            backend=args.backend,
            max_draws=args.max_draws,
        )
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            print(f"fluid-bayes: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return bank


def _fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """Sampler flags as keyword arguments of ``HierarchicalTwoPL.fit``."""
    return {"sampler": args.sampler, "draws": args.draws, "tune": args.tune,
            "chains": args.chains, "seed": args.seed, "progress": _progress(args.progress),
            "target_accept": args.target_accept, "strict": args.strict,
            "backend": args.backend, "max_draws": args.max_draws}  # fmt: skip


def _read_data(args: argparse.Namespace, path: str | None = None, **extra: Any):
    """The DATA argument (or ``path``), read with the input-layout flags of the command."""
    from fluid_bayes.data.readers import read_responses

    return read_responses(
        args.data if path is None else path,
        format=args.format,
        threshold=args.threshold,
        metric=args.metric,
        filter=args.filter,
        **extra,
    )


def _cmd_calibrate(args: argparse.Namespace) -> int:
    data = _read_data(args, item_meta=args.items_meta)
    if args.drop_constant:
        data = data.without_constant_items()
    print(str(data.report), file=sys.stderr)
    bank = _fit(
        data,
        args,
        likelihood=args.likelihood,
        group_by=args.group_by,
        frame=args.frame,
        constant_items=args.constant_items,
    )
    path = bank.save(args.out)
    print(bank)
    print(f"wrote {path}")
    return 0


def _cmd_bank(args: argparse.Namespace) -> int:
    from fluid_bayes.bank import ItemBank
    from fluid_bayes.data.readers import read_point_params

    if args.bank_command == "map":
        from fluid_bayes.harness.documents import attach_documents, read_items_map

        documents = read_items_map(args.items_map)
        bank = attach_documents(ItemBank.load(args.bank), documents)
        path = bank.save(args.out)
        tasks = ", ".join(documents.task_names)
        print(f"mapped {bank.n_items} items to documents of {tasks} ({bank.config_hash}); "
              f"wrote {path}")  # fmt: skip
        return 0
    if args.bank_command == "import-params":
        params = read_point_params(args.params)
        bank = ItemBank.from_point_params(params, source=str(args.params))
        path = bank.save(args.out)
        print(f"imported {bank.n_items} items as a point bank ({bank.config_hash}); wrote {path}")
        return 0
    bank = ItemBank.load(args.bank)
    if args.json:
        print(json.dumps(bank.summary_dict(), indent=1))
    else:
        print(bank)
    if args.csv:
        table = bank.summary()
        if args.csv == "-":
            table.to_csv(sys.stdout)
        else:
            table.to_csv(args.csv)
            print(f"wrote {args.csv}", file=sys.stderr)
    return 0


def _stop_sd(text: str | None) -> float | str | None:
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise DataError(f"--stop-sd must be a number or 'auto', got {text!r}") from None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fluid_bayes.adaptive.replay import replay
    from fluid_bayes.adaptive.session import SessionConfig
    from fluid_bayes.bank import ItemBank

    bank = ItemBank.load(args.bank)
    data = _read_data(args)
    exclude: tuple[str, ...] = ()
    if args.exclude:
        lines = Path(args.exclude).read_text().splitlines()
        exclude = tuple(x.strip() for x in lines if x.strip() and not x.startswith("#"))
    try:
        config = SessionConfig.for_method(
            args.method, select=args.select, max_items=args.max_items,
            min_items=args.min_items, stop_sd=_stop_sd(args.stop_sd),
            start_ability=args.start_ability, seed=args.seed,
            randomesque=args.randomesque, exclude=exclude,
        )  # fmt: skip
    except ValueError as exc:
        raise DataError(str(exc)) from None
    result = replay(bank, data, config=config, subjects=args.subjects)
    print(result.report, file=sys.stderr)
    if args.json:
        for r in result.results:
            print(json.dumps(r.to_dict()))
    else:
        print(_evaluate_table(result).to_string())
    if args.trace:
        result.trace.to_csv(args.trace, index=False)
        print(f"wrote {args.trace}", file=sys.stderr)
    return 0


def _evaluate_table(result: Any):
    s = result.summary
    import pandas as pd

    return pd.DataFrame(
        {
            "items": s["n_items"],
            "ability": [f"{m:+.3f} +- {sd:.3f}" for m, sd in zip(s["theta_mean"],
                                                              s["theta_sd"], strict=True)],
            "94% interval": [f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(
                s["theta_hdi_low"], s["theta_hdi_high"], strict=True)],
            "predicted accuracy": [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in zip(
                s["accuracy_mean"], s["accuracy_low"], s["accuracy_high"], strict=True)],
            "actual accuracy": s["observed_accuracy"].round(3),
            "stop": s["stop_reason"],
        }
    )  # fmt: skip


def _cmd_demo(args: argparse.Namespace) -> int:
    from fluid_bayes.cli.demo import run_demo

    return run_demo(args, fit=_fit)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    from fluid_bayes.cli import run, study, upkeep

    handlers = {
        "diagnose": lambda a: upkeep.cmd_diagnose(a, _read_data),
        "refit": lambda a: upkeep.cmd_refit(a, _read_data, _fit_options),
        "drift": upkeep.cmd_drift,
        "experiment": lambda a: study.cmd_experiment(a, _read_data),
        "simulate": study.cmd_simulate,
        "mislabels": study.cmd_mislabels,
        "calibrate": _cmd_calibrate,
        "bank": _cmd_bank,
        "evaluate": _cmd_evaluate,
        "demo": _cmd_demo,
        "run": run.cmd_run,
    }
    try:
        return handlers[args.command](args)
    except (DataError, BankError) as exc:
        print(f"fluid-bayes: error: {exc}", file=sys.stderr)
        return 2
    except ConvergenceError as exc:
        print(f"fluid-bayes: not converged (--strict): {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
