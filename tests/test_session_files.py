"""Saved sessions edited by hand, with the checksum recomputed, are refused with a clear
error naming what differs (issue 18): never a KeyError or TypeError."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from fluid_bayes.adaptive.session import Session
from fluid_bayes.bank import ItemBank
from fluid_bayes.exceptions import DataError


@pytest.fixture(scope="module")
def bank() -> ItemBank:
    rng = np.random.default_rng(5)
    n = 30
    b = rng.normal(0.0, 1.0, n) + rng.normal(0, 0.3, (1, 20, n))
    a = np.exp(rng.normal(0.2, 0.3, n) + rng.normal(0, 0.2, (1, 20, n)))
    theta = pd.Series(np.sort(rng.normal(size=8)), index=[f"c{k}" for k in range(8)])
    items = [f"q{j:02d}" for j in range(n)]
    return ItemBank.from_draws(a, b, items=items, source="test", calibration_theta=theta)


@pytest.fixture
def saved(bank, tmp_path):
    s = Session(bank, subject="m", max_items=10)
    for answer in (1, 0, 1, 1):
        s.record(s.next_item(), answer)
    return s.save(tmp_path / "s.json")


def _resigned(path, edit) -> None:
    """Apply ``edit`` to the saved JSON and recompute its checksum as a careful editor would."""
    d = json.loads(path.read_text())
    edit(d)
    body = {k: v for k, v in d.items() if k != "checksum"}
    d["checksum"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps(d))


def _set(key, value):
    def edit(d):
        target = d
        *parents, last = key
        for k in parents:
            target = target[k]
        target[last] = value

    return edit


def _delete(*key):
    def edit(d):
        target = d
        *parents, last = key
        for k in parents:
            target = target[k]
        del target[last]

    return edit


def _flip_answer(d):
    rec = d["records"][1]
    rec["answer"] = rec["y"] = 1 - rec["y"]


EDITS = {
    "answer and y flipped": (_flip_answer, r"record 2 .*stored theta_mean .* replaying"),
    "y alone": (_set(("records", 0, "y"), 0), r"record 1 .*stored y = 0, but answer 1 gives 1"),
    "estimate": (_set(("records", 3, "theta_sd"), 0.01), r"record 4 .*stored theta_sd"),
    "records removed": (_delete("records"), r"missing key\(s\) \['records'\]"),
    "unknown key": (_set(("note",), "hi"), r"unknown key\(s\) \['note'\]"),
    "config key removed": (_delete("config", "seed"), r"config: missing key\(s\) \['seed'\]"),
    "config key added": (_set(("config", "speed"), 1), r"config: unknown key\(s\) \['speed'\]"),
    "option out of range": (_set(("config", "max_items"), 0), r"invalid session options"),
    "exclude not a list": (_set(("config", "exclude"), "q01"), r"exclude must be a list"),
    "record not an object": (_set(("records", 0), ["q00", 1]), r"record 1 is not a JSON object"),
    "record key removed": (_delete("records", 2, "theta_mean"), r"record 3: missing key"),
    "item not a string": (_set(("records", 0, "item"), 7), r"record 1: item must be a string"),
    "item not in the bank": (_set(("records", 0, "item"), "zz"), r"record 1: .*not in the bank"),
    "answer not a number": (_set(("records", 0, "answer"), "yes"), r"answer and estimates"),
    "y not 0/1": (_set(("records", 0, "y"), 2), r"y must be 0 or 1"),
    "subject not a string": (_set(("subject",), None), r"subject must be a string"),
    "records not a list": (_set(("records",), {}), r"records must be a list"),
    "context not an object": (_set(("context",), "lm-eval"), r"context must be an object"),
    "pending not a list": (_set(("pending",), "q01"), r"pending must be a list of item ids"),
    "pending item not in the bank": (_set(("pending",), ["zz"]), r"pending items \['zz'\]"),
    "pending item answered": (
        lambda d: d.__setitem__("pending", [d["records"][0]["item"]]), r"pending items"),
    "too many answers": (
        lambda d: d["records"].extend(
            {**d["records"][0], "item": f"q{j:02d}"} for j in range(30)
            if f"q{j:02d}" not in {r["item"] for r in d["records"]}
        ),
        r"record \d+",
    ),
}  # fmt: skip


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_session_file_is_refused_clearly(edit, bank, saved):
    change, message = EDITS[edit]
    _resigned(saved, change)
    with pytest.raises(DataError, match=message) as caught:
        Session.load(saved, bank)
    assert str(saved) in str(caught.value)


@pytest.mark.parametrize("version", [1, 2])
def test_untouched_and_older_version_files_resume(bank, saved, version):
    resumed = Session.load(saved, bank)
    assert resumed.n_items == 4
    d = json.loads(saved.read_text())
    assert d["version"] == 3 and set(d["records"][0]) >= {"theta_mean", "theta_sd"}
    assert d["pending"] == [] and d["context"] == {}

    def as_older(d):
        d["version"] = version
        del d["pending"], d["context"], d["config"]["round_size"], d["config"]["round_rule"]
        if version == 1:
            for rec in d["records"]:
                del rec["theta_mean"], rec["theta_sd"]

    _resigned(saved, as_older)
    old = Session.load(saved, bank)
    assert old.result().theta == resumed.result().theta
