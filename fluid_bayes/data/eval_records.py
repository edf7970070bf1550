"""Readers of HELM per-instance stats and every_eval_ever instance records; :func:`read_log`.

:func:`read_log` reads the logs of any harness (``LOG_FORMATS``: lm-eval, Inspect AI,
lighteval, HELM, every_eval_ever), as ``read_responses`` does for those formats.

HELM (``format="helm"``)
    ``per_instance_stats.json`` of each run folder ``runs/<suite>/<run name>/``, as
    HELM's ``Runner`` writes it: a JSON list of ``PerInstanceStats`` (``instance_id``,
    ``train_trial_index``, ``stats``, and ``perturbation`` for a perturbed instance),
    each stat a ``Stat`` (``name``: a ``MetricName`` with ``name``, ``split``,
    ``sub_split``, ``perturbation``; ``count``, ``sum``, ``mean`` ...; None fields left
    out). The run name is ``run_spec.json``'s ``name`` if the folder has one, else the
    folder's: ``<scenario>:<arg>=<value>,...,model=<org_model>``. Subject: its
    ``model=`` value (else ``model_deployment=``, else ``run_spec.json``'s
    ``adapter_spec.model``); item: ``<run name without model= and
    model_deployment=>/<instance_id>``, e.g. ``mmlu:subject=anatomy,method=multiple_
    choice_joint/id12``. The score is the stat's ``mean`` (``sum / count`` where it has
    none); trials (``train_trial_index``) are averaged; perturbed instances and stats
    are left out and counted.
every_eval_ever (``format="eee"``)
    Instance-level JSON lines (``<uuid>_samples.jsonl``) of the EvalEval coalition's
    schema, ``instance_level_eval.schema.json`` version 0.3.0: one record per sample
    and aggregate result, with ``model_id``, ``evaluation_name``, ``sample_id``,
    ``evaluation_result_id`` (optional) and ``evaluation`` = ``{score, is_correct}``.
    Subject: ``model_id``; item: ``<evaluation_name>/<sample_id>``; score:
    ``evaluation.score``. Where one evaluation has records of several
    ``evaluation_result_id`` (one per aggregate metric), ``metric=`` picks one. Records
    of one sample that differ by ``metadata.epoch`` (Inspect epochs) are averaged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fluid_bayes.data.harness_logs import (
    ScoreCells,
    detect_harness_format,
    read_inspect,
    read_lighteval,
)
from fluid_bayes.data.lmeval import read_lm_eval
from fluid_bayes.data.report import show_ids
from fluid_bayes.data.responses import ResponseMatrix
from fluid_bayes.data.tables import json_lines
from fluid_bayes.exceptions import DataError

__all__ = ["LOG_FORMATS", "read_eee", "read_helm", "read_log"]

#: ``format=`` values of harness logs (see :func:`read_log`)
LOG_FORMATS: tuple[str, ...] = ("lm-eval", "inspect", "lighteval", "helm", "eee")

_RUN_MODEL_ARGS = ("model", "model_deployment")


def _files(path: Path, pattern: str, what: str) -> list[Path]:
    """One file, or the files matching ``pattern`` under a directory, sorted."""
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted(f for f in path.rglob(pattern) if f.is_file())
    if not files:
        raise DataError(f"{path}: no {what} found")
    return files


# -- HELM -----------------------------------------------------------------------------------


def _load_json(p: Path) -> Any:
    """A whole JSON file, or a DataError naming it."""
    try:
        return json.loads(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not a UTF-8 text file ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}, line {exc.lineno}: invalid JSON ({exc.msg})") from None


def _helm_run(run_dir: Path) -> tuple[str, str, str]:
    """Subject, item prefix and the run name's origin of a HELM run folder."""
    spec_file = run_dir / "run_spec.json"
    spec: dict[str, Any] = {}
    name, origin = run_dir.name, "folder name"
    if spec_file.is_file():
        spec = _load_json(spec_file)
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise DataError(f"{spec_file}: no run spec 'name' (text)")
        name, origin = spec["name"], "run_spec.json"
    scenario, colon, arg_text = name.partition(":")
    args = [a for a in arg_text.split(",") if a] if colon else []
    kept, found = [], {}
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key in _RUN_MODEL_ARGS:
            found[key] = value
        else:
            kept.append(a)
    subject = next((found[k] for k in _RUN_MODEL_ARGS if found.get(k)), None)
    if subject is None:
        model = (spec.get("adapter_spec") or {}).get("model")
        if not isinstance(model, str) or not model:
            raise DataError(
                f"{run_dir}: run name {name!r} has no model= argument and no run_spec.json"
                " gives adapter_spec.model"
            )
        subject = model
    prefix = scenario + (":" + ",".join(kept) if kept else "")
    return subject, prefix, origin


