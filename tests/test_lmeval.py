"""Tests of fluid_bayes.data.lmeval on lm-eval-harness --log_samples files built from real answers.

The samples files are written the way lm-eval writes them (one folder per model, one
``samples_<task>_<timestamp>.jsonl`` per task, one JSON object per document with ``doc``,
``target``, ``arguments``, ``resps``, ``filtered_resps``, ``filter``, ``metrics``, hashes
and the metric fields); the scores are the shipped ChemBench answers of three models.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fluid_bayes.data.lmeval import _task_name, read_lm_eval
from fluid_bayes.data.readers import FORMATS, detect_format, read_responses
from fluid_bayes.exceptions import DataError

CHEMBENCH = Path(__file__).resolve().parents[1] / "fluid_bayes" / "data" / "chembench"
MODELS = {  # lm-eval's sanitized model folder -> ChemBench row
    "mistralai__Mistral-Large-2": "Mistral-Large-2",
    "meta-llama__Llama-3.1-70B-Instruct": "Llama-3.1-70B-Instruct",
    "anthropic__Claude-3.5-Sonnet": "Claude-3.5 (Sonnet)",
}
TASKS = {"chembench_toxicity_and_safety": 0, "chembench_organic_chemistry": 20}  # 1st column
STAMP = "2024-05-13T14-21-06.432432"
N_DOCS = 20


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    return pd.read_csv(CHEMBENCH / "responses.csv", index_col=0)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _sample(doc_id: int, acc: float, acc_norm: float, task: str) -> dict:
    """One multiple-choice sample line as lm-eval 0.4 logs it."""
    choices = ["A", "B", "C", "D"]
    answer = doc_id % 4
    doc = {"question": f"{task} question {doc_id}?", "choices": choices, "answer": answer}
    prompt = f"Question: {doc['question']}\nAnswer:"
    lls = [[-1.5 - 0.1 * k, False] for k in range(4)]
    return {
        "doc_id": doc_id,
        "doc": doc,
        "target": str(answer),
        "arguments": {
            f"gen_args_{k}": {"arg_0": prompt, "arg_1": f" {c}"} for k, c in enumerate(choices)
        },
        "resps": [[[str(ll), str(g)]] for ll, g in lls],
        "filtered_resps": [[str(ll), str(g)] for ll, g in lls],
        "filter": "none",
        "metrics": ["acc", "acc_norm"],
        "doc_hash": _sha(json.dumps(doc)),
        "prompt_hash": _sha(prompt),
        "target_hash": _sha(str(answer)),
        "acc": acc,
        "acc_norm": acc_norm,
    }


def _write_lines(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def results(tmp_path, answers) -> Path:
    """lm-eval output folder: 3 models x 2 tasks x 20 documents of real ChemBench answers.

    ``acc`` is the ChemBench answer; ``acc_norm`` the answer to the item 40 columns on.
    """
    root = tmp_path / "results"
    for folder, model in MODELS.items():
        row = answers.loc[model].to_numpy(dtype=float)
        for task, first in TASKS.items():
            lines = [_sample(d, row[first + d], row[first + 40 + d], task) for d in range(N_DOCS)]
            _write_lines(root / folder / f"samples_{task}_{STAMP}.jsonl", lines)
        (root / folder / f"results_{STAMP}.json").write_text("{}", encoding="utf-8")
    return root


def _expected(answers: pd.DataFrame, rm, offset: int = 0) -> np.ndarray:
    """ChemBench answers of ``rm``'s subjects (folders) to its items (``task/doc_id``)."""
    cols = []
    for item in rm.items:
        task, doc = item.split("/")
        cols.append(TASKS[task] + offset + int(doc))
    rows = [MODELS[s] for s in rm.subjects]
    return answers.loc[rows].iloc[:, cols].to_numpy(dtype=float)


def _err(path: Path, rest: str) -> str:
    return re.escape(f"{path}{rest}")


def _one(tmp_path: Path, lines: list, name: str = f"samples_arc_easy_{STAMP}.jsonl") -> Path:
    return _write_lines(tmp_path / "model" / name, lines)


# -- reading ---------------------------------------------------------------------------


def test_round_trip_ids_and_default_metric(results, answers):
    rm = read_lm_eval(results)
    assert rm.subjects == tuple(sorted(MODELS))  # files are read in path order
    tasks = sorted(TASKS)
    assert rm.items == tuple(f"{t}/{d}" for t in tasks for d in range(N_DOCS))
    np.testing.assert_array_equal(rm.values, _expected(answers, rm))
    assert rm.report.threshold is None and rm.report.n_missing == 0
    assert rm.report.source == str(results)
    notes = "\n".join(rm.report.notes)
    assert "6 lm-eval samples file(s), 2 task(s)" in notes
    assert "task 'chembench_organic_chemistry': metric 'acc' (default), filter 'none'" in notes
    # read_responses detects the directory and gives the same matrix
    assert detect_format(results) == "lm-eval" and "lm-eval" in FORMATS
    np.testing.assert_array_equal(read_responses(results).values, rm.values)


