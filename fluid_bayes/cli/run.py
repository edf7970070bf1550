"""``fluid-bayes run``: live adaptive evaluation of a model through an evaluation harness.

One subcommand per harness driver; each runs rounds of documents through its harness
(:func:`fluid_bayes.harness.loop.run_rounds`), saves the session after every round
(``--session``, resumed when it exists) and prints the ability, the expected
full-benchmark accuracy and what the run cost.

* ``run inspect``: Inspect AI (:mod:`fluid_bayes.harness.inspect`).
* ``run lm-eval``: lm-evaluation-harness (:mod:`fluid_bayes.harness.lm_eval`).

The harness packages are optional extras; a missing one is a one-line error. Nothing
here imports a harness before the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fluid_bayes.cli import checks
from fluid_bayes.exceptions import OptionError

__all__ = ["add_run_commands", "cmd_run", "key_values"]


def key_values(text: str) -> tuple[str, Any]:
    """``type=`` of a ``key=value`` argument; the value is read as JSON when it parses.

    Returns
    -------
    (str, object)
        ``"theta=0.5"`` -> ``("theta", 0.5)``; ``"bank=b.nc"`` -> ``("bank", "b.nc")``.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip(), parsed


def _add_session_options(p: argparse.ArgumentParser) -> None:
    """``--method`` and one flag per ``SessionConfig`` field, as ``evaluate`` has them."""
    from fluid_bayes.adaptive.options import METHODS, SessionConfig

    g = p.add_argument_group("session options (fluid_bayes.SessionConfig)")
    g.add_argument("--method", choices=tuple(METHODS), default="bayes",
                   help="preset of --estimator and --select: bayes (default), paper "
                   "(MAP + MFI), eap, random")  # fmt: skip
    checks.add_fields(
        g,
        SessionConfig,
        unset=("estimator", "select"),
        special={
            "exclude": {"type": checks.item_list, "metavar": "FILE",
                        "help": "text file of item ids never to ask, one per line"},
            "round_size": {"default": None, "metavar": "K",  # None: DEFAULT_ROUND_SIZE
                           "help": "documents per harness call (5)"},
        },
    )  # fmt: skip


def _add_live_args(p: argparse.ArgumentParser) -> None:
    """The arguments every harness subcommand takes."""
    p.add_argument("--bank", required=True, type=checks.input_file,
                   help="item bank (netCDF) whose items map to harness documents")  # fmt: skip
    p.add_argument("--session", default=None, metavar="FILE", type=checks.output_file,
                   help="session file, saved after every round; resumed if it exists")  # fmt: skip
    p.add_argument("--subject", default=None, help="the model's label (default: its name)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress line per round")


def _add_inspect(rsub: Any) -> None:
    p = rsub.add_parser(
        "inspect",
        help="through Inspect AI (pip install 'fluid-bayes[inspect]')",
        description="Evaluate a model adaptively through Inspect AI: each round runs the "
        "chosen samples with inspect_ai.eval(task, model, sample_id=[...]).",
    )
    _add_live_args(p)
    p.add_argument("--task", required=True,
                   help="Inspect task: file.py@name, a registered task, or mmlu_redux_local "
                   "(the shipped MMLU-Redux questions)")  # fmt: skip
    p.add_argument("--model", required=True,
                   help="provider/name, e.g. openai/gpt-4o or fluidsim/theta=0.5:seed=1 "
                   "(the simulated model; it answers the --bank unless -M bank=FILE)")  # fmt: skip
    p.add_argument("--model-args", "-M", nargs="+", action="extend", default=[],
                   type=key_values, metavar="K=V", help="model provider arguments")  # fmt: skip
    p.add_argument("--task-args", "-T", nargs="+", action="extend", default=[],
                   type=key_values, metavar="K=V", help="task arguments")  # fmt: skip
    p.add_argument("--scorer", default=None,
                   help="score to read when the task has several scorers")  # fmt: skip
    p.add_argument("--log-dir", required=True, type=checks.output_dir,
                   help="folder of Inspect's logs (one per round)")  # fmt: skip
    _add_session_options(p)


