"""The session file: its format, its structure check and its checksum.

:meth:`fluid_bayes.adaptive.session.Session.save` writes it and
:meth:`~fluid_bayes.adaptive.session.Session.load` reads it through
:func:`read_session_file`, which checks everything that can be checked without the bank:
that the file is JSON of this format and a known version, its checksum, and every key and
type (:func:`check_structure`); the session then replays the records against the bank.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from fluid_bayes.adaptive.options import SessionConfig
from fluid_bayes.exceptions import DataError

__all__ = ["SESSION_FORMAT", "SESSION_VERSION", "check_structure", "checksum", "read_session_file"]

SESSION_FORMAT = "fluid-bayes-session"
#: 2: each record also stores the estimate after it (checked on load); 1 is still read
#: 3: the unanswered items of a round in progress (``pending``), the round options and
#: the ``context`` (where the answers come from: harness, tasks, model)
SESSION_VERSION = 3
_ROUND_FIELDS = ("round_size", "round_rule")  # config fields since version 3
_BODY_KEYS = ("format", "version", "bank", "subject", "config", "records")
_V3_KEYS = ("context", "pending")
_RECORD_KEYS = ("item", "answer", "y", "theta_mean", "theta_sd")


def read_session_file(path: Path) -> dict[str, Any]:
    """The body of a session file, checked (format, version, checksum, structure).

    Raises
    ------
    DataError
        Not readable JSON, not a session file, an unknown version, a checksum that
        differs (an edit), or a missing, unknown or mistyped key (named).
    """
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable session file ({exc})") from None
    if not isinstance(d, dict) or d.get("format") != SESSION_FORMAT:
        raise DataError(f"{path}: not a fluid-bayes session file")
    if d.get("version") not in (1, 2, SESSION_VERSION):
        raise DataError(f"{path}: session format version {d.get('version')!r} is not "
                        f"{SESSION_VERSION}")  # fmt: skip
    body = {k: v for k, v in d.items() if k != "checksum"}
    if d.get("checksum") != checksum(body):
        raise DataError(f"{path}: checksum mismatch: the session file was edited or "
                        "corrupted after it was saved")  # fmt: skip
    check_structure(d, path)
    return d


def check_structure(d: dict[str, Any], path: Path) -> None:
    """Every key and type of a session file's body (before anything is built from it).

    Raises
    ------
    DataError
        Naming the missing, unknown or mistyped key (and record).
    """
    version = d["version"]

    def keys(obj: Any, expected: tuple[str, ...], where: str) -> None:
        if not isinstance(obj, dict):
            raise DataError(f"{path}: {where} is not a JSON object")
        missing = [k for k in expected if k not in obj]
        extra = [k for k in obj if k not in expected]
        if missing or extra:
            raise DataError(f"{path}: {where}: " + "; ".join(
                ([f"missing key(s) {missing}"] if missing else [])
                + ([f"unknown key(s) {extra}"] if extra else [])))  # fmt: skip

    keys(d, (*_BODY_KEYS, *(_V3_KEYS if version >= 3 else ()), "checksum"), "the session")
    if not isinstance(d.get("context", {}), dict):
        raise DataError(f"{path}: context must be an object, got {d['context']!r}")
    for key in ("bank", "subject"):
        if not isinstance(d[key], str):
            raise DataError(f"{path}: {key} must be a string, got {d[key]!r}")
    names = tuple(f.name for f in dataclasses.fields(SessionConfig))
    if version < 3:
        names = tuple(n for n in names if n not in _ROUND_FIELDS)
    keys(d["config"], names, "config")
    exclude = d["config"]["exclude"]
    if not isinstance(exclude, list) or not all(isinstance(i, str) for i in exclude):
        raise DataError(f"{path}: config: exclude must be a list of item ids")
    if not isinstance(d["records"], list):
        raise DataError(f"{path}: records must be a list")
    pending = d.get("pending", [])
    if not isinstance(pending, list) or not all(isinstance(i, str) for i in pending):
        raise DataError(f"{path}: pending must be a list of item ids")
    expected = _RECORD_KEYS if version >= 2 else _RECORD_KEYS[:3]
    for k, rec in enumerate(d["records"]):
        where = f"record {k + 1}"
        keys(rec, expected, where)
        if not isinstance(rec["item"], str):
            raise DataError(f"{path}: {where}: item must be a string, got {rec['item']!r}")
        if rec["y"] not in (0, 1) or isinstance(rec["y"], bool):
            raise DataError(f"{path}: {where}: y must be 0 or 1, got {rec['y']!r}")
        numbers = [rec["answer"]] + [rec[x] for x in expected[3:]]
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers):
            raise DataError(f"{path}: {where}: answer and estimates must be numbers")


def checksum(body: dict[str, Any]) -> str:
    """SHA-256 of a session body (every key but ``checksum``, keys sorted)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
