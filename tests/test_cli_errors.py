"""No traceback on any bad input (issue 18): every option reaches what runs, every user
mistake is one line ``fluid-bayes: error: ...`` with exit status 2, found before any
sampling or evaluation starts, and ``--help`` loads no PyMC, PyTensor, JAX or ArviZ."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PACKAGE_DATA

from fluid_bayes.adaptive.options import SessionConfig
from fluid_bayes.bank import ItemBank
from fluid_bayes.calibration import fitting, model
from fluid_bayes.calibration.options import SamplerOptions
from fluid_bayes.cli.main import _parser, main
from fluid_bayes.study import simulate

LSAT7 = str(PACKAGE_DATA / "lsat" / "lsat7_patterns.csv")
HEAVY = ("pymc", "pytensor", "jax", "arviz", "dask", "distributed")


# ------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A 40-item bank of posterior-like draws, 0/1 answers and scores of 3 subjects."""
    d = tmp_path_factory.mktemp("cli_errors")
    rng = np.random.default_rng(18)
    n = 40
    b = rng.normal(0.0, 1.0, n) + rng.normal(0, 0.4, (1, 30, n))
    a = np.exp(rng.normal(0.2, 0.4, n) + rng.normal(0, 0.3, (1, 30, n)))
    items = [f"q{j:02d}" for j in range(n)]
    theta = pd.Series(np.sort(rng.normal(size=10)), index=[f"c{k}" for k in range(10)])
    bank = ItemBank.from_draws(a, b, items=items, source="test", calibration_theta=theta)
    bank.save(d / "bank.nc")
    scores = rng.random((3, n)).round(2)
    index = pd.Index(["m1", "m2", "m3"], name="model")
    pd.DataFrame((scores >= 0.4).astype(int), columns=items, index=index).to_csv(d / "data.csv")
    pd.DataFrame(scores, columns=items, index=index).to_csv(d / "scores.csv")
    return {"dir": str(d), "bank": str(d / "bank.nc"), "data": str(d / "data.csv"),
            "scores": str(d / "scores.csv")}  # fmt: skip


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder nothing can be written into (a read-only one, or /sys as root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    candidates = [ro, Path("/sys")]
    try:
        for folder in candidates:
            try:
                tempfile.TemporaryFile(dir=folder).close()
            except OSError:
                yield folder
                return
        pytest.skip("no folder here refuses writes")
    finally:
        ro.chmod(0o700)


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail the test if a fit, a compile, a replay or a simulation is entered."""

    def entered(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(fitting, "run_fit", entered)
    monkeypatch.setattr(model.HierarchicalTwoPL, "build", entered)
    monkeypatch.setattr("fluid_bayes.adaptive.replay.replay", entered)
    monkeypatch.setattr(simulate, "simulate_bank", entered)


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err, *expected):
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fluid-bayes: error: "), err
    for text in expected:
        assert text in last, (text, last)


# ---------------------------------------------------------------- help: no PyMC
def _commands() -> list[list[str]]:
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    out = [[]]
    for name, p in sub.choices.items():
        out.append([name])
        nested = [a for a in p._actions if getattr(a, "choices", None) and a.dest.endswith(
            "_command")]  # fmt: skip
        for action in nested:
            out += [[name, n] for n in action.choices]
    return out


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c) or "top")
def test_help_imports_no_pymc_pytensor_jax_or_arviz(command):
    code = f"""
import contextlib, io, sys
from fluid_bayes.cli.main import _parser
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        _parser().parse_args({command!r} + ["--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
assert "usage:" in out.getvalue()
heavy = [m for m in {HEAVY!r} if m in sys.modules]
assert not heavy, heavy
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# ------------------------------------------- every option changes what runs
def _evaluate(files, capsys, *extra) -> dict:
    argv = ["evaluate", files["bank"], files["data"], "--subjects", "m1", "--max-items", "5",
            "--json", *extra]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    return json.loads(out)


def _exclude_first_item(files, capsys) -> list[str]:
    first = _evaluate(files, capsys)["items"][0]
    path = Path(files["dir"]) / "exclude.txt"
    path.write_text(f"# asked first by default\n{first}\n")
    return ["--exclude", str(path)]


#: field -> (baseline flags, changed flags); the changed run must give other JSON
SESSION_CASES = {
    "estimator": ([], ["--estimator", "eap"]),
    "select": ([], ["--select", "mfi"]),
    "max_items": ([], ["--max-items", "4"]),
    "min_items": (["--stop-sd", "10"], ["--stop-sd", "10", "--min-items", "3"]),
    "stop_sd": ([], ["--stop-sd", "10"]),
    "start_ability": ([], ["--start-ability", "3"]),
    "prior_mean": ([], ["--prior-mean", "1.5"]),
    "prior_sd": ([], ["--prior-sd", "0.4"]),
    "seed": (["--method", "random"], ["--method", "random", "--seed", "1"]),
    "randomesque": ([], ["--randomesque", "6"]),
    "exclude": ([], _exclude_first_item),
    "threshold": (["--threshold", "0.2"], ["--threshold", "0.9"]),
    "integration": ([], ["--integration", "mixture"]),
    "round_size": ([], ["--round-size", "5"]),
    "round_rule": (["--round-size", "5"], ["--round-size", "5", "--round-rule", "believer"]),
}


def test_every_session_option_has_a_case():
    assert set(SESSION_CASES) == {f.name for f in dataclasses.fields(SessionConfig)}


@pytest.mark.parametrize("field", list(SESSION_CASES))
def test_each_session_option_changes_what_evaluate_runs(field, files, capsys):
    base, changed = SESSION_CASES[field]
    if callable(changed):
        changed = changed(files, capsys)
    if field == "threshold":  # continuous scores, binarized by the threshold
        files = {**files, "data": files["scores"]}
    before, after = _evaluate(files, capsys, *base), _evaluate(files, capsys, *changed)
    assert before != after


#: field -> (flags, the value HierarchicalTwoPL.fit must pass on to run_fit)
SAMPLER_CASES = {
    "sampler": (["--sampler", "pymc"], "pymc"),
    "draws": (["--draws", "7"], 7),
    "max_draws": (["--draws", "7", "--max-draws", "21"], 21),
    "tune": (["--tune", "11"], 11),
    "chains": (["--chains", "3"], 3),
    "seed": (["--seed", "5"], 5),
    "target_accept": (["--target-accept", "0.7"], 0.7),
    "backend": (["--backend", "jax"], "jax"),
    "strict": (["--strict"], True),
    "progress": (["--progress"], True),
}


def test_every_sampler_option_has_a_case():
    assert set(SAMPLER_CASES) == {f.name for f in dataclasses.fields(SamplerOptions)}
    defaults = SamplerOptions()
    for name, (_, value) in SAMPLER_CASES.items():
        assert getattr(defaults, name) != value, name  # the case changes something


@pytest.mark.parametrize("field", list(SAMPLER_CASES))
def test_each_sampler_option_reaches_the_fit(field, tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_run_fit(spec, data, **kwargs):
        seen.update(kwargs)
        raise fitting.ConvergenceError("stop here")

    monkeypatch.setattr(fitting, "run_fit", fake_run_fit)
    flags, value = SAMPLER_CASES[field]
    code, _, err = run_cli(["calibrate", LSAT7, "--out", tmp_path / "b.nc", *flags], capsys)
    assert code == 3 and "stop here" in err
    assert seen[field] == value
    assert set(seen) == {f.name for f in dataclasses.fields(SamplerOptions)}


@pytest.mark.parametrize(
    ("flags", "workers", "scheduler"),
    [([], "auto", None), (["--workers", "3"], 3, None), (["--workers", "1"], 1, None),
     (["--scheduler", "tcp://h:8786"], 1, "tcp://h:8786")],
)  # fmt: skip
@pytest.mark.parametrize("command", ["evaluate", "experiment"])
def test_worker_options_reach_the_pool(command, flags, workers, scheduler, files, tmp_path,
                                       capsys, monkeypatch):  # fmt: skip
    from fluid_bayes.adaptive import workers as workers_module

    seen = {}

    def stop(*args, **kwargs):
        pool = kwargs["workers"]
        seen.update(workers=pool.workers, scheduler=pool.scheduler)
        raise fitting.ConvergenceError("stop here")

    monkeypatch.setattr(workers_module.Workers, "_start", lambda self, n=None: None)
    monkeypatch.setattr("fluid_bayes.adaptive.replay.replay", stop)
    monkeypatch.setattr("fluid_bayes.study.experiment.run_experiment", stop)
    argv = (["evaluate", files["bank"], files["data"]] if command == "evaluate" else
            ["experiment", files["data"], "--bank", files["bank"], "--out", tmp_path / "ex",
             "--no-series", "--no-progress"])  # fmt: skip
    code, _, err = run_cli([*argv, *flags], capsys)
    assert code == 3 and "stop here" in err
    assert seen == {"workers": workers, "scheduler": scheduler}


# ---------------------------------------------------- bad input: one line, exit 2
def _bad_cases():
    """(id, argv with {bank} {data} {dir} {ro} placeholders, expected texts)."""
    ev = ["evaluate", "{bank}", "{data}"]
    cal = ["calibrate", LSAT7, "--out", "{dir}/b.nc"]
    return [
        ("calibrate-out-unwritable", ["calibrate", LSAT7, "--out", "{ro}/b.nc"],
         ["argument --out", "not writable"]),
        ("calibrate-out-under-a-file", ["calibrate", LSAT7, "--out", "{data}/b.nc"],
         ["argument --out", "is a file, not a folder"]),
        ("calibrate-out-is-a-folder", ["calibrate", LSAT7, "--out", "{dir}"],
         ["argument --out", "is a folder"]),
        ("calibrate-data-missing", ["calibrate", "{dir}/none.csv", "--out", "{dir}/b.nc"],
         ["argument data", "none.csv: no such file"]),
        ("draws-0", [*cal, "--draws", "0"], ["argument --draws", ">= 1", "'0'"]),
        ("draws-negative", [*cal, "--draws", "-5"], ["argument --draws", "'-5'"]),
        ("draws-huge", [*cal, "--draws", "1000000000000"], ["argument --draws", "<= 2147483647"]),
        ("chains-0", [*cal, "--chains", "0"], ["argument --chains", ">= 1"]),
        ("tune-0", [*cal, "--tune", "0"], ["argument --tune", ">= 1"]),
        ("seed-negative", [*cal, "--seed", "-1"], ["argument --seed", ">= 0"]),
        ("target-accept-1", [*cal, "--target-accept", "1"], ["argument --target-accept"]),
        ("max-draws-below-draws", [*cal, "--draws", "10", "--max-draws", "5"],
         ["--max-draws (5) must be at least --draws (10)"]),
        ("threshold-0", [*cal, "--threshold", "0"], ["argument --threshold", "(0, 1]"]),
        ("priors-not-json", [*cal, "--priors", "sigma_b: 2"], ["argument --priors", "JSON"]),
        ("items-meta-missing", [*cal, "--items-meta", "{dir}/meta.csv"],
         ["argument --items-meta", "no such file"]),
        ("refit-draws-0", ["refit", "{bank}", "--add", "{data}", "--out", "{dir}/r.nc",
                           "--draws", "0"], ["argument --draws"]),
        ("demo-chains-0", ["demo", "--out", "{dir}/demo", "--chains", "0"],
         ["argument --chains"]),
        ("demo-out-unwritable", ["demo", "--out", "{ro}/demo"], ["argument --out"]),
        ("stop-sd-negative", [*ev, "--stop-sd", "-1"], ["argument --stop-sd", "> 0"]),
        ("stop-sd-0", [*ev, "--stop-sd", "0"], ["argument --stop-sd"]),
        ("start-ability-nan", [*ev, "--start-ability", "nan"],
         ["argument --start-ability", "finite"]),
        ("start-ability-inf", [*ev, "--start-ability", "inf"], ["argument --start-ability"]),
        ("max-items-0", [*ev, "--max-items", "0"], ["argument --max-items", ">= 1"]),
        ("min-items-negative", [*ev, "--min-items", "-1"], ["argument --min-items", ">= 0"]),
        ("min-above-max", [*ev, "--min-items", "6", "--max-items", "5"],
         ["--min-items (6) exceeds --max-items (5)"]),
        ("prior-sd-0", [*ev, "--prior-sd", "0"], ["argument --prior-sd"]),
        ("randomesque-0", [*ev, "--randomesque", "0"], ["argument --randomesque"]),
        ("evaluate-seed-negative", [*ev, "--seed", "-1"], ["argument --seed"]),
        ("exclude-missing", [*ev, "--exclude", "{dir}/missing.txt"],
         ["argument --exclude", "missing.txt: no such file"]),
        ("trace-unwritable", [*ev, "--trace", "{ro}/t.csv"], ["argument --trace", "not writable"]),
        ("evaluate-bank-missing", ["evaluate", "{dir}/none.nc", "{data}"],
         ["argument bank", "no such file"]),
        ("workers-0", [*ev, "--workers", "0"], ["argument --workers", ">= 1", "'0'"]),
        ("workers-not-a-number", [*ev, "--workers", "two"], ["argument --workers"]),
        ("workers-and-scheduler", [*ev, "--workers", "2", "--scheduler", "tcp://h:8786"],
         ["argument --scheduler", "not allowed with argument --workers"]),
        ("scheduler-with-spaces", [*ev, "--scheduler", "tcp://h 8786"],
         ["argument --scheduler", "address of a Dask scheduler"]),
        ("experiment-workers-0", ["experiment", "{data}", "--bank", "{bank}", "--out",
                                  "{dir}/ex", "--workers", "0"], ["argument --workers"]),
        ("experiment-workers-and-scheduler", ["experiment", "{data}", "--bank", "{bank}",
                                              "--out", "{dir}/ex", "--scheduler", "h:1",
                                              "--workers", "2"], ["not allowed with"]),
        ("summary-csv-unwritable", ["bank", "summary", "{bank}", "--csv", "{ro}/i.csv"],
         ["argument --csv"]),
        ("simulate-items-0", ["simulate", "--out", "{dir}/sim", "--items", "0"],
         ["argument --items", ">= 1"]),
        ("simulate-draws-0", ["simulate", "--out", "{dir}/sim", "--draws", "0"],
         ["argument --draws"]),
        ("simulate-out-unwritable", ["simulate", "--out", "{ro}/sim"], ["argument --out"]),
        ("simulate-memory", ["simulate", "--out", "{dir}/sim", "--items", "2000000000",
                             "--draws", "2000000000"], ["of memory", "lower --items"]),
        ("experiment-budget-0", ["experiment", "{data}", "--bank", "{bank}", "--out",
                                 "{dir}/ex", "--budgets", "0"], ["argument --budgets"]),
        ("experiment-repeats-0", ["experiment", "{data}", "--bank", "{bank}", "--out",
                                  "{dir}/ex", "--repeats", "0"], ["argument --repeats"]),
        ("mislabels-flag-prob-0", ["mislabels", "{bank}", "--flag-prob", "0"],
         ["argument --flag-prob"]),
        ("mislabels-tail-1", ["mislabels", "{bank}", "--tail", "1"], ["argument --tail"]),
        ("drift-prob", ["drift", "{bank}", "{bank}", "--prob", "1.5"], ["argument --prob"]),
        ("drift-plot-unwritable", ["drift", "{bank}", "{bank}", "--plot", "{ro}/d.png"],
         ["argument --plot"]),
        ("diagnose-seed", ["diagnose", "{bank}", "--seed", "-1"], ["argument --seed"]),
        ("diagnose-thresholds", ["diagnose", "{bank}", "--thresholds", "[1]"],
         ["argument --thresholds", "JSON object"]),
    ]  # fmt: skip


@pytest.mark.parametrize(("argv", "expected"), [c[1:] for c in _bad_cases()],
                         ids=[c[0] for c in _bad_cases()])  # fmt: skip
def test_bad_option_is_one_line_before_any_work(argv, expected, files, unwritable, tmp_path,
                                                 capsys, nothing_runs):  # fmt: skip
    names = {"bank": files["bank"], "data": files["data"], "dir": tmp_path, "ro": unwritable}
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run_cli([a.format(**names) for a in argv], capsys)
    assert_user_error(code, err, *expected)
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, no folder made


def test_calibrate_memory_is_estimated_before_compiling(tmp_path, capsys, monkeypatch):
    def compiled(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(model.HierarchicalTwoPL, "build", compiled)
    argv = ["calibrate", LSAT7, "--out", tmp_path / "b.nc", "--draws", "2000000000"]
    code, _, err = run_cli(argv, capsys)
    assert_user_error(code, err, "2,000,000,000 per chain x 4 chains", "of memory",
                      "lower draws, max_draws or chains")  # fmt: skip
    assert not (tmp_path / "b.nc").exists()


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


CAFE_NFC, CAFE_NFD = "caf\u00e9", "cafe\u0301"


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        ("calibrate", "model;q1;q2\nm1;1;0\nm2;0;1\n",
         ["answers.csv, line 1", "split on semicolons", "semicolon-separated"]),
        ("calibrate", f"model,{CAFE_NFC},{CAFE_NFD}\nm1,1,0\nm2,0,1\n",
         ["answers.csv", "columns 2 and 3", "Unicode normalization"]),
        ("calibrate", f"model,q1\n{CAFE_NFC},1\n{CAFE_NFD},0\n",
         ["answers.csv, line 3", "subject ids", "Unicode normalization"]),
        ("calibrate", f"subject,item,score\nm1,{CAFE_NFC},1\nm1,{CAFE_NFD},0\nm2,{CAFE_NFC},0\n",
         ["answers.csv", "item ids", "Unicode normalization"]),
        ("import-params", "item_id,a,b\nq1,1.0,0.0\n ,1.0,0.5\n",
         ["answers.csv, line 3", "empty item id"]),
        ("import-params", f"item_id,a,b\n{CAFE_NFC},1.0,0.0\n{CAFE_NFD},1.0,0.5\n",
         ["answers.csv, line 3", "Unicode normalization"]),
        ("import-params", "item_id;a;b\nq1;1.0;0.0\n", ["answers.csv, line 1", "semicolon"]),
    ],
    ids=["semicolon-csv", "nfc-header", "nfc-rows", "nfc-long", "empty-item-id",
         "nfc-params", "semicolon-params"],
)  # fmt: skip
def test_bad_file_is_one_line_naming_file_and_line(command, text, expected, tmp_path, capsys,
                                                   nothing_runs):  # fmt: skip
    path = _write(tmp_path / "answers.csv", text)
    if command == "calibrate":
        argv = ["calibrate", path, "--out", tmp_path / "b.nc"]
    else:
        argv = ["bank", "import-params", path, "--out", tmp_path / "b.nc"]
    code, _, err = run_cli(argv, capsys)
    assert_user_error(code, err, *expected)
    assert not (tmp_path / "b.nc").exists()


def test_outputs_into_missing_folders_are_created(files, tmp_path, capsys):
    trace = tmp_path / "new" / "deeper" / "trace.csv"
    argv = ["evaluate", files["bank"], files["data"], "--max-items", "3", "--trace", trace]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert len(pd.read_csv(trace)) == 9
    csv = tmp_path / "summary" / "items.csv"
    code, _, err = run_cli(["bank", "summary", files["bank"], "--csv", csv], capsys)
    assert code == 0 and csv.is_file()


def test_library_refuses_what_the_cli_refuses():
    from fluid_bayes.exceptions import OptionError

    with pytest.raises(OptionError, match="max_items must be an integer >= 1, got 0"):
        SessionConfig(max_items=0)
    with pytest.raises(OptionError, match="start_ability must be a finite number"):
        SessionConfig(start_ability=float("nan"))
    with pytest.raises(OptionError, match="stop_sd"):
        SessionConfig(stop_sd=-1.0)
    with pytest.raises(OptionError, match="seed"):
        SessionConfig(seed=-1)
    with pytest.raises(OptionError, match="exclude must be a sequence"):
        SessionConfig(exclude="q1")
    with pytest.raises(OptionError, match="draws must be an integer >= 1, got 0"):
        SamplerOptions(draws=0)
    with pytest.raises(OptionError, match="chains"):
        SamplerOptions(chains=0)
    with pytest.raises(OptionError, match="unknown sampler"):
        SamplerOptions(sampler="gibbs")
    with pytest.raises(OptionError, match=r"max_draws \(5\) must be at least draws \(10\)"):
        SamplerOptions(draws=10, max_draws=5)
    assert SamplerOptions().resolved_draws() == (1000, 8000)