def _helm_value(stat: dict[str, Any], where: str) -> float | None:
    """The per-instance value of a stat: its mean, else sum / count (None: no count)."""
    count = stat.get("count", 0)
    if isinstance(count, bool) or not isinstance(count, int | float):
        raise DataError(f"{where}: count {count!r} is not a number")
    if "mean" in stat and stat["mean"] is not None:
        return stat["mean"]
    if not count:
        return None
    total = stat.get("sum")
    if isinstance(total, bool) or not isinstance(total, int | float):
        raise DataError(f"{where}: no mean and sum {total!r} is not a number")
    return total / count


def _helm_record(
    p: Path, k: int, rec: Any, metric: str
) -> tuple[str, int, dict[str, Any] | None, int]:
    """instance_id, trial, the unperturbed stat of ``metric`` (or None), perturbed stats."""
    where = f"{p}, record {k}"
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected an object (a PerInstanceStats)")
    iid = rec.get("instance_id")
    if not isinstance(iid, str) or not iid:
        raise DataError(f"{where}: field 'instance_id' {iid!r} is missing or not text")
    trial = rec.get("train_trial_index", 0)
    if isinstance(trial, bool) or not isinstance(trial, int):
        raise DataError(f"{where} ({iid}): field 'train_trial_index' {trial!r} is not an integer")
    stats = rec.get("stats")
    if not isinstance(stats, list):
        raise DataError(f"{where} ({iid}): field 'stats' is missing or not a list")
    hits, perturbed = [], 0
    for j, st in enumerate(stats, start=1):
        name = st.get("name") if isinstance(st, dict) else None
        if not isinstance(name, dict) or not isinstance(name.get("name"), str):
            raise DataError(f"{where} ({iid}), stat {j}: field 'name' has no metric 'name'")
        if name["name"] != metric:
            continue
        if name.get("perturbation") is not None:
            perturbed += 1
        else:
            hits.append(st)
    if len(hits) > 1:
        splits = [
            "/".join(str(h["name"].get(f)) for f in ("split", "sub_split") if h["name"].get(f))
            for h in hits
        ]
        raise DataError(
            f"{where} ({iid}): {len(hits)} {metric!r} stats (splits {', '.join(splits)})"
        )
    return iid, trial, (hits[0] if hits else None), perturbed