def test_explicit_metric(results, answers):
    rm = read_lm_eval(results, metric="acc_norm")
    np.testing.assert_array_equal(rm.values, _expected(answers, rm, offset=40))
    assert not np.array_equal(rm.values, _expected(answers, rm))
    assert any("metric 'acc_norm' (as asked)" in n for n in rm.report.notes)


def test_read_responses_and_cli_pass_metric_and_filter(results, answers, capsys):
    from fluid_bayes import ItemBank
    from fluid_bayes.cli.main import main

    rm = read_responses(results, metric="acc_norm")
    np.testing.assert_array_equal(rm.values, _expected(answers, rm, offset=40))
    with pytest.raises(DataError, match="apply to lm-eval samples"):
        read_responses(CHEMBENCH / "responses.csv", metric="acc")
    params = results.parent / "params.csv"
    pd.DataFrame({"item_id": list(rm.items), "a": 1.0, "b": 0.0}).to_csv(params, index=False)
    bank = results.parent / "bank.nc"
    assert main(["bank", "import-params", str(params), "--out", str(bank)]) == 0
    capsys.readouterr()
    argv = ["evaluate", str(bank), str(results), "--metric", "acc_norm", "--method", "paper",
            "--max-items", "5", "--json"]  # fmt: skip
    assert main(argv) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["subject"] for r in recs} == set(rm.subjects)
    assert all(r["n_items"] == 5 and "/" in r["items"][0] for r in recs)
    assert ItemBank.load(bank).n_items == rm.n_items


def test_single_file_subject_is_parent_folder(results, answers):
    folder = "meta-llama__Llama-3.1-70B-Instruct"
    f = results / folder / f"samples_chembench_toxicity_and_safety_{STAMP}.jsonl"
    assert detect_format(f) == "lm-eval"
    rm = read_responses(f)
    assert rm.subjects == (folder,)
    assert rm.items[0] == "chembench_toxicity_and_safety/0" and len(rm.items) == N_DOCS
    np.testing.assert_array_equal(rm.values[0], answers.loc[MODELS[folder]].iloc[:N_DOCS])


def test_nested_folders_and_missing_documents(tmp_path, answers):
    row = answers.loc["Mistral-Large-2"].to_numpy(dtype=float)
    root = tmp_path / "out"
    full = [_sample(d, row[d], row[d], "arc_easy") for d in range(N_DOCS)]
    _write_lines(root / "org" / "big" / f"samples_arc_easy_{STAMP}.jsonl", full)
    _write_lines(root / "org" / "small" / f"samples_arc_easy_{STAMP}.jsonl", full[5:15])
    rm = read_lm_eval(root)
    assert rm.subjects == ("org/big", "org/small")
    assert np.isnan(rm.values[1, :5]).all() and np.isnan(rm.values[1, 15:]).all()
    np.testing.assert_array_equal(rm.values[1, 5:15], row[5:15])
    assert rm.report.n_missing == 10
    _write_lines(root / f"samples_arc_easy_{STAMP}.jsonl", full[:3])  # no model folder
    assert read_lm_eval(root).subjects == ("org/big", "org/small", "out")


def test_task_name_rule():
    assert _task_name(f"samples_arc_easy_{STAMP}.jsonl") == "arc_easy"
    assert _task_name("samples_mmlu_high_school_physics_2025-01-02T03-04-05.jsonl") == (
        "mmlu_high_school_physics"
    )
    assert _task_name("samples_gsm8k_2024-05-13T14:21:06.5.jsonl") == "gsm8k"
    assert _task_name("samples_arc_easy.jsonl") == "arc_easy"  # no timestamp: whole name


def test_generation_task_filters_and_exact_match(tmp_path, answers):
    row = answers.loc["Command-R+"].to_numpy(dtype=float)
    lines = []
    for d in range(N_DOCS):
        for flt, v in (("strict-match", row[d]), ("flexible-extract", row[100 + d])):
            lines.append(
                {
                    "doc_id": d,
                    "doc": {"question": f"q{d}", "answer": "#### 42"},
                    "target": "#### 42",
                    "arguments": {"gen_args_0": {"arg_0": f"Q: q{d}\nA:", "arg_1": {}}},
                    "resps": [["The answer is 42."]],
                    "filtered_resps": ["42"],
                    "filter": flt,
                    "metrics": ["exact_match"],
                    "doc_hash": _sha(f"q{d}"),
                    "prompt_hash": _sha(f"Q: q{d}"),
                    "target_hash": _sha("#### 42"),
                    "exact_match": v,
                }
            )
    p = _one(tmp_path, lines, f"samples_gsm8k_{STAMP}.jsonl")
    with pytest.raises(
        DataError,
        match=_err(p, ": several filters ('strict-match', 'flexible-extract') score each doc_id"),
    ):
        read_lm_eval(p)
    rm = read_lm_eval(p, filter="flexible-extract")
    np.testing.assert_array_equal(rm.values[0], row[100 : 100 + N_DOCS])
    assert any(
        "metric 'exact_match' (default), filter 'flexible-extract'" in n for n in rm.report.notes
    )
    np.testing.assert_array_equal(read_lm_eval(p, filter="strict-match").values[0], row[:N_DOCS])
    with pytest.raises(DataError, match=_err(p, ": no lines with filter 'maj@8'")):
        read_lm_eval(p, filter="maj@8")


