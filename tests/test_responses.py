"""Tests of fluid_bayes.data.responses: from_array validation and the ResponseMatrix API."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from fluid_bayes.data.responses import DataReport, ResponseMatrix, from_array
from fluid_bayes.exceptions import DataError

NAN = np.nan


def _rm(values, *, threshold=None, **kw) -> ResponseMatrix:
    values = np.asarray(values, dtype=float)
    n, m = values.shape
    return from_array(
        values,
        subjects=[f"s{k}" for k in range(n)],
        items=[f"q{k}" for k in range(m)],
        threshold=threshold,
        **kw,
    )


# -- from_array validation -------------------------------------------------------------


def test_basic_matrix_is_float64_read_only_and_reported():
    rm = _rm([[1, 0, NAN], [0, 1, 1]], source="toy")
    assert rm.values.dtype == np.float64
    assert not rm.values.flags.writeable
    with pytest.raises(ValueError):
        rm.values[0, 0] = 0.0
    assert rm.subjects == ("s0", "s1") and rm.items == ("q0", "q1", "q2")
    assert (rm.n_subjects, rm.n_items) == (2, 3)
    assert rm.mask.tolist() == [[True, True, False], [True, True, True]]
    r = rm.report
    assert r.source == "toy" and r.threshold is None and r.n_binarized == 0
    assert r.n_missing == 1
    assert r.constant_correct == ("q2",) and r.constant_wrong == ()
    assert r.dropped_subjects == ()


def test_input_array_is_copied():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    rm = _rm(a)
    a[0, 0] = 0.0
    assert rm.values[0, 0] == 1.0


@pytest.mark.parametrize(
    ("values", "subjects", "items", "message"),
    [
        (np.zeros((0, 2)), [], ["a", "b"], "src: no subjects"),
        (np.zeros((2, 0)), ["a", "b"], [], "src: no items"),
        ([[1, 0], [0, 1]], ["a", "a"], ["x", "y"], "duplicate subject id(s): 'a'"),
        ([[1, 0], [0, 1]], ["a", "b"], ["x", "x"], "duplicate item id(s): 'x'"),
        ([[1, 0]], ["a", "b"], ["x", "y"], "do not match 2 subject(s) x 2 item(s)"),
    ],
)
def test_structural_errors(values, subjects, items, message):
    with pytest.raises(DataError, match=re.escape(message)):
        from_array(values, subjects=subjects, items=items, source="src")


def test_out_of_range_names_subject_and_item():
    with pytest.raises(
        DataError,
        match=re.escape("src: value 2.0 for subject 's1' (row 2), item 'q0' is outside [0, 1]"),
    ):
        _rm([[1, 0], [2, 1]], source="src")
    with pytest.raises(DataError, match=re.escape("value -0.5 for subject 's0'")):
        _rm([[-0.5, 0], [1, 1]], threshold=0.5)


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_rejected(bad):
    with pytest.raises(DataError, match=r"item 'q1' is not finite"):
        _rm([[1, bad], [0, 1]], source="src")


def test_continuous_without_threshold_asks_for_one():
    with pytest.raises(
        DataError,
        match=re.escape(
            "src: continuous scores found (2 cell(s) neither 0 nor 1, e.g. value 0.7"
            " for subject 's0' (row 1), item 'q1'); an explicit binarization threshold"
            " is required (e.g. --threshold 0.5"
        ),
    ):
        _rm([[1, 0.7], [0.2, 1]], source="src")


def test_continuous_with_threshold_binarizes_and_counts():
    rm = _rm([[1, 0.7, NAN], [0.5, 0.49, 0]], threshold=0.5)
    np.testing.assert_array_equal(rm.values, [[1, 1, NAN], [1, 0, 0]])
    assert rm.report.threshold == 0.5
    assert rm.report.n_binarized == 3
    assert rm.report.n_missing == 1


def test_threshold_on_binary_data_is_recorded():
    rm = _rm([[1, 0], [0, 1]], threshold=0.5)
    assert rm.report.threshold == 0.5 and rm.report.n_binarized == 0


@pytest.mark.parametrize("t", [0.0, -1.0, 1.5])
def test_threshold_outside_unit_interval(t):
    with pytest.raises(DataError, match=r"threshold .* is not in \(0, 1\]"):
        _rm([[1, 0.3]], threshold=t)


def test_item_nobody_answered_is_an_error():
    with pytest.raises(DataError, match=re.escape("src: 1 item(s) nobody answered: 'q1'")):
        _rm([[1, NAN], [0, NAN]], source="src")


def test_many_unanswered_items_are_listed_first_ten_plus_count():
    values = np.full((2, 13), NAN)
    values[:, 0] = 1
    with pytest.raises(DataError, match=re.escape("... and 2 more (12 in all)")):
        _rm(values)


def test_subject_without_answers_dropped_reported_and_warned():
    with pytest.warns(UserWarning, match="dropped 1 subject"):
        rm = _rm([[1, 0], [NAN, NAN], [0, 0]])
    assert rm.subjects == ("s0", "s2")
    assert rm.report.dropped_subjects == ("s1",)
    assert rm.values.shape == (2, 2)


def test_constant_items_reported_and_kept():
    rm = _rm([[1, 0, 1], [1, 0, 0], [NAN, NAN, 1]])
    assert rm.report.constant_correct == ("q0",)
    assert rm.report.constant_wrong == ("q1",)
    assert rm.n_items == 3


def test_without_constant_items_drops_and_reports_them():
    rm = _rm(
        [[1, 0, 1, 1], [1, 0, 0, NAN], [NAN, NAN, 1, NAN], [1, NAN, NAN, 0]],
        item_meta=pd.DataFrame({"topic": ["a", "b", "c", "d"]}, index=["q0", "q1", "q2", "q3"]),
    )
    out = rm.without_constant_items()
    # q0 all right, q1 all wrong; s3 answered only q0 and q3 -> keeps q3's answer
    assert out.items == ("q2", "q3")
    assert out.subjects == ("s0", "s1", "s2", "s3")
    assert out.report.dropped_items == ("q0", "q1")
    assert out.report.constant_correct == () and out.report.constant_wrong == ()
    assert list(out.item_meta["topic"]) == ["c", "d"]
    np.testing.assert_array_equal(out.values, rm.values[:, 2:])
    assert "items dropped (constant): 2 ('q0', 'q1')" in str(out.report)
    assert "dropped 2 constant item(s) (1 all correct, 1 all wrong)" in str(out.report)
    assert json.loads(json.dumps(out.report.to_dict()))["dropped_items"] == ["q0", "q1"]
    # the original is untouched, and a matrix without constant items comes back as is
    assert rm.n_items == 4 and rm.report.dropped_items == ()
    assert out.without_constant_items() is out


def test_without_constant_items_drops_subjects_left_without_answers():
    rm = _rm([[1, NAN, NAN], [1, 0, 0], [NAN, 1, 1]])
    out = rm.without_constant_items()
    assert out.items == ("q1", "q2")
    assert out.subjects == ("s1", "s2")
    assert out.report.dropped_subjects == ("s0",)
    assert "and 1 subject(s) left without answers" in str(out.report)


def test_without_constant_items_refuses_an_all_constant_matrix():
    with pytest.raises(DataError, match="all 2 items are constant"):
        _rm([[1, 0], [1, 0]]).without_constant_items()


def test_item_meta_and_subject_meta_are_aligned():
    meta = pd.DataFrame({"topic": ["b", "a", "z"]}, index=["q1", "q0", "extra"])
    smeta = pd.DataFrame({"size": [7, 70]}, index=["s1", "s0"])
    rm = _rm([[1, 0], [0, 1]], item_meta=meta, subject_meta=smeta)
    assert rm.item_meta["topic"].tolist() == ["a", "b"]
    assert rm.item_meta.index.name == "item"
    assert rm.subject_meta["size"].tolist() == [70, 7]
    assert any("'extra'" in n for n in rm.report.notes)


# -- ResponseMatrix methods ------------------------------------------------------------


def test_report_str_and_dict_are_readable_and_json():
    rm = _rm([[1, 0.8], [0, 0.1]], threshold=0.5, source="toy", notes=("hello",))
    text = str(rm.report)
    assert "toy" in text and "threshold: 0.5" in text and "note: hello" in text
    d = rm.report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["n_binarized"] == 2 and d["threshold"] == 0.5
    assert d["constant_correct"] == [] and d["notes"] == ["hello"]
    lists = {k: tuple(v) for k, v in d.items() if isinstance(v, list)}
    assert DataReport(**{**d, **lists}) == rm.report


def test_fingerprint_stable_and_sensitive():
    a = _rm([[1, 0, NAN], [0, 1, 1]])
    b = _rm([[1, 0, NAN], [0, 1, 1]])
    assert a.fingerprint() == b.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", a.fingerprint())
    assert a == b
    assert _rm([[1, 0, NAN], [0, 1, 0]]).fingerprint() != a.fingerprint()
    assert _rm([[1, 0, 0], [0, 1, 1]]).fingerprint() != a.fingerprint()
    renamed = from_array(a.values, subjects=["s0", "sX"], items=a.items)
    assert renamed.fingerprint() != a.fingerprint()


def test_to_frame_and_dataarray():
    rm = _rm([[1, 0], [NAN, 1]])
    df = rm.to_frame()
    assert df.index.name == "subject" and df.columns.name == "item"
    assert df.loc["s1", "q1"] == 1.0 and np.isnan(df.loc["s1", "q0"])
    da = rm.to_dataarray()
    assert da.dims == ("subject", "item")
    assert list(da.coords["item"].values) == ["q0", "q1"]
    assert float(da.sel(subject="s0", item="q1")) == 0.0


def test_accuracy_over_observed_cells():
    acc = _rm([[1, 0, NAN], [1, 1, 1]]).accuracy()
    assert acc.to_dict() == {"s0": 0.5, "s1": 1.0}


def test_select_keeps_given_order_and_meta():
    meta = pd.DataFrame({"topic": ["t0", "t1", "t2"]}, index=["q0", "q1", "q2"])
    rm = _rm([[1, 0, 1], [0, 1, 1], [1, 1, 0]], item_meta=meta)
    sub = rm.select(subjects=["s2", "s0"], items=["q2", "q0"])
    assert sub.subjects == ("s2", "s0") and sub.items == ("q2", "q0")
    np.testing.assert_array_equal(sub.values, [[0, 1], [1, 1]])
    assert sub.item_meta["topic"].tolist() == ["t2", "t0"]
    assert sub.report.constant_correct == ("q0",)
    assert rm.select(items=["q1"]).n_subjects == 3


def test_select_unknown_or_repeated_id():
    rm = _rm([[1, 0], [0, 1]], source="toy")
    with pytest.raises(
        DataError, match=re.escape("toy: unknown subject id(s) in selection: 'nope'")
    ):
        rm.select(subjects=["s0", "nope"])
    with pytest.raises(DataError, match=re.escape("unknown item id(s) in selection: 'q9'")):
        rm.select(items=["q9"])
    with pytest.raises(DataError, match="selected twice"):
        rm.select(items=["q1", "q1"])


def test_with_item_meta_missing_and_extra_rows():
    rm = _rm([[1, 0], [0, 1]])
    meta = pd.DataFrame({"topic": ["x", "y", "z"]}, index=["q0", "q1", "q7"])
    out = rm.with_item_meta(meta, source="meta.csv")
    assert out.item_meta["topic"].tolist() == ["x", "y"]
    assert out.report.notes == (
        "meta.csv: 1 metadata row(s) for items not in the response matrix were ignored: 'q7'",
    )
    assert rm.item_meta is None  # original untouched
    with pytest.raises(
        DataError,
        match=re.escape("meta.csv: 1 item(s) of the response matrix have no metadata row: 'q1'"),
    ):
        rm.with_item_meta(meta.drop("q1"), source="meta.csv")


def test_direct_construction_checks_values():
    rm = ResponseMatrix(values=np.array([[1.0, 0.0]]), subjects=("a",), items=("x", "y"))
    assert rm.report.n_missing == 0 and rm.report.constant_correct == ("x",)
    with pytest.raises(DataError, match="0.0, 1.0 or NaN"):
        ResponseMatrix(values=np.array([[0.5]]), subjects=("a",), items=("x",))
    with pytest.raises(DataError, match="do not match"):
        ResponseMatrix(values=np.array([[1.0]]), subjects=("a", "b"), items=("x",))