def read_helm(
    path: str | Path, *, metric: str | None = None, threshold: float | None = None
) -> ResponseMatrix:
    """Read HELM ``per_instance_stats.json`` files (one per run folder).

    Parameters
    ----------
    path : str or Path
        One ``per_instance_stats.json``, or a directory (a suite's ``runs/<suite>/``, or
        HELM's ``benchmark_output``) searched recursively for them. Subject, item and
        score: see the module docstring.
    metric : str, optional
        The stat read, by its ``name.name``; default ``exact_match``.
    threshold : float, optional
        Binarization threshold, required when some value (or mean over trials) is
        neither 0 nor 1.

    Returns
    -------
    ResponseMatrix
        Instances without the stat are missing; perturbed instances and stats are left
        out; both counted in ``report.notes``.

    Raises
    ------
    DataError
        No files, invalid JSON, a file that is not a list, a record without
        ``instance_id`` or ``stats``, no stat ``metric`` in a whole run (naming the stats
        it has), a value not a number in [0, 1], two stats of the metric for one
        record, the same instance and trial twice, or two runs of one model and
        scenario; messages name the file and the 1-based record.
    """
    root = Path(path)
    files = _files(root, "per_instance_stats.json", "HELM per_instance_stats.json files")
    chosen = metric if metric is not None else "exact_match"
    how = "as asked" if metric is not None else "default"
    cells = ScoreCells(str(root), repeats="trials")
    owner: dict[tuple[str, str], Path] = {}
    notes = [f"{root}: {len(files)} HELM run(s), stat {chosen!r} ({how})"]
    for p in files:
        subject, prefix, origin = _helm_run(p.parent)
        if (subject, prefix) in owner:
            raise DataError(
                f"{p}: second run of model {subject!r} and {prefix!r} (the first is"
                f" {owner[(subject, prefix)]}); keep one"
            )
        owner[(subject, prefix)] = p
        records = _load_json(p)
        if not isinstance(records, list):
            raise DataError(f"{p}: expected a JSON list of per-instance stats")
        n_perturbed_rec = n_perturbed_stat = n_found = 0
        names: set[str] = set()
        for k, rec in enumerate(records, start=1):
            if isinstance(rec, dict) and rec.get("perturbation") is not None:
                n_perturbed_rec += 1
                continue
            iid, trial, stat, perturbed = _helm_record(p, k, rec, chosen)
            n_perturbed_stat += perturbed
            if stat is None:
                names.update(
                    s["name"]["name"] for s in rec["stats"] if isinstance(s.get("name"), dict)
                )
            n_found += stat is not None
            where = f"{p}, record {k} ({iid}), stat {chosen!r}"
            value = None if stat is None else _helm_value(stat, where)
            why = f"no {chosen!r} stat" if stat is None else "count 0"
            cells.add(subject, f"{prefix}/{iid}", value, where=where, repeat=trial, missing=why)
        if records and not n_found and not n_perturbed_stat:
            raise DataError(
                f"{p}: no stat {chosen!r} in any record; its stats: {show_ids(sorted(names))}"
            )
        note = f"{p.parent.name}: model {subject!r}, items {prefix!r}/... (run name from {origin})"
        notes.append(f"{note}, {len(records)} record(s)")
        if n_perturbed_rec or n_perturbed_stat:
            notes.append(
                f"{p.parent.name}: left out {n_perturbed_rec} perturbed instance record(s)"
                f" and {n_perturbed_stat} perturbed {chosen!r} stat(s)"
            )
    return cells.build(threshold=threshold, notes=notes)


# -- every_eval_ever -------------------------------------------------------------------------


def _eee_text(obj: dict[str, Any], field: str, where: str) -> str:
    """A required id field of an instance record, as text."""
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise DataError(f"{where}: field {field!r} {value!r} is missing or not text")
    return str(value)


def _eee_records(p: Path) -> list[tuple[int, str, str, str, str | None, Any, str | None]]:
    """(line, model, evaluation, sample, result id, score, epoch) per record of a file."""
    out = []
    for n, obj in json_lines(p, str(p)):
        where = f"{p}, line {n}"
        model = _eee_text(obj, "model_id", where)
        evaluation = _eee_text(obj, "evaluation_name", where)
        sample = _eee_text(obj, "sample_id", where)
        where = f"{where} (sample_id {sample})"
        result = obj.get("evaluation_result_id")
        if result is not None and not isinstance(result, str):
            raise DataError(f"{where}: field 'evaluation_result_id' {result!r} is not text")
        ev = obj.get("evaluation")
        if not isinstance(ev, dict) or "score" not in ev:
            raise DataError(f"{where}: field 'evaluation' has no 'score'")
        meta = obj.get("metadata")
        epoch = meta.get("epoch") if isinstance(meta, dict) else None
        out.append((n, model, evaluation, sample, result, ev["score"], epoch))
    if not out:
        raise DataError(f"{p}: empty file, no instance records")
    return out


