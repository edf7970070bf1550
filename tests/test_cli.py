"""Command line, smoke-tested with tiny sampler sizes and real files."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import PACKAGE_DATA

from fluid_bayes import ItemBank
from fluid_bayes.cli import main

LSAT7 = str(PACKAGE_DATA / "lsat" / "lsat7_patterns.csv")
TINY = ["--draws", "60", "--tune", "60", "--seed", "3", "--no-progress"]


def test_calibrate_then_summary_json_and_csv(tmp_path, capsys):
    out = tmp_path / "lsat7.nc"
    assert main(["calibrate", LSAT7, "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr()
    assert "5 items, 1000 calibration subjects" in printed.out
    assert "Data report for" in printed.err and "32 pattern(s) expanded" in printed.err
    bank = ItemBank.load(out)
    assert bank.meta.sampler["draws"] == 60 and bank.meta.sampler["seed"] == 3

    csv = tmp_path / "items.csv"
    assert main(["bank", "summary", str(out), "--json", "--csv", str(csv)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["n_items"] == 5 and d["chains"] == 4 and d["draws"] == 60
    assert [i["item"] for i in d["items"]] == list(bank.items)
    table = pd.read_csv(csv, index_col="item")
    assert table.loc["Item.3", "b_mean"] == pytest.approx(d["items"][2]["b_mean"])


def test_same_seed_same_output(tmp_path):
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    assert main(["calibrate", LSAT7, "--out", str(a), *TINY]) == 0
    assert main(["calibrate", LSAT7, "--out", str(b), *TINY]) == 0
    ba, bb = ItemBank.load(a), ItemBank.load(b)
    assert ba.summary().equals(bb.summary())


def test_import_params(tmp_path, capsys):
    csv = tmp_path / "p.csv"
    csv.write_text("item_id,a,b\nq1,1.0,0.0\nq2,2.0,1.0\n")
    out = tmp_path / "p.nc"
    assert main(["bank", "import-params", str(csv), "--out", str(out)]) == 0
    assert "imported 2 items" in capsys.readouterr().out
    assert main(["bank", "summary", str(out)]) == 0
    assert "point" in capsys.readouterr().out


def test_bad_input_exits_2_with_message(tmp_path, capsys):
    bad = tmp_path / "answers.csv"
    bad.write_text("model,q1,q2\nm1,1,0\nm2,yes,1\n")
    assert main(["calibrate", str(bad), "--out", str(tmp_path / "x.nc"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "answers.csv, line 3" in err and "'q1'" in err and "'yes'" in err
    assert not (tmp_path / "x.nc").exists()
    assert main(["bank", "summary", str(bad)]) == 2
    assert "not a netCDF item bank" in capsys.readouterr().err


def test_strict_exits_3_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "s.nc"
    code = main(
        [
            "calibrate",
            LSAT7,
            "--out",
            str(out),
            "--draws",
            "10",
            "--tune",
            "10",
            "--strict",
            "--no-progress",
        ]
    )
    assert code == 3
    assert "NOT CONVERGED" in capsys.readouterr().err
    assert not out.exists()


def test_module_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "fluid_bayes", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stdout.startswith("fluid-bayes ")
    r = subprocess.run(
        [sys.executable, "-m", "fluid_bayes", "calibrate", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--format",
        "--sampler",
        "--draws",
        "--tune",
        "--chains",
        "--seed",
        "--group-by",
        "--items-meta",
        "--threshold",
        "--strict",
    ):
        assert flag in r.stdout