def test_continuous_scores_need_threshold(tmp_path):
    f1 = [0.0, 0.25, 0.5, 1.0, 0.75, 0.0]
    lines = [
        {"doc_id": d, "filter": "none", "metrics": ["f1", "em"], "f1": v, "em": float(v == 1)}
        for d, v in enumerate(f1)
    ]
    p = _one(tmp_path, lines, f"samples_squadv2_{STAMP}.jsonl")
    with pytest.raises(DataError, match="explicit binarization threshold is required"):
        read_lm_eval(p)  # no acc / exact_match: the first listed metric, f1
    rm = read_lm_eval(p, threshold=0.5)
    np.testing.assert_array_equal(rm.values[0], [0, 0, 1, 1, 1, 0])
    assert rm.report.threshold == 0.5 and rm.report.n_binarized == 3
    assert "threshold: 0.5" in str(rm.report)
    np.testing.assert_array_equal(read_lm_eval(p, metric="em").values[0], [0, 0, 0, 1, 0, 0])


# -- errors ----------------------------------------------------------------------------


def _lines(n: int = 3) -> list:
    return [_sample(d, float(d % 2), 0.0, "arc_easy") for d in range(n)]


def test_error_invalid_json_and_missing_doc_id(tmp_path):
    p = _one(tmp_path, [*_lines(2), "", '{"doc_id": 2, "acc": '])
    with pytest.raises(DataError, match=_err(p, ", line 4: invalid JSON")):
        read_lm_eval(p)
    bad = _lines()
    del bad[1]["doc_id"]
    p = _one(tmp_path, bad)
    with pytest.raises(DataError, match=_err(p, ", line 2: missing field 'doc_id'")):
        read_lm_eval(p)
    bad[1]["doc_id"] = "7"
    p = _one(tmp_path, bad)
    with pytest.raises(DataError, match=_err(p, ", line 2: doc_id '7' is not an integer")):
        read_lm_eval(p)


def test_error_missing_metric(tmp_path):
    bad = _lines()
    del bad[2]["acc"]
    p = _one(tmp_path, bad)
    with pytest.raises(
        DataError,
        match=_err(p, ", line 3 (doc_id 2): missing metric 'acc' (its metrics: acc, acc_norm)"),
    ):
        read_lm_eval(p)
    with pytest.raises(DataError, match=_err(p, ", line 1 (doc_id 0): missing metric 'bleu'")):
        read_lm_eval(p, metric="bleu")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("yes", "'yes' is not a number"),
        ([-1.2, 5], "'[-1.2, 5]' is not a number"),
        (1.5, "'1.5' is outside [0, 1]"),
        (-0.5, "'-0.5' is outside [0, 1]"),
    ],
)
def test_error_bad_value_names_file_line_doc_metric(tmp_path, value, problem):
    bad = _lines()
    bad[1]["acc"] = value
    p = _one(tmp_path, bad)
    with pytest.raises(DataError, match=_err(p, f", line 2 (doc_id 1), metric 'acc': {problem}")):
        read_lm_eval(p)


def test_error_duplicate_doc_id(tmp_path):
    p = _one(tmp_path, [*_lines(), _sample(1, 1.0, 1.0, "arc_easy")])
    with pytest.raises(
        DataError,
        match=_err(
            p, ", line 4 (doc_id 1): duplicate doc_id 1 with filter 'none' (first on line 2)"
        ),
    ):
        read_lm_eval(p)


def test_error_empty_file_and_directory(tmp_path):
    p = _one(tmp_path, [])
    with pytest.raises(DataError, match=_err(p, ": empty file, no samples")):
        read_lm_eval(p)
    empty = tmp_path / "nothing"
    (empty / "model").mkdir(parents=True)
    _write_lines(empty / "model" / f"results_{STAMP}.json", ["{}"])
    with pytest.raises(DataError, match=_err(empty, ": no samples_<task>_<timestamp>.jsonl files")):
        read_lm_eval(empty)
    with pytest.raises(DataError, match="no such file or directory"):
        read_lm_eval(tmp_path / "absent")


def test_error_two_runs_of_one_task(tmp_path):
    root = tmp_path / "out"
    a = _write_lines(root / "m" / f"samples_arc_easy_{STAMP}.jsonl", _lines())
    b = _write_lines(root / "m" / "samples_arc_easy_2024-06-01T09-00-00.000001.jsonl", _lines())
    first, second = sorted([a, b])
    with pytest.raises(
        DataError,
        match=_err(
            second,
            f": second samples file of subject 'm' and task 'arc_easy' (the first is {first})",
        ),
    ):
        read_lm_eval(root)


def test_other_jsonl_is_still_pyirt(tmp_path):
    p = _write_lines(tmp_path / "answers.jsonl", [{"subject_id": "m1", "responses": {"x": 1}}])
    assert detect_format(p) == "pyirt"
