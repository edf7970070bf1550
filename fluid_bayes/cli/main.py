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
from fluid_bayes.cli import checks
from fluid_bayes.exceptions import BankError, ConvergenceError, DataError, OptionError
from fluid_bayes.ranges import THRESHOLD

__all__ = ["main"]


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    """The flags of :class:`~fluid_bayes.calibration.options.SamplerOptions`, one per field."""
    from fluid_bayes.calibration.options import SamplerOptions

    checks.add_fields(
        p.add_argument_group("sampler"), SamplerOptions, special={"progress": {"default": None}}
    )


def _parser() -> argparse.ArgumentParser:
    from fluid_bayes.data.formats import FORMATS

    parser = checks.Parser(
        prog="fluid-bayes",
        description="Bayesian adaptive benchmarking of language models.",
    )
    parser.add_argument("--version", action="version", version=f"fluid-bayes {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    cal = sub.add_parser("calibrate", help="fit a hierarchical 2PL item bank to past answers")
    cal.add_argument("data", type=checks.input_path,
                     help="answers: wide/long CSV or parquet, py-irt JSON lines, ...")  # fmt: skip
    cal.add_argument("--out", required=True, type=checks.output_file,
                     help="bank file to write (netCDF)")  # fmt: skip
    cal.add_argument("--format", choices=FORMATS, default="auto", help="input layout (auto)")
    cal.add_argument(
        "--threshold",
        type=checks.typed(THRESHOLD),
        default=None,
        metavar="X",
        help="binarize continuous scores at >= X (required for non-0/1 scores)",
    )
    cal.add_argument("--items-meta", default=None, type=checks.input_file,
                     help="CSV/parquet of item metadata (item_id, ...)")  # fmt: skip
    cal.add_argument("--group-by", default=None, help="item metadata column for partial pooling")
    cal.add_argument("--items-map", default=None, type=checks.input_file, metavar="CSV",
                     help="item,task,doc_id CSV: each item's harness document (lm-eval "
                     "doc index or Inspect sample id), stored in the bank for fluid-bayes "
                     "run; checked against the data before the fit")  # fmt: skip
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
        type=checks.json_object,
        help='JSON overrides, e.g. \'{"sigma_b": {"dist": "Gamma", "alpha": 2, "beta": 1}}\'',
    )
    _add_lmeval_args(cal)
    _add_sampler_args(cal)

    bank = sub.add_parser("bank", help="inspect or import item banks")
    bsub = bank.add_subparsers(dest="bank_command", required=True)
    summ = bsub.add_parser("summary", help="print a bank's diagnostics and item table")
    summ.add_argument("bank", type=checks.input_file, help="bank file (netCDF)")
    summ.add_argument("--json", action="store_true", help="print the summary as JSON")
    summ.add_argument(
        "--csv",
        default=None,
        metavar="OUT",
        type=checks.output_file_or_stdout,
        help="also write the item table as wide CSV ('-' for stdout)",
    )
    imp = bsub.add_parser("import-params", help="import point estimates item_id,a,b as a bank")
    imp.add_argument("params", type=checks.input_file, help="CSV with item_id,a,b (or item_id,a,d)")
    imp.add_argument("--out", required=True, type=checks.output_file,
                     help="bank file to write (netCDF)")  # fmt: skip
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
    demo.add_argument("--out", default="out", type=checks.output_dir,
                      help="folder for the demo's outputs (out/)")  # fmt: skip
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
    p.add_argument("--threshold", type=checks.typed(THRESHOLD), default=None, metavar="X",
                   help="binarize continuous scores at >= X")  # fmt: skip
    _add_lmeval_args(p)


