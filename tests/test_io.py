"""Tests of fluid_bayes.data.readers: every reader on small real files and on the shipped data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, PACKAGE_DATA

from fluid_bayes.data.readers import (
    FORMATS,
    detect_format,
    read_fb,
    read_item_meta,
    read_long,
    read_patterns,
    read_pyirt,
    read_responses,
    read_wide,
)
from fluid_bayes.exceptions import DataError

NAN = np.nan


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _err(path: Path, rest: str) -> str:
    """Regex matching a message that starts with ``path`` followed by ``rest``."""
    return re.escape(f"{path}{rest}")


# -- wide ------------------------------------------------------------------------------


def test_wide_basic_missing_cells(tmp_path):
    p = _write(tmp_path, "a.csv", "model,q1,q2,q3\nm1,1,0,\nm2,NA,1,1\nm3,0,nan,1\n")
    rm = read_wide(p)
    assert rm.subjects == ("m1", "m2", "m3") and rm.items == ("q1", "q2", "q3")
    np.testing.assert_array_equal(rm.values, [[1, 0, NAN], [NAN, 1, 1], [0, NAN, 1]])
    assert rm.report.n_missing == 3 and rm.report.source == str(p)
    assert rm.report.constant_correct == ("q3",)


def test_wide_non_numeric_names_file_line_subject_item(tmp_path):
    text = "model,q1,q12\nm1,1,0\n\nm2,0,1\ngpt-x,1,yes\n"
    p = _write(tmp_path, "answers.csv", text)
    with pytest.raises(
        DataError,
        match=_err(p, ", line 5 (subject 'gpt-x'), item 'q12': 'yes' is not a number"),
    ):
        read_wide(p)
    p = _write(tmp_path, "b.csv", 'model,q1\nm1,"1,0"\n')
    with pytest.raises(DataError, match=_err(p, ", line 2 (subject 'm1'), item 'q1': '1,0'")):
        read_wide(p)


def test_wide_out_of_range_and_inf(tmp_path):
    p = _write(tmp_path, "a.csv", "model,q1,q2\nm1,1,0\nm2,3,1\n")
    with pytest.raises(
        DataError,
        match=_err(p, ", line 3 (subject 'm2'), item 'q1': '3' is outside [0, 1]"),
    ):
        read_wide(p)
    p = _write(tmp_path, "b.csv", "model,q1,q2\nm1,1,inf\n")
    with pytest.raises(DataError, match=_err(p, ", line 2 (subject 'm1'), item 'q2': 'inf'")):
        read_wide(p)


def test_wide_duplicate_subject_and_item(tmp_path):
    p = _write(tmp_path, "a.csv", "model,q1,q2\nm1,1,0\nm2,0,1\nm1,1,1\n")
    with pytest.raises(
        DataError, match=_err(p, ", line 4: duplicate subject 'm1' (first on line 2)")
    ):
        read_wide(p)
    p = _write(tmp_path, "b.csv", "model,q1,q2,q1\nm1,1,0,1\n")
    with pytest.raises(
        DataError,
        match=_err(p, ": duplicate item 'q1' in the header (columns 2 and 4)"),
    ):
        read_wide(p)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", ": empty file, no subjects"),
        ("\n\n", ": empty file, no subjects"),
        ("model,q1,q2\n", ": no subjects (header only)"),
        ("model\nm1\n", ": no items"),
    ],
)
def test_wide_empty(tmp_path, text, message):
    p = _write(tmp_path, "e.csv", text)
    with pytest.raises(DataError, match=_err(p, message)):
        read_wide(p)


def test_wide_ragged_row_and_missing_id(tmp_path):
    p = _write(tmp_path, "a.csv", "model,q1,q2\nm1,1,0\nm2,1\n")
    with pytest.raises(DataError, match=_err(p, ", line 3: 2 field(s), but the header has 3")):
        read_wide(p)
    p = _write(tmp_path, "b.csv", "model,q1,q2\nm1,1,0\n,1,1\n")
    with pytest.raises(DataError, match=_err(p, ", line 3: missing subject id")):
        read_wide(p)


def test_wide_item_nobody_answered_and_empty_subject(tmp_path):
    p = _write(tmp_path, "a.csv", "model,q1,q2\nm1,1,\nm2,0,\n")
    with pytest.raises(DataError, match=_err(p, ": 1 item(s) nobody answered: 'q2'")):
        read_wide(p)
    p = _write(tmp_path, "b.csv", "model,q1,q2\nm1,1,0\nm2,,\nm3,0,0\n")
    with pytest.warns(UserWarning, match="m2"):
        rm = read_wide(p)
    assert rm.subjects == ("m1", "m3") and rm.report.dropped_subjects == ("m2",)
    assert rm.report.constant_wrong == ("q2",)


def test_wide_continuous_needs_threshold(tmp_path):
    p = _write(tmp_path, "a.csv", "model,q1,q2\nm1,0.9,0\nm2,0.2,1\n")
    with pytest.raises(DataError, match="continuous scores found .* --threshold 0.5"):
        read_wide(p)
    rm = read_wide(p, threshold=0.5)
    np.testing.assert_array_equal(rm.values, [[1, 0], [0, 1]])
    assert rm.report.n_binarized == 2 and rm.report.threshold == 0.5


def test_missing_file_is_data_error(tmp_path):
    p = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=_err(p, ": no such file")):
        read_responses(p)
    with pytest.raises(DataError, match="no such file"):
        read_pyirt(p)


def test_wide_parquet_round_trip(tmp_path):
    p = _write(tmp_path, "a.csv", "model,q1,q2,q3\nm1,1,0,\nm2,,1,1\nm3,0,0,1\n")
    rm = read_wide(p)
    pq = tmp_path / "a.parquet"
    rm.to_frame().to_parquet(pq)
    back = read_wide(pq)
    assert back == rm
    assert back.fingerprint() == rm.fingerprint()
    assert detect_format(pq) == "wide"
    # a parquet file without an index: first column holds the subject ids
    pq2 = tmp_path / "b.parquet"
    rm.to_frame().reset_index().to_parquet(pq2, index=False)
    assert read_responses(pq2) == rm


def test_parquet_bad_cell_names_row(tmp_path):
    pq = tmp_path / "a.parquet"
    pd.DataFrame({"model": ["m1", "m2"], "q1": ["1", "x"]}).to_parquet(pq, index=False)
    with pytest.raises(DataError, match=_err(pq, ", row 2 (subject 'm2'), item 'q1': 'x'")):
        read_wide(pq)


# -- long ------------------------------------------------------------------------------


def test_long_pivots_with_missing(tmp_path):
    text = "Model,Item_ID,Correct,extra\na,q1,1,x\na,q2,0,x\nb,q2,1,x\nb,q3,0,x\n"
    p = _write(tmp_path, "long.csv", text)
    assert detect_format(p) == "long"
    rm = read_responses(p)
    assert rm.subjects == ("a", "b") and rm.items == ("q1", "q2", "q3")
    np.testing.assert_array_equal(rm.values, [[1, 0, NAN], [NAN, 1, 0]])
    assert "ignored column(s) 'extra'" in rm.report.notes[0]
    # q2's only score is empty: nobody answered it
    p = _write(tmp_path, "long2.csv", "subject,item,score\na,q1,1\nb,q1,0\nb,q2,\n")
    with pytest.raises(DataError, match="nobody answered: 'q2'"):
        read_long(p)


def test_long_duplicate_pair_and_bad_score(tmp_path):
    p = _write(tmp_path, "l.csv", "subject_id,item,value\na,q1,1\na,q2,0\na,q1,0\n")
    with pytest.raises(
        DataError,
        match=_err(
            p,
            ", line 4: duplicate answer of subject 'a' to item 'q1' (first on line 2)",
        ),
    ):
        read_long(p)
    p = _write(tmp_path, "m.csv", "subject,item,score\na,q1,1\nb,q1,right\n")
    with pytest.raises(
        DataError,
        match=_err(p, ", line 3 (subject 'b'), item 'q1': 'right' is not a number"),
    ):
        read_long(p)
    p = _write(tmp_path, "n.csv", "subject,item\na,q1\n")
    with pytest.raises(DataError, match=_err(p, ": no score column")):
        read_long(p)


# -- py-irt ----------------------------------------------------------------------------


def _jsonl(tmp_path, name, lines):
    return _write(tmp_path, name, "\n".join(lines) + "\n")


def test_pyirt_union_of_items(tmp_path):
    p = _jsonl(
        tmp_path,
        "a.jsonlines",
        [
            json.dumps({"subject_id": "m1", "responses": {"x": 1, "y": 0}}),
            "",
            json.dumps({"subject_id": "m2", "responses": {"z": 1, "x": 0}}),
        ],
    )
    assert detect_format(p) == "pyirt"
    rm = read_responses(p)
    assert rm.items == ("x", "y", "z")
    np.testing.assert_array_equal(rm.values, [[1, 0, NAN], [0, NAN, 1]])


def test_pyirt_errors_name_line(tmp_path):
    good = json.dumps({"subject_id": "m1", "responses": {"x": 1}})
    p = _jsonl(tmp_path, "a.jsonl", [good, "", '{"subject_id": "m2", "responses": {'])
    with pytest.raises(DataError, match=_err(p, ", line 3: invalid JSON")):
        read_pyirt(p)
    p = _jsonl(tmp_path, "b.jsonl", [good, json.dumps({"responses": {}})])
    with pytest.raises(DataError, match=_err(p, ", line 2: missing key(s) subject_id")):
        read_pyirt(p)
    p = _jsonl(tmp_path, "c.jsonl", [good, good])
    with pytest.raises(
        DataError, match=_err(p, ", line 2: duplicate subject 'm1' (first on line 1)")
    ):
        read_pyirt(p)
    bad = json.dumps({"subject_id": "m2", "responses": {"x": "yes"}})
    p = _jsonl(tmp_path, "d.jsonl", [good, bad])
    with pytest.raises(
        DataError,
        match=_err(p, ", line 2 (subject 'm2'), item 'x': 'yes' is not a number"),
    ):
        read_pyirt(p)
    p = _write(tmp_path, "e.jsonl", "")
    with pytest.raises(DataError, match=_err(p, ": empty file, no subjects")):
        read_pyirt(p)


# -- fb layout -------------------------------------------------------------------------


def test_fb_transposes_and_binarizes_at_half(tmp_path):
    text = "item,ckpt-1,ckpt-2\nq1,0.2,0.9\nq2,0.5,0.49\nq3,1,0\n"
    p = _write(tmp_path, "fb.csv", text)
    assert detect_format(p) == "wide"  # fb is never auto-detected
    for rm in (read_fb(p), read_responses(p, format="fb")):
        assert rm.subjects == ("ckpt-1", "ckpt-2") and rm.items == ("q1", "q2", "q3")
        np.testing.assert_array_equal(rm.values, [[0, 1, 1], [1, 0, 0]])
        assert rm.report.threshold == 0.5 and rm.report.n_binarized == 4
    p = _write(tmp_path, "fb2.csv", "item,c1\nq1,0.2\nq2,huh\n")
    with pytest.raises(DataError, match=_err(p, ", line 3 (item 'q2'), subject 'c1': 'huh'")):
        read_fb(p)


# -- patterns --------------------------------------------------------------------------


def test_patterns_expand(tmp_path):
    p = _write(tmp_path, "p.csv", "i1,i2,Freq\n0,1,2\n1,1,0\n1,0,3\n")
    assert detect_format(p) == "patterns"
    rm = read_responses(p)
    assert rm.subjects == tuple(
        ["pattern1_1", "pattern1_2", "pattern3_1", "pattern3_2", "pattern3_3"]
    )
    np.testing.assert_array_equal(rm.values, [[0, 1]] * 2 + [[1, 0]] * 3)
    assert rm.subject_meta["pattern"].tolist() == [1, 1, 3, 3, 3]


@pytest.mark.parametrize("freq", ["-1", "2.5", "many", ""])
def test_patterns_bad_frequency(tmp_path, freq):
    p = _write(tmp_path, "p.csv", f"i1,i2,count\n0,1,2\n1,1,{freq}\n")
    with pytest.raises(
        DataError, match=_err(p, f", line 3: frequency {freq!r} is not a non-negative")
    ):
        read_patterns(p)


# -- item metadata and auto-detection --------------------------------------------------


def test_item_meta(tmp_path):
    p = _write(tmp_path, "r.csv", "model,q1,q2\nm1,1,0\nm2,0,1\n")
    meta = _write(tmp_path, "items.csv", "topic,item_id,weight\nalg,q2,1.5\ngeo,q1,2\n")
    m = read_item_meta(meta)
    assert m.index.name == "item" and m.loc["q2", "topic"] == "alg"
    assert m["weight"].dtype.kind == "f"
    rm = read_responses(p, item_meta=meta)
    assert rm.item_meta["topic"].tolist() == ["geo", "alg"]
    frame = pd.DataFrame({"item": ["q1", "q2"], "topic": ["g", "a"]})
    assert read_responses(p, item_meta=frame).item_meta["topic"].tolist() == ["g", "a"]
    short = _write(tmp_path, "short.csv", "item_id,topic\nq1,geo\n")
    with pytest.raises(DataError, match=_err(short, ": 1 item(s) of the response matrix")):
        read_responses(p, item_meta=short)
    dup = _write(tmp_path, "dup.csv", "item_id,topic\nq1,geo\nq2,a\nq1,b\n")
    with pytest.raises(DataError, match=_err(dup, ", line 4: duplicate item 'q1'")):
        read_item_meta(dup)


def test_unknown_format(tmp_path):
    p = _write(tmp_path, "r.csv", "model,q1\nm1,1\n")
    assert FORMATS == ("auto", "wide", "long", "pyirt", "fb", "patterns", "lm-eval",
                       "inspect", "lighteval", "helm", "eee")  # fmt: skip
    with pytest.raises(ValueError, match="unknown format 'xlsx'"):
        read_responses(p, format="xlsx")


# -- shipped real data -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt", "shape"),
    [
        (PACKAGE_DATA / "chembench" / "responses.csv", "wide", (22, 2854)),
        (PACKAGE_DATA / "mmlu_redux_helm" / "responses.csv", "wide", (14, 5700)),
        (FIXTURES / "minitest.jsonlines", "pyirt", (8, 1100)),
        (PACKAGE_DATA / "lsat" / "lsat6_patterns.csv", "patterns", (1000, 5)),
        (PACKAGE_DATA / "lsat" / "lsat7_patterns.csv", "patterns", (1000, 5)),
    ],
    ids=lambda v: f"{v.parent.name}/{v.name}" if isinstance(v, Path) else None,
)
def test_shipped_data(path, fmt, shape):
    assert detect_format(path) == fmt
    rm = read_responses(path)
    assert rm.values.shape == shape
    assert set(np.unique(rm.values[rm.mask])) <= {0.0, 1.0}
    assert rm.report.dropped_subjects == () and rm.report.threshold is None
    direct = {"wide": read_wide, "pyirt": read_pyirt, "patterns": read_patterns}[fmt]
    assert direct(path).fingerprint() == rm.fingerprint()


def test_lsat7_expansion_matches_frequencies():
    path = PACKAGE_DATA / "lsat" / "lsat7_patterns.csv"
    raw = pd.read_csv(path)
    rm = read_patterns(path)
    assert rm.n_subjects == raw["freq"].sum() == 1000
    assert rm.items == ("Item.1", "Item.2", "Item.3", "Item.4", "Item.5")
    item_sums = (raw.iloc[:, :5].to_numpy() * raw["freq"].to_numpy()[:, None]).sum(0)
    np.testing.assert_array_equal(rm.values.sum(axis=0), item_sums)


def test_mmlu_with_item_meta():
    path = PACKAGE_DATA / "mmlu_redux_helm" / "responses.csv"
    items = PACKAGE_DATA / "mmlu_redux_helm" / "items.csv"
    rm = read_responses(path, item_meta=items)
    assert rm.values.shape == (14, 5700)
    assert list(rm.item_meta.index) == list(rm.items)
    assert rm.item_meta["subject"].nunique() == 57
    assert rm.item_meta.loc["abstract_algebra_0", "subject"] == "abstract_algebra"
    assert abs(float(np.nanmean(rm.values)) - 0.825) < 0.001