def _folder(text: str) -> str:
    """``type=`` of an input folder: must exist and be a folder."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return text


def _add_lm_eval(rsub: Any) -> None:
    p = rsub.add_parser(
        "lm-eval",
        help="through lm-evaluation-harness (pip install 'fluid-bayes[lm-eval]')",
        description="Evaluate a model adaptively through lm-evaluation-harness: each round "
        "runs the chosen documents with one simple_evaluate(samples={task: [ids]}) call. "
        "The tasks are those of the bank's document map; the shipped mmlu_redux_local is "
        "always found.",
    )
    _add_live_args(p)
    p.add_argument("--model", required=True,
                   help="lm-eval model: hf, vllm, local-completions, ... or fluid-sim (the "
                   "simulated model: --model-args theta=X,seed=N[,bank=BANK.nc], by default "
                   "the --bank)")  # fmt: skip
    p.add_argument("--model-args", default="", metavar="K=V,...",
                   help="the model's arguments as lm-eval takes them, e.g. "
                   "pretrained=./ckpt,dtype=bfloat16")  # fmt: skip
    p.add_argument("--include-path", action="append", default=None, type=_folder,
                   metavar="DIR", help="folder of task YAMLs (repeatable; lm-eval's own "
                   "tasks are searched for names not found there)")  # fmt: skip
    p.add_argument("--metric", default=None,
                   help="per-sample metric read as the score (acc, else exact_match)")  # fmt: skip
    p.add_argument("--filter", default=None,
                   help="filter read when a task has several (gsm8k: strict-match)")  # fmt: skip
    p.add_argument("--batch-size", default=None, help="lm-eval's batch size (N or auto)")
    p.add_argument("--device", default=None, help="lm-eval's device (cuda:0, cpu, ...)")
    p.add_argument("--num-fewshot", type=int, default=None, metavar="N",
                   help="few-shot examples (tasks that fix their own keep it)")  # fmt: skip
    p.add_argument("--apply-chat-template", action="store_true",
                   help="format prompts with the model's chat template")  # fmt: skip
    p.add_argument("--harness-output", action="store_true",
                   help="show lm-eval's log and progress bars (hidden by default)")  # fmt: skip
    _add_session_options(p)


def add_run_commands(sub: Any) -> None:
    """Add ``run`` and its harness subcommands to the top-level subparsers."""
    run = sub.add_parser("run", help="live adaptive evaluation of a model through a harness")
    rsub = run.add_subparsers(dest="run_command", required=True)
    _add_inspect(rsub)
    _add_lm_eval(rsub)


def _config(args: argparse.Namespace):
    from functools import partial

    from fluid_bayes.adaptive.options import SessionConfig
    from fluid_bayes.harness.loop import DEFAULT_ROUND_SIZE  # not at parse time: numba

    build = partial(SessionConfig.for_method, args.method)
    k = DEFAULT_ROUND_SIZE if args.round_size is None else args.round_size
    return checks.options_from(args, SessionConfig, build, round_size=k)


def _pairs(args: argparse.Namespace, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in getattr(args, name):
        if key in out:
            raise OptionError(f"--{name.replace('_', '-')}: {key} given twice")
        out[key] = value
    return out


def _report(live: Any, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(live.to_dict()))
    else:
        print(live)
    if live.session_path is not None:
        print(f"session saved in {live.session_path}", file=sys.stderr)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    config = _config(args)  # every option checked before the bank is loaded
    model_args, task_args = _pairs(args, "model_args"), _pairs(args, "task_args")
    if args.model.startswith("fluidsim/") or args.model == "fluidsim":
        model_args.setdefault("bank", args.bank)  # the simulated model answers this bank
    from fluid_bayes.harness.inspect import require_inspect

    require_inspect()  # the missing extra is the first error, before the bank loads
    from fluid_bayes.harness.inspect import run_live

    live = run_live(
        args.bank,
        args.task,
        args.model,
        log_dir=args.log_dir,
        model_args=model_args,
        task_args=task_args,
        scorer=args.scorer,
        session=args.session,
        subject=args.subject,
        config=config,
        progress=None if args.quiet else lambda line: print(line, file=sys.stderr),
    )
    return _report(live, args)


def _cmd_lm_eval(args: argparse.Namespace) -> int:
    config = _config(args)  # every option checked before the bank is loaded
    from fluid_bayes.harness.lm_eval_tasks import require_lm_eval

    require_lm_eval()  # the missing extra is the first error, before the bank loads
    from fluid_bayes.harness.lm_eval import run_live

    model_args = args.model_args
    if args.model == "fluid-sim" and not any(
        kv.split("=", 1)[0].strip() == "bank" for kv in model_args.split(",")
    ):  # the simulated model answers the bank being run unless told otherwise
        model_args = ",".join(filter(None, [model_args, f"bank={args.bank}"]))
    eval_args: dict[str, Any] = {}
    if args.num_fewshot is not None:
        eval_args["num_fewshot"] = args.num_fewshot
    if args.apply_chat_template:
        eval_args["apply_chat_template"] = True
    live = run_live(
        args.bank,
        args.model,
        model_args=model_args,
        include_path=args.include_path,
        metric=args.metric,
        filter=args.filter,
        batch_size=args.batch_size,
        device=args.device,
        eval_args=eval_args,
        quiet=not args.harness_output,
        session=args.session,
        subject=args.subject,
        config=config,
        progress=None if args.quiet else lambda line: print(line, file=sys.stderr),
    )
    return _report(live, args)


_HANDLERS = {"inspect": _cmd_inspect, "lm-eval": _cmd_lm_eval}


def cmd_run(args: argparse.Namespace) -> int:
    """Run ``fluid-bayes run <harness>``; returns the exit status.

    Raises
    ------
    DataError, BankError, OptionError
        Bad input, before the harness runs anything (``main`` prints them as one
        line and exits with status 2). A failure of the harness or the model during a
        round is printed here as one line and returns 4 (the answers of earlier rounds
        are in the session file; rerun to resume).
    """
    from fluid_bayes.harness.loop import HarnessRunError

    try:
        return _HANDLERS[args.run_command](args)
    except HarnessRunError as exc:  # the harness or the model failed mid-run
        again = ""
        if args.session:
            again = f"; the answers before it are in {args.session}: rerun to resume"
        print(f"fluid-bayes: harness failed: {' '.join(str(exc).split())}{again}",
              file=sys.stderr)  # fmt: skip
        return 4