def _add_evaluate(sub: Any, formats: tuple[str, ...]) -> None:
    from fluid_bayes.adaptive.options import METHODS, SessionConfig

    ev = sub.add_parser(
        "evaluate",
        help="adaptive evaluation (replay) of subjects' stored answers against a bank",
    )
    ev.add_argument("bank", type=checks.input_file, help="bank file (netCDF)")
    ev.add_argument("data", type=checks.input_path,
                    help="answers of the subjects to evaluate (any input layout)")  # fmt: skip
    ev.add_argument("--format", choices=formats, default="auto", help="input layout (auto)")
    ev.add_argument("--subjects", nargs="+", default=None, help="evaluate only these subjects")
    ev.add_argument("--method", choices=tuple(METHODS), default="bayes",
                    help="preset of --estimator and --select: bayes (default), paper "
                    "(MAP + MFI), eap, random")  # fmt: skip
    # one flag per SessionConfig field, all passed on to it (--threshold also reads DATA)
    checks.add_fields(
        ev.add_argument_group("session options (fluid_bayes.SessionConfig)"),
        SessionConfig,
        unset=("estimator", "select"),
        special={"exclude": {"type": checks.item_list, "metavar": "FILE", "help":
                             "text file of item ids never to ask, one per line"}},
    )  # fmt: skip
    ev.add_argument("--json", action="store_true", help="one JSON object per subject")
    _add_lmeval_args(ev)
    ev.add_argument("--trace", default=None, metavar="OUT.csv", type=checks.output_file,
                    help="write the step-by-step trace as CSV")  # fmt: skip
    checks.add_worker_args(ev)


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

    options = _fit_options(args)
    spec = HierarchicalTwoPL(priors=priors, **spec_kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="pymc")
        warnings.simplefilter("always", ConvergenceWarning)
        bank = spec.fit(data, **options)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            print(f"fluid-bayes: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return bank


def _fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """Sampler flags as keyword arguments of ``HierarchicalTwoPL.fit``.

    Built from every field of :class:`~fluid_bayes.calibration.options.SamplerOptions`
    (which checks them together, e.g. ``--max-draws`` against ``--draws``).
    """
    from fluid_bayes.calibration.options import SamplerOptions

    options = checks.options_from(args, SamplerOptions, progress=_progress(args.progress))
    return options.to_kwargs()


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
    documents = None
    if args.items_map:  # checked before the fit: a wrong map must not cost a calibration
        from fluid_bayes.harness.documents import read_items_map

        documents = read_items_map(args.items_map)
        documents.require_items(data.items, what="data")
    print(str(data.report), file=sys.stderr)
    bank = _fit(
        data,
        args,
        likelihood=args.likelihood,
        group_by=args.group_by,
        frame=args.frame,
        constant_items=args.constant_items,
    )
    if documents is not None:
        from fluid_bayes.harness.documents import attach_documents

        bank = attach_documents(bank, documents)
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


def _session_config(args: argparse.Namespace) -> Any:
    """Every :class:`~fluid_bayes.adaptive.options.SessionConfig` field from its flag."""
    from functools import partial

    from fluid_bayes.adaptive.options import SessionConfig

    build = partial(SessionConfig.for_method, args.method)
    return checks.options_from(args, SessionConfig, build)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fluid_bayes.adaptive.replay import replay
    from fluid_bayes.bank import ItemBank

    config = _session_config(args)
    say = _progress(None)  # progress and the cluster's start when stderr is a terminal
    with checks.worker_pool(args, log=_say("evaluate") if say else None) as pool:
        bank = ItemBank.load(args.bank)
        data = _read_data(args)
        result = replay(bank, data, config=config, subjects=args.subjects, workers=pool,
                        progress=say)  # fmt: skip
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


def _say(command: str):
    def say(text: str) -> None:
        print(f"{command}: {text}", file=sys.stderr, flush=True)

    return say


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
    """Run the command line; returns the exit status.

    0 on success; 2 for any mistake in the input (one line ``fluid-bayes: error: ...``
    on stderr naming the option, file, line, item or subject; checked before any
    sampling or evaluation where it can be); 3 for a fit that missed the convergence
    criteria under ``--strict``; 4 for a harness or model that failed during a round
    of ``run`` (one line; the session file keeps the answers before it). Anything else
    is a bug and ends in a traceback.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 0
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
    # options checked together (one against another, memory) before any folder is made
    prechecks = {"calibrate": _fit_options, "refit": _fit_options, "demo": _fit_options,
                 "evaluate": _session_config, "simulate": study.check_simulate}  # fmt: skip
    try:
        if args.command in prechecks:
            prechecks[args.command](args)
        checks.prepare_outputs(args)
        return handlers[args.command](args)
    except (DataError, BankError, OptionError) as exc:
        message = " ".join(str(exc).split("\n"))
        print(f"fluid-bayes: error: {message}", file=sys.stderr)
        return 2
    except ConvergenceError as exc:
        print(f"fluid-bayes: not converged (--strict): {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
