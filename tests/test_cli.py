"""Command line, smoke-tested with tiny sampler sizes and real files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, PACKAGE_DATA

from fluid_bayes import ItemBank
from fluid_bayes.cli.main import main

LSAT7 = str(PACKAGE_DATA / "lsat" / "lsat7_patterns.csv")
FIXTURE = FIXTURES / "reference_parity.json"
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


def test_calibrate_drop_constant_leaves_out_and_reports_constant_items(tmp_path, capsys):
    # 8 ChemBench models x 40 questions: some questions all 8 got right or all wrong
    wide = pd.read_csv(PACKAGE_DATA / "chembench" / "responses.csv", index_col=0)
    part = wide.iloc[:8, :40]
    constant = [c for c in part.columns if part[c].nunique() == 1]
    assert 0 < len(constant) < 40
    path = tmp_path / "part.csv"
    part.to_csv(path)
    out = tmp_path / "part.nc"
    assert main(["calibrate", str(path), "--out", str(out), "--drop-constant", *TINY]) == 0
    assert f"items dropped (constant): {len(constant)}" in capsys.readouterr().err
    bank = ItemBank.load(out)
    assert bank.n_items == 40 - len(constant) and not set(constant) & set(bank.items)
    assert sorted(bank.meta.data_report["dropped_items"]) == sorted(constant)


def test_calibrate_constant_items_integrated_or_sampled(tmp_path, capsys):
    """The same 8 x 40 slice without --drop-constant: every item in the bank; with
    --constant-items integrate the constant ones are drawn after sampling (and counted
    in the summary), with sample they are sampled."""
    wide = pd.read_csv(PACKAGE_DATA / "chembench" / "responses.csv", index_col=0)
    part = wide.iloc[:8, :40]
    constant = [c for c in part.columns if part[c].nunique() == 1]
    path = tmp_path / "part.csv"
    part.to_csv(path)
    for mode, expected in (("integrate", len(constant)), ("sample", 0)):
        out = tmp_path / f"{mode}.nc"
        args = ["calibrate", str(path), "--out", str(out), "--constant-items", mode, *TINY]
        assert main(args) == 0
        printed = capsys.readouterr().out
        bank = ItemBank.load(out)
        assert list(bank.items) == list(part.columns)
        assert np.isfinite(bank.posterior["b"].sel(item=constant).values).all()
        assert bank.summary_dict()["constant_items_integrated"] == expected
        assert (f"{len(constant)} constant items integrated out" in printed) == bool(expected)
        assert bank.meta.config["constant_items"] == mode


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


# ---------------------------------------------------------------------------- evaluate
CHEMBENCH_BANK = str(PACKAGE_DATA.parents[1] / "models" / "chembench.nc")
CHEMBENCH = str(PACKAGE_DATA / "chembench" / "responses.csv")
KEYS = {
    "subject", "n_items", "items", "theta_mean", "theta_sd", "theta_hdi_low", "theta_hdi_high",
    "accuracy_mean", "accuracy_low", "accuracy_high", "stop_reason", "trajectory",
}  # fmt: skip


def test_evaluate_json_on_the_shipped_bank(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    argv = ["evaluate", CHEMBENCH_BANK, CHEMBENCH, "--subjects", "GPT-4", "Galatica-120b",
            "--max-items", "12", "--json", "--trace", str(trace)]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    recs = [json.loads(x) for x in lines]
    assert [r["subject"] for r in recs] == ["GPT-4", "Galatica-120b"]
    for r in recs:
        assert KEYS <= set(r) and r["n_items"] == 12 == len(r["items"]) == len(r["trajectory"])
        assert r["theta_hdi_low"] < r["theta_mean"] < r["theta_hdi_high"]
        assert 0 <= r["accuracy_low"] <= r["accuracy_mean"] <= r["accuracy_high"] <= 1
        assert r["stop_reason"] == "max_items"
    assert recs[0]["theta_mean"] > recs[1]["theta_mean"]  # GPT-4 above Galactica
    t = pd.read_csv(trace)
    assert len(t) == 24 and list(t["item"][:12]) == recs[0]["items"]


def test_evaluate_paper_trajectory_is_the_reference(tmp_path, capsys):
    case = next(c for c in json.loads(FIXTURE.read_text())["cases"] if c["kind"] == "session")
    ids = [f"q{j}" for j in range(len(case["a"]))]
    params = tmp_path / "p.csv"
    pd.DataFrame({"item_id": ids, "a": case["a"], "b": case["b"]}).to_csv(params, index=False)
    data = tmp_path / "d.csv"
    pd.DataFrame([case["responses"]], columns=ids, index=pd.Index(["m"], name="model")).to_csv(data)
    bank = tmp_path / "ref.nc"
    assert main(["bank", "import-params", str(params), "--out", str(bank)]) == 0
    capsys.readouterr()
    argv = [
        "evaluate",
        str(bank),
        str(data),
        "--method",
        "paper",
        "--json",
        "--max-items",
        str(case["n_max"]),
        "--start-ability",
        str(case["start_ability"]),
    ]
    assert main(argv) == 0
    rec = json.loads(capsys.readouterr().out)
    assert [int(i[1:]) for i in rec["items"]] == case["expected_items"]
    traj = [s["theta_mean"] for s in rec["trajectory"]]
    assert max(abs(x - y) for x, y in zip(traj, case["expected_abilities"], strict=True)) < 1e-6
    assert rec["theta_mean"] == traj[-1]


def test_evaluate_bad_input_exits_2(tmp_path, capsys):
    base = ["evaluate", CHEMBENCH_BANK, CHEMBENCH]
    assert main([*base, "--subjects", "nobody"]) == 2
    assert "unknown subject id" in capsys.readouterr().err
    assert main([*base, "--stop-sd", "soon"]) == 2
    assert "--stop-sd" in capsys.readouterr().err
    ex = tmp_path / "ex.txt"
    ex.write_text("chembench_1\nnot_an_item\n")
    assert main([*base, "--exclude", str(ex), "--max-items", "3"]) == 2
    assert "not_an_item" in capsys.readouterr().err