def read_eee(
    path: str | Path, *, metric: str | None = None, threshold: float | None = None
) -> ResponseMatrix:
    """Read every_eval_ever instance-level JSON lines (``*_samples.jsonl``).

    Parameters
    ----------
    path : str or Path
        One JSON-lines file, or a directory (e.g. a datastore's ``data/``) searched
        recursively for ``*.jsonl`` files whose first record is an instance record.
        Subject ``model_id``, item ``<evaluation_name>/<sample_id>``, score
        ``evaluation.score``.
    metric : str, optional
        The ``evaluation_result_id`` read where an evaluation has records of several
        (required there); an evaluation with records of one id only is read whatever
        this says (noted in the report when it differs).
    threshold : float, optional
        Binarization threshold, required when some score is neither 0 nor 1.

    Returns
    -------
    ResponseMatrix
        Records of other ``evaluation_result_id`` values are left out and counted in
        ``report.notes``; null scores are missing.

    Raises
    ------
    DataError
        No files, an empty file, invalid JSON, a missing ``model_id``,
        ``evaluation_name``, ``sample_id`` or ``evaluation.score``, a score not a number
        in [0, 1], several result ids and no ``metric=`` (or one not among them), or one
        sample twice without distinct ``metadata.epoch``; messages name the file, line
        and field.
    """
    root = Path(path)
    if root.is_dir():
        files = [
            f
            for f in _files(root, "*.jsonl", "every_eval_ever instance files (*.jsonl)")
            if detect_harness_format(f) == "eee"
        ]
        if not files:
            raise DataError(f"{root}: no every_eval_ever instance-level JSON lines found")
    else:
        files = _files(root, "*.jsonl", "")
    records = [(p, r) for p in files for r in _eee_records(p)]
    results: dict[str, dict[str | None, int]] = {}  # evaluation -> result id -> records
    for _, (_, _, evaluation, _, result, _, _) in records:
        counts = results.setdefault(evaluation, {})
        counts[result] = counts.get(result, 0) + 1
    keep: dict[str, str | None] = {}
    notes = [f"{root}: {len(files)} every_eval_ever file(s), {len(records)} record(s)"]
    for evaluation, counts in results.items():
        ids = list(counts)
        shown = ", ".join(repr(i) for i in ids)
        if len(ids) == 1:
            keep[evaluation] = ids[0]
            if metric is not None and metric != ids[0]:
                notes.append(
                    f"evaluation {evaluation!r}: no result id {metric!r}; read its only one"
                    f" {ids[0]!r}"
                )
            continue
        if metric is None:
            raise DataError(
                f"{root}: evaluation {evaluation!r} has records of several"
                f" evaluation_result_id ({shown}); choose one with metric="
            )
        if metric not in counts:
            raise DataError(
                f"{root}: evaluation {evaluation!r} has no records with evaluation_result_id"
                f" {metric!r}; its ids: {shown}"
            )
        keep[evaluation] = metric
        left = sum(c for i, c in counts.items() if i != metric)
        notes.append(
            f"evaluation {evaluation!r}: result id {metric!r}, left out {left} record(s)"
            f" of the others ({shown})"
        )
    cells = ScoreCells(str(root), repeats="epochs")
    for p, (n, model, evaluation, sample, result, score, epoch) in records:
        if result != keep[evaluation]:
            continue
        where = f"{p}, line {n} (sample_id {sample}), field 'evaluation.score'"
        cells.add(model, f"{evaluation}/{sample}", score, where=where, repeat=epoch)
    return cells.build(threshold=threshold, notes=notes)


# -- any harness ---------------------------------------------------------------------------


def read_log(
    path: str | Path,
    *,
    format: str,  # noqa: A002 - read_responses' keyword
    metric: str | None = None,
    filter: str | None = None,  # noqa: A002 - lm-eval's own word
    threshold: float | None = None,
) -> ResponseMatrix:
    """Read the per-sample logs of one harness.

    Parameters
    ----------
    path : str or Path
        A log file or a directory of them.
    format : {"lm-eval", "inspect", "lighteval", "helm", "eee"}
        The harness: :func:`fluid_bayes.data.lmeval.read_lm_eval`,
        :func:`fluid_bayes.data.harness_logs.read_inspect`,
        :func:`~fluid_bayes.data.harness_logs.read_lighteval`, :func:`read_helm`,
        :func:`read_eee` (every_eval_ever).
    metric : str, optional
        What is read: the metric (lm-eval, lighteval), the scorer (Inspect AI), the stat
        (HELM) or the ``evaluation_result_id`` (every_eval_ever); default: each reader's.
    filter : str, optional
        lm-eval only: the filter.
    threshold : float, optional
        Binarization threshold (score ``>= threshold`` is correct).

    Returns
    -------
    ResponseMatrix

    Raises
    ------
    DataError
        ``filter`` for another harness than lm-eval, or any error of the reader.
    ValueError
        ``format`` not in :data:`LOG_FORMATS`.
    """
    if format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {format!r}; expected one of {', '.join(LOG_FORMATS)}")
    if filter is not None and format != "lm-eval":
        raise DataError(f"{path}: filter applies to lm-eval samples, not {format!r} logs")
    if format == "lm-eval":
        return read_lm_eval(path, metric=metric, filter=filter, threshold=threshold)
    if format == "inspect":
        return read_inspect(path, scorer=metric, threshold=threshold)
    reader = {"lighteval": read_lighteval, "helm": read_helm, "eee": read_eee}[format]
    return reader(path, metric=metric, threshold=threshold)
