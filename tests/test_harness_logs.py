"""Tests of the readers of other harnesses' per-sample logs (Inspect AI, lighteval, HELM, EEE).

Every file is made at test time in ``tmp_path``, the way its harness writes it:

* Inspect AI: real ``.eval`` and ``.json`` logs written by Inspect's own ``eval()`` (a
  ``MemoryDataset`` task, a solver that returns fixed answers without calling a model,
  the built-in ``match()`` and ``includes()`` scorers, ``mockllm/...`` model names), and
  logs edited with ``inspect_ai.log.write_eval_log``. Skipped without inspect_ai.
* lighteval: parquet files with the columns and Arrow types that lighteval's
  ``EvaluationTracker.save`` gets from ``datasets.Dataset.from_list([asdict(detail)])``
  (lighteval 0.13, ``src/lighteval/logging/evaluation_tracker.py`` and
  ``info_loggers.py``: ``Detail(doc, model_response, metric)``, column ``id`` dropped,
  columns sorted; ``Doc`` in ``tasks/requests.py``, ``ModelResponse`` in
  ``models/model_output.py``); the types were read off a file written that way with
  datasets 5.2. Also lighteval 0.10's ``metrics`` struct column and the text columns of
  earlier versions (``str(value)`` per field, before lighteval PR #572).
* HELM: ``runs/<suite>/<run name>/per_instance_stats.json`` and ``run_spec.json`` as
  ``helm.benchmark.runner.Runner`` writes them (``asdict_without_nones`` of
  ``PerInstanceStats`` / ``Stat`` / ``MetricName``, ``metrics/metric.py``,
  ``statistic.py``, ``metric_name.py``), with a perturbed instance and two trials.
* every_eval_ever: instance records validated, in the test, against the schema
  ``tests/fixtures/every_eval_ever/instance_level_eval.schema.json`` (version 0.3.0).
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fluid_bayes.data.eval_records import read_eee, read_helm
from fluid_bayes.data.harness_logs import detect_harness_format, read_inspect, read_lighteval
from fluid_bayes.data.readers import FORMATS, detect_format, read_responses
from fluid_bayes.exceptions import DataError

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _value(rm, subject: str, item: str) -> float:
    return float(rm.values[list(rm.subjects).index(subject), list(rm.items).index(item)])


def test_formats_registered():
    assert {"inspect", "lighteval", "helm", "eee"} <= set(FORMATS)


# -- Inspect AI -------------------------------------------------------------------------------

ANSWERS = {  # model -> sample id -> fixed answer; targets: a=4, 2=5, c=6 / x=7, y=8
    "mockllm/alpha": {"a": "4", "2": "5 apples", "c": "no", "x": "7", "y": "8"},
    "mockllm/beta": {"a": "9", "2": "5", "c": "6"},
}


@pytest.fixture(scope="module")
def inspect_logs(tmp_path_factory) -> Path:
    """Three real Inspect logs: alpha and beta on 'toy' (2 epochs, .eval), alpha on 'arith'."""
    pytest.importorskip("inspect_ai")
    from inspect_ai import Task, eval
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import includes, match
    from inspect_ai.solver import solver

    @solver
    def fixed():
        async def solve(state, generate):
            answer = ANSWERS[str(state.model)][str(state.sample_id)]
            state.output = ModelOutput.from_content(model=str(state.model), content=answer)
            return state

        return solve

    root = tmp_path_factory.mktemp("inspect") / "logs"
    toy = MemoryDataset(
        [Sample(input="q", target="4", id="a"), Sample(input="q", target="5", id=2),
         Sample(input="q", target="6", id="c")]
    )  # fmt: skip
    arith = MemoryDataset(
        [Sample(input="q", target="7", id="x"), Sample(input="q", target="8", id="y")]
    )
    kw = {"log_dir": str(root), "display": "none"}
    handlers = list(logging.root.handlers)  # eval() adds its own; put back after
    with warnings.catch_warnings():  # Inspect's runner leaves anyio streams to the collector
        warnings.simplefilter("ignore", ResourceWarning)
        eval(Task(dataset=toy, solver=fixed(), scorer=[match(), includes()], name="toy"),
             model=["mockllm/alpha", "mockllm/beta"], epochs=2, **kw)  # fmt: skip
        eval(Task(dataset=arith, solver=fixed(), scorer=includes(), name="arith"),
             model="mockllm/alpha", log_format="json", **kw)  # fmt: skip
        gc.collect()
    logging.root.handlers[:] = handlers
    return root


def _log_file(root: Path, model: str, task: str) -> Path:
    from inspect_ai.log import read_eval_log

    for p in sorted(root.iterdir()):
        log = read_eval_log(str(p), header_only=True)
        if log.eval.model == model and log.eval.task == task:
            return p
    raise AssertionError(f"no log of {model} {task}")


def test_inspect_reads_a_folder_of_logs(inspect_logs):
    rm = read_inspect(inspect_logs)
    assert set(rm.subjects) == {"mockllm/alpha", "mockllm/beta"}
    assert set(rm.items) == {"toy/a", "toy/2", "toy/c", "arith/x", "arith/y"}
    # match() (toy's first scorer): "5 apples" does not end with 5; includes() would.
    expected = {("alpha", "toy/a"): 1, ("alpha", "toy/2"): 0, ("alpha", "toy/c"): 0,
                ("beta", "toy/a"): 0, ("beta", "toy/2"): 1, ("beta", "toy/c"): 1,
                ("alpha", "arith/x"): 1, ("alpha", "arith/y"): 1}  # fmt: skip
    for (m, item), v in expected.items():
        assert _value(rm, f"mockllm/{m}", item) == v, (m, item)
    assert np.isnan(_value(rm, "mockllm/beta", "arith/x"))  # beta never ran arith
    notes = "\n".join(rm.report.notes)
    assert "scorer 'match' (the first of 'match', 'includes')" in notes
    assert "epochs 2" in notes and "mean over 2 epochs" in notes
    assert detect_format(inspect_logs) == "inspect"
    for p in inspect_logs.iterdir():
        assert detect_format(p) == "inspect"


def test_inspect_scorer_option(inspect_logs):
    toy = _log_file(inspect_logs, "mockllm/alpha", "toy")
    rm = read_responses(toy, metric="includes")  # format auto, metric = the scorer
    assert list(rm.subjects) == ["mockllm/alpha"]
    assert _value(rm, "mockllm/alpha", "toy/2") == 1.0
    with pytest.raises(DataError, match=r"no scorer 'nope'; its scorers: match, includes"):
        read_inspect(toy, scorer="nope")
    json_log = _log_file(inspect_logs, "mockllm/alpha", "arith")
    assert json_log.suffix == ".json"
    assert list(read_responses(json_log, format="inspect").items) == ["arith/x", "arith/y"]


def test_inspect_values_errors_and_duplicates(inspect_logs, tmp_path):
    from inspect_ai.log import read_eval_log, write_eval_log

    src = _log_file(inspect_logs, "mockllm/beta", "toy")
    log = read_eval_log(str(src))
    by_key = {(str(s.id), s.epoch): s for s in log.samples}
    by_key[("a", 1)].scores["match"].value = "P"
    by_key[("a", 2)].scores["match"].value = 1.0
    by_key[("c", 1)].scores["match"].value = 0.25
    out = tmp_path / "edited.eval"
    write_eval_log(log, str(out))
    with pytest.raises(DataError, match="continuous scores|threshold"):
        read_inspect(out)
    rm = read_inspect(out, threshold=0.5)
    assert _value(rm, "mockllm/beta", "toy/a") == 1.0  # mean(0.5, 1.0) = 0.75 >= 0.5
    assert _value(rm, "mockllm/beta", "toy/c") == 1.0  # mean(0.25, 1) = 0.625

    by_key[("c", 1)].scores["match"].value = {"acc": 1}
    write_eval_log(log, str(out))
    with pytest.raises(
        DataError, match=r"edited.eval, sample 'c', epoch 1, scorer 'match': .*dict"
    ):
        read_inspect(out)
    by_key[("c", 1)].scores["match"].value = "maybe"
    write_eval_log(log, str(out))
    with pytest.raises(DataError, match=r"sample 'c', epoch 1.*'maybe' is not C, I, P, N"):
        read_inspect(out)
    by_key[("c", 1)].scores["match"].value = "I"
    del by_key[("c", 2)].scores["match"]
    write_eval_log(log, str(out))
    rm = read_inspect(out, threshold=0.5)
    assert "1 record(s) without a score (no 'match' score)" in "\n".join(rm.report.notes)

    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(src, twin / "one.eval")
    shutil.copy(src, twin / "two.eval")
    with pytest.raises(DataError, match="second log of model 'mockllm/beta' and task 'toy'"):
        read_inspect(twin)
    (tmp_path / "broken.eval").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"broken.eval: not a readable Inspect log"):
        read_inspect(tmp_path / "broken.eval")


def test_inspect_needs_the_extra(tmp_path, monkeypatch):
    p = tmp_path / "x.eval"
    p.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # import fails
    with pytest.raises(DataError, match=r"needs inspect_ai: pip install fluid-bayes\[inspect\]"):
        read_inspect(p)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Inspect AI logs"):
        read_inspect(tmp_path / "empty")


# -- lighteval ----------------------------------------------------------------------------------

STAMP = "2025-11-05T14-43-47.148527"
_DOC = pa.struct([
    ("query", pa.string()), ("choices", pa.list_(pa.string())), ("gold_index", pa.int64()),
    ("instruction", pa.null()), ("images", pa.null()), ("specific", pa.null()),
    ("unconditioned_query", pa.null()), ("original_query", pa.null()), ("id", pa.string()),
    ("task_name", pa.string()), ("fewshot_samples", pa.list_(pa.null())),
    ("sampling_methods", pa.list_(pa.string())), ("fewshot_sorting_class", pa.null()),
    ("generation_size", pa.null()), ("stop_sequences", pa.null()), ("use_logits", pa.bool_()),
    ("num_samples", pa.int64()), ("generation_grammar", pa.null()),
])  # fmt: skip
_RESPONSE = pa.struct([
    ("input", pa.string()), ("input_tokens", pa.list_(pa.int64())), ("text", pa.list_(pa.null())),
    ("output_tokens", pa.list_(pa.null())), ("text_post_processed", pa.null()),
    ("reasonings", pa.list_(pa.null())), ("logprobs", pa.list_(pa.float64())),
    ("argmax_logits_eq_gold", pa.list_(pa.bool_())), ("logits", pa.null()),
    ("unconditioned_logprobs", pa.null()), ("truncated_tokens_count", pa.int64()),
    ("padded_tokens_count", pa.int64()),
])  # fmt: skip


def _details(path: Path, task: str, acc: list, acc_norm: list, ids: list[str] | None = None):
    """A lighteval >= 0.11 details file (columns doc, metric, model_response)."""
    ids = ids if ids is not None else [str(k) for k in range(len(acc))]
    rows = []
    for k, (a, an) in enumerate(zip(acc, acc_norm, strict=True)):
        doc = {"query": f"Question {k}?", "choices": [" A", " B"], "gold_index": 0,
               "id": ids[k], "task_name": task, "fewshot_samples": [],
               "sampling_methods": ["LOGPROBS"], "use_logits": False, "num_samples": 1}  # fmt: skip
        resp = {"input": doc["query"], "input_tokens": [1, 2], "text": [], "output_tokens": [],
                "reasonings": [], "logprobs": [-0.5, -1.5], "argmax_logits_eq_gold": [a == 1],
                "truncated_tokens_count": 0, "padded_tokens_count": 0}  # fmt: skip
        rows.append({"doc": doc, "metric": {"acc": a, "acc_norm": an}, "model_response": resp})
    metric = pa.struct([("acc", pa.float64()), ("acc_norm", pa.float64())])
    schema = pa.schema([("doc", _DOC), ("metric", metric), ("model_response", _RESPONSE)])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def _details_path(out: Path, model: str, task: str) -> Path:
    return out / "details" / model / STAMP / f"details_{task}_{STAMP}.parquet"


@pytest.fixture
def lighteval_out(tmp_path) -> Path:
    out = tmp_path / "out"
    task = "arc:challenge|25"
    _details(_details_path(out, "org/model-a", task), task, [1.0, 0.0, 1.0], [1.0, 1.0, 0.0])
    _details(_details_path(out, "model-b", task), task, [0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    _details(_details_path(out, "model-b", "gsm8k|5"), "gsm8k|5", [1.0], [1.0], ids=["12"])
    return out


def test_lighteval_reads_an_output_dir(lighteval_out):
    rm = read_lighteval(lighteval_out)
    assert list(rm.subjects) == ["model-b", "org/model-a"]
    assert list(rm.items) == ["arc:challenge|25/0", "arc:challenge|25/1", "arc:challenge|25/2",
                              "gsm8k|5/12"]  # fmt: skip
    np.testing.assert_array_equal(rm.values, [[0, 0, 1, 1], [1, 0, 1, np.nan]])
    assert "metric 'acc' (default)" in "\n".join(rm.report.notes)
    norm = read_responses(lighteval_out, metric="acc_norm")  # auto-detected
    np.testing.assert_array_equal(norm.values[1, :3], [1, 1, 0])
    assert detect_format(lighteval_out) == "lighteval"
    one = _details_path(lighteval_out, "org/model-a", "arc:challenge|25")
    assert detect_format(one) == "lighteval"
    assert list(read_lighteval(one).subjects) == ["org/model-a"]
    with pytest.raises(
        DataError, match=r"row 1, metric 'f1': no such metric \(its metrics: 'acc', 'acc_norm'\)"
    ):
        read_lighteval(one, metric="f1")


def test_lighteval_older_schemas_and_errors(tmp_path):
    # lighteval 0.10: one column per Detail field, metrics a struct; item = row index
    old = tmp_path / "m" / STAMP / f"details_hellaswag|10_{STAMP}.parquet"
    old.parent.mkdir(parents=True)
    table = pa.table({
        "choices": [[" a", " b"], [" a", " b"]], "example": ["x", "y"], "gold": [[" a"], [" b"]],
        "metrics": pa.array([{"acc": 1.0, "acc_norm": 0.0}, {"acc": 0.0, "acc_norm": 1.0}]),
        "predictions": [[[-1.0, 0.0]], [[-2.0, 0.0]]],
    })  # fmt: skip
    pq.write_table(table, old)
    rm = read_lighteval(tmp_path / "m")
    assert list(rm.subjects) == ["m"] and list(rm.items) == ["hellaswag|10/0", "hellaswag|10/1"]
    # before lighteval 0.10 every column was str(value): metrics the repr of a dict
    text = tmp_path / "t" / f"details_boolq|0_{STAMP}.parquet"
    text.parent.mkdir()
    pq.write_table(pa.table({"example": ["x"], "metrics": ["{'em': 1.0, 'f1': 0.5}"]}), text)
    assert read_lighteval(text).values.tolist() == [[1.0]]
    pq.write_table(pa.table({"example": ["x"], "metrics": ["{'f1': 0.5, 'bleu': 0.1}"]}), text)
    with pytest.raises(DataError, match=r"several metrics \('f1', 'bleu'\).*metric="):
        read_lighteval(text)
    pq.write_table(pa.table({"example": ["x"], "metrics": ["{'acc': 1.5}"]}), text)
    with pytest.raises(DataError, match=r"row 1, metric 'acc': 1.5 is outside \[0, 1\]"):
        read_lighteval(text)
    pq.write_table(pa.table({"example": ["x"]}), text)
    with pytest.raises(DataError, match="no 'metric' or 'metrics' column"):
        read_lighteval(text)
    dup = _details(tmp_path / "d" / f"details_t|0_{STAMP}.parquet", "t|0", [1.0, 0.0], [1.0, 0.0],
                   ids=["3", "3"])  # fmt: skip
    with pytest.raises(DataError, match=r"row 2, metric 'acc': second score .*item 't\|0/3'"):
        read_lighteval(dup)


# -- HELM ---------------------------------------------------------------------------------------


def _stat(name: str, value: float, split: str = "test", perturbation: dict | None = None):
    """A Stat of one instance as asdict_without_nones writes it."""
    metric = {"name": name, "split": split}
    if perturbation is not None:
        metric["perturbation"] = perturbation
    return {"name": metric, "count": 1, "sum": value, "sum_squared": value * value, "min": value,
            "max": value, "mean": float(value), "variance": 0.0, "stddev": 0.0}  # fmt: skip


def _helm_run(suite: Path, name: str, em: dict[str, list[float]], *, spec: bool = True) -> Path:
    """A run folder: exact_match per instance and trial, and one perturbed instance."""
    run = suite / name  # HELM names the folder by the run name
    run.mkdir(parents=True)
    typo = {"name": "typos", "robustness": True, "fairness": False, "computed_on": "perturbed"}
    records = []
    for iid, trials in em.items():
        for t, v in enumerate(trials):
            stats = [_stat("num_references", 4), _stat("exact_match", v),
                     _stat("quasi_exact_match", 1.0)]  # fmt: skip
            records.append({"instance_id": iid, "train_trial_index": t, "stats": stats})
            records.append({"instance_id": iid, "train_trial_index": t, "perturbation": typo,
                            "stats": [_stat("exact_match", 0.0, perturbation=typo)]})  # fmt: skip
    (run / "per_instance_stats.json").write_text(json.dumps(records, indent=2))
    if spec:
        model = name.rsplit("model=", 1)[1].replace("_", "/", 1)
        run_spec = {"name": name, "scenario_spec": {"class_name": "x.Scenario", "args": {}},
                    "adapter_spec": {"method": "multiple_choice_joint", "model": model,
                                     "model_deployment": model},
                    "metric_specs": [], "groups": ["mmlu"]}  # fmt: skip
        (run / "run_spec.json").write_text(json.dumps(run_spec, indent=2))
    return run


@pytest.fixture
def helm_runs(tmp_path) -> Path:
    suite = tmp_path / "benchmark_output" / "runs" / "v1"
    mmlu = "mmlu:subject=anatomy,method=multiple_choice_joint"
    _helm_run(suite, f"{mmlu},model=openai_gpt2", {"id1": [1.0], "id2": [0.0]})
    _helm_run(suite, f"{mmlu},model=eleutherai_pythia-1b-v0", {"id1": [0.0], "id2": [1.0]})
    _helm_run(suite, "boolq:model=openai_gpt2", {"id7": [1.0, 0.0]}, spec=False)
    return tmp_path / "benchmark_output"


def test_helm_reads_runs(helm_runs):
    with pytest.raises(DataError, match="threshold"):
        read_helm(helm_runs)  # boolq's two trials average to 0.5
    rm = read_helm(helm_runs, threshold=0.5)
    assert list(rm.subjects) == ["openai_gpt2", "eleutherai_pythia-1b-v0"]  # files sorted
    mmlu = "mmlu:subject=anatomy,method=multiple_choice_joint"
    assert list(rm.items) == ["boolq/id7", f"{mmlu}/id1", f"{mmlu}/id2"]
    assert _value(rm, "openai_gpt2", f"{mmlu}/id1") == 1.0
    assert _value(rm, "eleutherai_pythia-1b-v0", f"{mmlu}/id1") == 0.0
    assert _value(rm, "openai_gpt2", "boolq/id7") == 1.0
    notes = "\n".join(rm.report.notes)
    assert "left out 2 perturbed instance record(s)" in notes
    assert "mean over 2 trials" in notes and "run name from folder name" in notes
    assert detect_format(helm_runs) == "helm"
    quasi = read_responses(helm_runs, metric="quasi_exact_match")
    assert np.all(quasi.values[~np.isnan(quasi.values)] == 1.0)
    with pytest.raises(DataError, match=r"no stat 'f1' in any record; its stats: 'exact_match'"):
        read_helm(helm_runs, metric="f1")


def test_helm_malformed(tmp_path):
    run = tmp_path / "mmlu:model=a_b"
    run.mkdir()
    f = run / "per_instance_stats.json"
    f.write_text(json.dumps([{"train_trial_index": 0, "stats": []}]))
    with pytest.raises(DataError, match=r"per_instance_stats.json, record 1: field 'instance_id'"):
        read_helm(f)
    f.write_text(json.dumps({"instance_id": "id1"}))
    with pytest.raises(DataError, match="expected a JSON list"):
        read_helm(f)
    f.write_text("[{")
    with pytest.raises(DataError, match=r"line 1: invalid JSON"):
        read_helm(f)
    f.write_text(json.dumps([{"instance_id": "id1", "stats": [_stat("exact_match", 2.0)]}]))
    with pytest.raises(DataError, match=r"record 1 \(id1\), stat 'exact_match': 2.0 is outside"):
        read_helm(f)
    bare = tmp_path / "mmlu"
    bare.mkdir()
    (bare / "per_instance_stats.json").write_text("[]")
    with pytest.raises(DataError, match="has no model= argument"):
        read_helm(bare)


# -- every_eval_ever ------------------------------------------------------------------------------


def _eee(model: str, evaluation: str, sample: str, score: float, result: str | None = None,
         epoch: str | None = None) -> dict:  # fmt: skip
    """An instance record of the every_eval_ever schema 0.3.0."""
    rec = {
        "schema_version": "0.3.0",
        "evaluation_id": f"demo/{model.replace('/', '_')}/1750000000",
        "model_id": model,
        "evaluation_name": evaluation,
        "sample_id": sample,
        "interaction_type": "single_turn",
        "input": {"raw": f"Question {sample}?", "reference": ["4"]},
        "output": {"raw": ["4" if score else "5"]},
        "answer_attribution": [{"turn_idx": 0, "source": "output.raw", "extracted_value": "4",
                                "extraction_method": "match", "is_terminal": True}],
        "evaluation": {"score": score, "is_correct": bool(score)},
    }  # fmt: skip
    if result is not None:
        rec["evaluation_result_id"] = result
    if epoch is not None:
        rec["metadata"] = {"epoch": epoch}
    return rec


def _write_eee(path: Path, records: list[dict]) -> Path:
    import jsonschema

    schema = json.loads(
        (FIXTURES / "every_eval_ever" / "instance_level_eval.schema.json").read_text()
    )
    validator = jsonschema.Draft7Validator(schema)
    for rec in records:
        validator.validate(rec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def eee_data(tmp_path) -> Path:
    data = tmp_path / "data" / "demo"
    a, b = "org/model-a", "org/model-b"
    _write_eee(data / "org" / "model-a" / "0d4c_samples.jsonl", [
        _eee(a, "gsm8k", "gsm8k_0001", 1.0, "gsm8k:exact_match"),
        _eee(a, "gsm8k", "gsm8k_0002", 0.0, "gsm8k:exact_match"),
        _eee(a, "mmlu", "m1", 1.0, "mmlu:exact_match"), _eee(a, "mmlu", "m1", 0.0, "mmlu:f1"),
        _eee(a, "arc", "q1", 1.0, epoch="1"), _eee(a, "arc", "q1", 1.0, epoch="2"),
    ])  # fmt: skip
    _write_eee(data / "org" / "model-b" / "77aa_samples.jsonl", [
        _eee(b, "gsm8k", "gsm8k_0001", 0.0, "gsm8k:exact_match"),
        _eee(b, "mmlu", "m1", 0.0, "mmlu:exact_match"), _eee(b, "mmlu", "m1", 1.0, "mmlu:f1"),
    ])  # fmt: skip
    return tmp_path / "data"


def test_eee_reads_instance_records(eee_data):
    with pytest.raises(DataError, match=r"'mmlu' has records of several evaluation_result_id"):
        read_eee(eee_data)
    rm = read_eee(eee_data, metric="mmlu:exact_match")
    assert list(rm.subjects) == ["org/model-a", "org/model-b"]
    assert list(rm.items) == ["gsm8k/gsm8k_0001", "gsm8k/gsm8k_0002", "mmlu/m1", "arc/q1"]
    np.testing.assert_array_equal(rm.values, [[1, 0, 1, 1], [0, np.nan, 0, np.nan]])
    notes = "\n".join(rm.report.notes)
    assert "left out 2 record(s) of the others" in notes and "mean over 2 epochs" in notes
    assert "no result id 'mmlu:exact_match'; read its only one 'gsm8k:exact_match'" in notes
    f1 = read_responses(eee_data, metric="mmlu:f1")  # auto-detected
    assert _value(f1, "org/model-b", "mmlu/m1") == 1.0
    assert detect_format(eee_data) == "eee"
    assert detect_harness_format(next(eee_data.rglob("*.jsonl"))) == "eee"


def test_eee_malformed(tmp_path):
    f = _write_eee(
        tmp_path / "x_samples.jsonl", [_eee("o/m", "e", "s1", 1.0), _eee("o/m", "e", "s1", 0.0)]
    )
    with pytest.raises(
        DataError, match=r"line 2 \(sample_id s1\).*second score .*\(the first: .*line 1"
    ):
        read_eee(f)
    rec = _eee("o/m", "e", "s1", 1.0)
    del rec["evaluation"]["score"]
    f.write_text(json.dumps(rec) + "\n")
    with pytest.raises(
        DataError,
        match=r"x_samples.jsonl, line 1 \(sample_id s1\): field 'evaluation' has no 'score'",
    ):
        read_eee(f)
    rec = _eee("o/m", "e", "s1", 3.0)
    f.write_text("\n" + json.dumps(rec) + "\n")
    with pytest.raises(
        DataError, match=r"line 2 \(sample_id s1\), field 'evaluation.score': 3.0 is outside"
    ):
        read_eee(f)
    rec = _eee("o/m", "e", "s1", 1.0)
    del rec["model_id"]
    f.write_text(json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=r"line 1: field 'model_id' None is missing"):
        read_eee(f)


def test_mixed_folder_is_ambiguous(tmp_path, eee_data, helm_runs):
    shutil.copytree(helm_runs, eee_data / "helm")
    with pytest.raises(DataError, match="several harnesses"):
        detect_format(eee_data)


def test_cli_evaluates_harness_logs(lighteval_out, tmp_path, capsys):
    import pandas as pd

    from fluid_bayes.cli.main import main

    rm = read_lighteval(lighteval_out)
    params = tmp_path / "params.csv"
    pd.DataFrame({"item_id": list(rm.items), "a": 1.0, "b": 0.0}).to_csv(params, index=False)
    bank = tmp_path / "bank.nc"
    assert main(["bank", "import-params", str(params), "--out", str(bank)]) == 0
    capsys.readouterr()
    argv = ["evaluate", str(bank), str(lighteval_out), "--metric", "acc_norm", "--method",
            "paper", "--max-items", "3", "--json"]  # fmt: skip
    assert main(argv) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["subject"] for r in recs} == {"model-b", "org/model-a"}
    assert main(["evaluate", str(bank), str(lighteval_out), "--format", "helm"]) != 0
    assert "no HELM per_instance_stats.json files found" in capsys.readouterr().err
