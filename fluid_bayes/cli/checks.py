"""The command line's checks of its input, all made before any work starts.

Values, input files and output paths are checked while argparse parses (``type=``
functions), so a bad one stops the command with one line ``fluid-bayes: error:
argument --OPTION: ...`` and exit status 2 before a bank is loaded or a sampler
started. Options backed by a configuration dataclass are built from its fields
(:func:`add_fields`, :func:`options_from`): the flag, its help, its allowed values
(:class:`~fluid_bayes.ranges.Range`) and its default come from the field, and the
parsed values are passed on to the dataclass whole, so no option can be parsed and
dropped. Output folders that do not exist yet are created by :func:`prepare_outputs`
once parsing succeeded. Pure Python: nothing here imports numpy or PyMC.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fluid_bayes.exceptions import DataError, OptionError
from fluid_bayes.ranges import Range

__all__ = [
    "OutputDir",
    "OutputFile",
    "Parser",
    "add_fields",
    "add_worker_args",
    "flag",
    "input_file",
    "input_path",
    "item_list",
    "json_object",
    "options_from",
    "output_dir",
    "output_file",
    "output_file_or_stdout",
    "prepare_outputs",
    "typed",
    "worker_pool",
]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``fluid-bayes: error: ...``."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"fluid-bayes: error: {message} (see {self.prog} --help)\n")


def typed(rng: Range, name: str = "value") -> Callable[[str], Any]:
    """An argparse ``type=`` that converts a word and checks it against ``rng``.

    Returns
    -------
    callable
        ``str -> int | float | str``, raising ``argparse.ArgumentTypeError`` with
        :meth:`Range.parse`'s message (argparse prefixes the option's name).
    """

    def convert(text: str) -> Any:
        try:
            return rng.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


# -------------------------------------------------------------------------- paths
class OutputFile(str):
    """A checked output file path (its folder is created by :func:`prepare_outputs`)."""


class OutputDir(str):
    """A checked output folder (created by :func:`prepare_outputs`)."""


def _fail(text: str, why: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{text}: {why}")


def input_path(text: str) -> str:
    """``type=`` of an input that may be a file or a folder (lm-eval logs): must exist."""
    p = Path(text)
    if not p.exists():
        raise _fail(text, "no such file or folder")
    if p.is_file() and not _readable(p):
        raise _fail(text, "cannot be read (permission denied)")
    return text


def input_file(text: str) -> str:
    """``type=`` of an input file: must exist, be a file and be readable."""
    p = Path(text)
    if not p.exists():
        raise _fail(text, "no such file")
    if not p.is_file():
        raise _fail(text, "not a file")
    if not _readable(p):
        raise _fail(text, "cannot be read (permission denied)")
    return text


def _readable(p: Path) -> bool:
    try:
        with p.open("rb") as fh:
            fh.read(1)
    except OSError:
        return False
    return True


def _existing_folder(text: str, folder: Path) -> Path:
    """The nearest existing ancestor of ``folder``, checked to be a writable folder."""
    here = folder
    while not here.exists():
        if here.parent == here:
            break
        here = here.parent
    if not here.is_dir():
        raise _fail(text, f"{here} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=here):
            pass
    except OSError as exc:
        raise _fail(text, f"folder {here} is not writable ({exc.strerror or exc})") from None
    return here


def output_file(text: str) -> OutputFile:
    """``type=`` of an output file: not a folder, and writable (its folder may be created)."""
    p = Path(text)
    if p.is_dir():
        raise _fail(text, "is a folder, not a file")
    if p.exists():
        try:
            with p.open("ab"):
                pass
        except OSError as exc:
            raise _fail(text, f"cannot be written ({exc.strerror or exc})") from None
    else:
        _existing_folder(text, p.parent if str(p.parent) else Path("."))
    return OutputFile(text)


def output_file_or_stdout(text: str) -> str:
    """:func:`output_file`, or ``-`` for standard output."""
    return text if text == "-" else output_file(text)


def output_dir(text: str) -> OutputDir:
    """``type=`` of an output folder: a writable folder, or one that can be created."""
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise _fail(text, "is a file, not a folder")
    _existing_folder(text, p)
    return OutputDir(text)


def prepare_outputs(args: argparse.Namespace) -> None:
    """Create the folders the output paths of ``args`` need (after parsing succeeded).

    Raises
    ------
    DataError
        A folder cannot be created.
    """
    for value in vars(args).values():
        for v in value if isinstance(value, list) else [value]:
            folder = Path(v) if isinstance(v, OutputDir) else None
            if isinstance(v, OutputFile):
                folder = Path(v).parent
            if folder is not None:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise DataError(f"{v}: cannot create folder {folder} ({exc})") from None


def item_list(text: str) -> tuple[str, ...]:
    """``type=`` of a text file of item ids, one per line (``#`` comments): the ids."""
    input_file(text)
    try:
        lines = Path(text).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(text, f"not a readable UTF-8 text file ({exc})") from None
    return tuple(x.strip() for x in lines if x.strip() and not x.lstrip().startswith("#"))


def json_object(text: str) -> str:
    """``type=`` of a JSON object given on the command line (returned as the text)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object {{...}}, got {text!r}")
    return text


# ------------------------------------------------------------ dataclass options
def flag(name: str) -> str:
    """The command-line flag of a field: ``max_items`` -> ``--max-items``."""
    return "--" + name.replace("_", "-")


def add_fields(
    group: Any,
    cls: type,
    *,
    special: dict[str, dict[str, Any]] | None = None,
    unset: Iterable[str] = (),
) -> None:
    """Add one flag per field of the dataclass ``cls`` to an argparse parser or group.

    Parameters
    ----------
    group : argparse.ArgumentParser or argument group
        Where the flags go.
    cls : type
        A dataclass whose fields carry ``help`` and ``range`` or ``choices`` metadata
        (:func:`fluid_bayes.ranges.option`).
    special : dict, optional
        Field name -> ``add_argument`` keywords that replace the derived ones (e.g. a
        file read into a tuple).
    unset : iterable of str
        Fields whose flag defaults to ``None`` (the dataclass then decides, e.g. a
        method preset) rather than to the field's default.
    """
    special = special or {}
    unset = set(unset)
    for f in dataclasses.fields(cls):
        meta, default = f.metadata, f.default
        kw: dict[str, Any] = {"dest": f.name, "default": None if f.name in unset else default}
        text = meta.get("help", "")
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            if "choices" in meta:
                kw["choices"] = meta["choices"]
            if "range" in meta:
                kw["type"] = typed(meta["range"], f.name)
            if "metavar" in meta:
                kw["metavar"] = meta["metavar"]
            if default is not None and f.name not in unset and default != ():
                text = f"{text} ({default})"
        kw["help"] = text
        kw.update(special.get(f.name, {}))
        group.add_argument(flag(f.name), **kw)


def options_from(args: argparse.Namespace, cls: type, build: Callable[..., Any] | None = None,
                 **override: Any) -> Any:  # fmt: skip
    """Build the dataclass ``cls`` from every one of its fields in ``args``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed flags added by :func:`add_fields`.
    cls : type
        The dataclass.
    build : callable, optional
        Constructor to call instead of ``cls`` (e.g. ``SessionConfig.for_method``).
    **override
        Values that replace the parsed ones.

    Raises
    ------
    OptionError
        The dataclass refused the combination; field names in the message are
        written as their flags (``min_items`` -> ``--min-items``).
    """
    names = [f.name for f in dataclasses.fields(cls)]
    values = {name: getattr(args, name) for name in names} | override
    try:
        return (build or cls)(**values)
    except ValueError as exc:
        pattern = r"\b(" + "|".join(map(re.escape, names)) + r")\b"
        raise OptionError(re.sub(pattern, lambda m: flag(m.group(1)), str(exc))) from None


# ------------------------------------------------------------------ workers
def add_worker_args(p: argparse.ArgumentParser) -> None:
    """``--workers N`` and ``--scheduler ADDRESS`` (one or the other), checked while parsing.

    ``--workers`` unset means ``auto``
    (:class:`~fluid_bayes.adaptive.workers.Workers`): a local cluster of the cores
    available once the sessions left would take more than ``AUTO_SECONDS`` here.
    """
    from fluid_bayes.adaptive.workers import AUTO_SECONDS, available_cores
    from fluid_bayes.ranges import COUNT

    g = p.add_argument_group("workers (dask.distributed)").add_mutually_exclusive_group()
    g.add_argument("--workers", type=typed(COUNT, "workers"), default=None, metavar="N",
                   help="worker processes the sessions are spread over: 1 runs them here; "
                   f"default: the cores available ({available_cores()}), started only when "
                   f"the sessions would take over {AUTO_SECONDS:g} s here")  # fmt: skip
    g.add_argument("--scheduler", type=_address, default=None, metavar="ADDRESS",
                   help="send the sessions to the existing Dask cluster at ADDRESS "
                   "(tcp://host:8786)")  # fmt: skip


def _address(text: str) -> str:
    from fluid_bayes.adaptive.workers import check_workers

    try:
        check_workers(1, text)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def worker_pool(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> Any:
    """The :class:`~fluid_bayes.adaptive.workers.Workers` of ``--workers``/``--scheduler``.

    Enter it (``with``) to connect to ``--scheduler`` before any work.
    """
    from fluid_bayes.adaptive.workers import Workers

    workers = args.workers or (1 if args.scheduler else "auto")
    return Workers(workers, args.scheduler, log=log)
