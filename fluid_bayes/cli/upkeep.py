"""Command-line bank upkeep: ``diagnose``, ``refit`` and ``drift``.

Registered by :mod:`fluid_bayes.cli.main`; kept apart so each module stays small.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fluid_bayes.cli import checks
from fluid_bayes.ranges import SEED, Range

__all__ = ["add_upkeep_commands", "cmd_diagnose", "cmd_drift", "cmd_refit"]


def add_upkeep_commands(sub: Any, formats: tuple[str, ...], add_input_args, add_sampler_args):
    """Add ``diagnose``, ``refit`` and ``drift`` to the ``fluid-bayes`` parser."""
    dg = sub.add_parser("diagnose", help="does the bank still fit? model checks, new models' "
                        "fit, ceiling, and a keep/refit decision")  # fmt: skip
    positive = checks.typed(Range(float, 0.0, low_open=True))
    dg.add_argument("bank", type=checks.input_file, help="bank file (netCDF)")
    dg.add_argument("--new", default=None, metavar="DATA", type=checks.input_path,
                    help="answers of new models to check against the bank")  # fmt: skip
    dg.add_argument("--json", action="store_true", help="print the report as JSON")
    dg.add_argument("--thresholds", default=None, metavar="JSON", type=checks.json_object,
                    help="override thresholds, e.g. '{\"ceiling_prob\": 0.8}'")  # fmt: skip
    dg.add_argument("--seed", type=checks.typed(SEED), default=0,
                    help="random seed of the checks (0)")  # fmt: skip
    dg.add_argument("--reference-sets", type=checks.typed(Range(int, 1, 100_000)), default=199,
                    help="new-model sets simulated from the bank's own population, the "
                    "reference of the refit counts (199)")  # fmt: skip
    dg.add_argument("--population", choices=("calibration", "normal"), default="calibration",
                    help="ability population of the reference: the calibration subjects' "
                    "abilities, smoothed (default), or N(0, 1)")  # fmt: skip
    add_input_args(dg, formats)

    rf = sub.add_parser("refit", help="recalibrate on old + new answers, linked to the old scale")
    rf.add_argument("bank", type=checks.input_file, help="bank file (netCDF)")
    rf.add_argument("--add", required=True, metavar="DATA", type=checks.input_path,
                    help="answers of the new models")  # fmt: skip
    rf.add_argument("--out", required=True, type=checks.output_file,
                    help="new bank file (netCDF)")  # fmt: skip
    rf.add_argument("--old-data", default=None, metavar="DATA", type=checks.input_path,
                    help="calibration answers, for banks that do not store them")  # fmt: skip
    rf.add_argument("--duplicates", choices=("error", "replace", "skip"), default="error",
                    help="new subjects already in the bank: error (default), replace their "
                    "answers, or skip them")  # fmt: skip
    rf.add_argument("--link", choices=("mean-sigma", "stocking-lord"), default="mean-sigma",
                    help="linking method (mean-sigma)")  # fmt: skip
    rf.add_argument("--json", action="store_true", help="print the refit summary as JSON")
    add_input_args(rf, formats)
    add_sampler_args(rf)

    dr = sub.add_parser("drift", help="per-item change of a and b between two linked banks")
    dr.add_argument("old", type=checks.input_file, help="old bank (netCDF)")
    dr.add_argument("new", type=checks.input_file, help="new bank (netCDF); linked onto the "
                    "old scale first unless it records that it already is")  # fmt: skip
    dr.add_argument("--threshold", type=positive, default=None,
                    help="practical threshold on |delta b| (ability SD; default 0.5)")  # fmt: skip
    dr.add_argument("--threshold-log-a", type=positive, default=None,
                    help="threshold on |delta log a| (default log 1.5)")  # fmt: skip
    unit = checks.typed(Range(float, 0.0, 1.0, True, True))
    rule = dr.add_mutually_exclusive_group()
    rule.add_argument("--fdr", type=unit, default=None,
                      help="flag the most probably drifted items while the posterior expected "
                      "share of false flags among them is <= FDR (default 0.05)")  # fmt: skip
    rule.add_argument("--prob", type=unit, default=None,
                      help="instead of --fdr: flag each item with P(drift) > PROB, with no "
                      "control of the false flags across items")  # fmt: skip
    dr.add_argument("--json", action="store_true", help="print the report as JSON")
    dr.add_argument("--csv", default=None, metavar="OUT", type=checks.output_file,
                    help="write the item table as CSV")  # fmt: skip
    dr.add_argument("--plot", default=None, metavar="OUT.png", type=checks.output_file,
                    help="save the drift plot")  # fmt: skip
    dr.add_argument("--exclude-out", default=None, metavar="FILE", type=checks.output_file,
                    help="write the drifted item ids for evaluate --exclude")  # fmt: skip


def cmd_diagnose(args: argparse.Namespace, read_data) -> int:
    """``fluid-bayes diagnose``."""
    from fluid_bayes.bank import ItemBank
    from fluid_bayes.exceptions import DataError
    from fluid_bayes.upkeep.advice import diagnose

    bank = ItemBank.load(args.bank)
    new = read_data(args, args.new) if args.new else None
    overrides = {}
    if args.thresholds:
        try:
            overrides = json.loads(args.thresholds)
        except json.JSONDecodeError as exc:
            raise DataError(f"--thresholds: {exc}") from None
    try:
        advice = diagnose(bank, new, thresholds=overrides, seed=args.seed,
                          reference_sets=args.reference_sets,
                          population=args.population)  # fmt: skip
    except (TypeError, ValueError) as exc:
        raise DataError(str(exc)) from None
    print(json.dumps(advice.to_dict()) if args.json else advice)
    return 0


def cmd_refit(args: argparse.Namespace, read_data, fit_options) -> int:
    """``fluid-bayes refit``."""
    from fluid_bayes.bank import ItemBank
    from fluid_bayes.upkeep.refit import refit

    options = fit_options(args)  # the sampler flags together, before anything is read
    bank = ItemBank.load(args.bank)
    new = read_data(args, args.add)
    old = read_data(args, args.old_data) if args.old_data else None
    result = refit(bank, new, old_data=old, duplicates=args.duplicates, link_method=args.link,
                   **options)  # fmt: skip
    path = result.bank.save(args.out)
    print(json.dumps(result.to_dict()) if args.json else result)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    """``fluid-bayes drift``."""
    from fluid_bayes.bank import ItemBank
    from fluid_bayes.study.plots import plot_drift
    from fluid_bayes.upkeep.drift import drift

    old, new = ItemBank.load(args.old), ItemBank.load(args.new)
    options = {k: v for k, v in (("threshold_b", args.threshold),
                                 ("threshold_log_a", args.threshold_log_a),
                                 ("fdr", args.fdr), ("prob", args.prob))
               if v is not None}  # fmt: skip
    report = drift(old, new, **options)
    out = report.to_dict()
    recorded = new.meta.lineage
    if recorded.get("parent_config_hash") == old.config_hash:
        # NEW is a refit already linked onto OLD: the link computed here is then close to
        # the identity; the constants that put it there are in its lineage
        keys = ("method", "A", "B", "n_anchors", "excluded")
        out["recorded_linking"] = {k: recorded[k] for k in keys if k in recorded}
    if args.json:
        print(json.dumps(out))
    else:
        print(report)
        if "recorded_linking" in out:
            rl = out["recorded_linking"]
            print(
                f"(NEW was linked onto OLD by its refit: {rl.get('method')}, A {rl.get('A')}, "
                f"B {rl.get('B')})"
            )
    if args.csv:
        report.table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.plot:
        fig = plot_drift(report)
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.exclude_out:
        with open(args.exclude_out, "w") as fh:
            fh.write("".join(f"{i}\n" for i in report.drifted_items))
        print(f"wrote {args.exclude_out} ({len(report.drifted_items)} items)", file=sys.stderr)
    return 0
