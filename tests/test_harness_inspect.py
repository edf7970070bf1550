"""The Inspect AI driver, through the real Inspect (inspect-ai 0.3.285; nothing mocked).

The examinee is the ``fluidsim`` provider (:mod:`fluid_bayes.harness.inspect_sim`): a
real Inspect model whose answers are :class:`SimulatedAbility`'s, so a live run can be
checked against the known ability, against the documents it asked and against
``fluid_bayes.replay`` over the same answers.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import Task  # noqa: E402
from inspect_ai.dataset import MemoryDataset, Sample  # noqa: E402
from inspect_ai.scorer import choice  # noqa: E402
from inspect_ai.solver import multiple_choice  # noqa: E402

from fluid_bayes.adaptive.options import SessionConfig  # noqa: E402
from fluid_bayes.adaptive.replay import replay  # noqa: E402
from fluid_bayes.bank import ItemBank  # noqa: E402
from fluid_bayes.data.responses import from_array  # noqa: E402
from fluid_bayes.exceptions import BankError, DataError  # noqa: E402
from fluid_bayes.harness.documents import DocumentMap, attach_documents  # noqa: E402
from fluid_bayes.harness.inspect import (  # noqa: E402
    MISSING_EXTRA,
    escape_sample_id,
    load_tasks,
    run,
    run_live,
)
from fluid_bayes.harness.inspect_sim import simulated_model  # noqa: E402
from fluid_bayes.harness.loop import HarnessError, HarnessRunError  # noqa: E402

# Inspect 0.3.285 leaves anyio memory streams to the garbage collector after eval()
# (ResourceWarning: Unclosed MemoryObjectReceiveStream, raised as "unraisable" in
# __del__); the project turns warnings into errors, so this module lets these two pass.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(autouse=True)
def _collect_inspect_streams():
    """Collect those streams while this module's filter applies (not at pytest's exit)."""
    yield
    gc.collect()


REPO = Path(__file__).resolve().parents[1]
TASK = "chem_sim"
N_ITEMS = 600  # the first 600 ChemBench items: enough to choose from, quick to load


def _subset(bank: ItemBank, n: int, thin: int) -> ItemBank:
    a = bank.a.values[:, ::thin, :n]
    b = bank.b.values[:, ::thin, :n]
    return ItemBank.from_draws(a, b, items=list(bank.items[:n]), source="chembench subset",
                               calibration_theta=bank.subjects["theta_mean"])  # fmt: skip


def _mapped(bank: ItemBank, task: str, doc_ids=None) -> ItemBank:
    n = bank.n_items
    docs = tuple(doc_ids) if doc_ids is not None else tuple(str(k) for k in range(n))
    return attach_documents(bank, DocumentMap(bank.items, (task,) * n, docs))


@pytest.fixture(scope="module")
def plain():
    """ChemBench's first items, 100 draws, without a document map."""
    return _subset(ItemBank.load(REPO / "models" / "chembench.nc"), N_ITEMS, 4)


@pytest.fixture(scope="module")
def chem(plain, tmp_path_factory):
    """(mapped bank, its file): item k is sample k of the task ``chem_sim``."""
    bank = _mapped(plain, TASK)
    path = bank.save(tmp_path_factory.mktemp("bank") / "chem.nc")
    return bank, path


def sim_task(n: int = N_ITEMS, name: str = TASK, ids=None) -> Task:
    """A multiple-choice task of ``n`` samples (ids 0..n-1 unless given)."""
    ids = list(range(n)) if ids is None else list(ids)
    samples = [Sample(id=i, input=f"Question {k}?", choices=["w", "x", "y", "z"],
                      target="ABCD"[k % 4]) for k, i in enumerate(ids)]  # fmt: skip
    return Task(dataset=MemoryDataset(samples, name=name), solver=multiple_choice(),
                scorer=choice(), name=name)  # fmt: skip


def model(theta: float, seed: int) -> str:
    return f"fluidsim/theta={theta}:seed={seed}"


def fresh(path, theta, seed):
    """The process's simulated model of (bank, theta, seed), its counts cleared."""
    sim, _ = simulated_model(path, theta, seed)
    sim.asked.clear()
    return sim


def live(chem, theta, seed, log_dir, task=None, **kw):
    bank, path = chem
    kw.setdefault("model_args", {"bank": str(path)})
    return run_live(bank, task or sim_task(), model(theta, seed), log_dir=log_dir, **kw)


# ------------------------------------------------------------------ live runs
@pytest.mark.parametrize(("theta", "seed"), [(-1.0, 11), (0.5, 12), (1.5, 13)])
def test_live_run_covers_the_known_ability_and_asks_each_document_once(chem, tmp_path, theta,
                                                                       seed):  # fmt: skip
    # Seeded and deterministic (the answers hash (seed, item), the selection has no
    # randomness), so coverage is a fixed fact, not a chance: after 30 answers the
    # posterior SD is 0.16-0.21 on this bank (the 94% interval 0.6-0.8 wide) and the
    # estimates miss the true ability by 0.14, 0.14 and 0.19, about one SD each; a
    # calibrated interval covers a random seed with probability 0.94. The simulated model
    # answers each item by its own posterior predictive (items independent), which is the
    # equal-weight mixture's model; the default "weighted" posterior instead takes one
    # joint draw to be the truth and re-weights the draws by the answers, and on this
    # examinee misses theta = 1.5 (mean 1.06, SD 0.19; 2026-12-04). So the coverage
    # fact is checked under the model the answers follow.
    sim = fresh(chem[1], theta, seed)
    run_ = live(chem, theta, seed, tmp_path, round_size=5, max_items=30, integration="mixture")
    th = run_.result.theta
    assert th.hdi_low <= theta <= th.hdi_high, (theta, th)
    assert run_.result.n_items == 30 and run_.documents_run == 30 and len(run_.rounds) == 6
    # the harness ran exactly the documents the session asked, each once
    assert sim.asked == dict.fromkeys(run_.result.items, 1)
    # and its answers are the simulated model's
    truth = sim.answers(run_.result.items)
    assert [s.answer for s in run_.result.steps] == [truth[i] for i in run_.result.items]
    assert run_.full_task_documents == N_ITEMS
    assert len(list(tmp_path.glob("*.eval"))) == 6  # one Inspect log per round


def _replayed(chem, theta, seed, subject, **options):
    bank, path = chem
    sim, _ = simulated_model(path, theta, seed)
    answers = sim.answers()
    data = from_array(np.array([[answers[i] for i in bank.items]], dtype=float),
                      subjects=[subject], items=list(bank.items))  # fmt: skip
    (result,) = replay(bank, data, config=SessionConfig.for_method("bayes", **options)).results
    return result


@pytest.mark.parametrize("k", [1, 4])
def test_live_session_equals_replay_of_the_same_answers(chem, tmp_path, k):
    theta, seed = 0.3, 21
    run_ = live(chem, theta, seed, tmp_path, round_size=k, max_items=8 if k == 1 else 12)
    ref = _replayed(chem, theta, seed, model(theta, seed), round_size=k,
                    max_items=run_.result.n_items)  # fmt: skip
    assert run_.result.items == ref.items
    assert [s.answer for s in run_.result.steps] == [s.answer for s in ref.steps]
    for key in ("theta_mean", "theta_sd"):
        np.testing.assert_allclose([getattr(s, key) for s in run_.result.steps],
                                   [getattr(s, key) for s in ref.steps], rtol=1e-9)  # fmt: skip
    assert run_.result.accuracy_mean == pytest.approx(ref.accuracy_mean, rel=1e-9)
    assert len(run_.rounds) == -(-run_.result.n_items // k)


def test_a_failed_model_resumes_without_rerunning_or_losing_answers(chem, tmp_path):
    theta, seed = -0.4, 31
    session = tmp_path / "s.json"
    sim = fresh(chem[1], theta, seed)
    bank, path = chem
    failing = {"bank": str(path), "fail_after": 7}  # round 1 (5) passes, round 2 fails
    with pytest.raises(HarnessRunError, match=r"simulated failure after 7 documents"):
        live(chem, theta, seed, tmp_path / "logs", round_size=5, max_items=15,
             session=session, model_args=failing)  # fmt: skip
    saved = json.loads(session.read_text())
    first = [r["item"] for r in saved["records"]]
    assert len(first) == 5  # the failed round recorded nothing
    resumed = live(chem, theta, seed, tmp_path / "logs", round_size=5, max_items=15,
                   session=session)  # fmt: skip
    assert resumed.resumed_items == 5 and resumed.documents_run == 10
    assert list(resumed.result.items[:5]) == first  # no answer lost
    assert all(sim.asked[i] == 1 for i in first)  # no answered document run twice
    assert set(sim.asked) >= set(resumed.result.items)
    whole = live(chem, theta, seed, tmp_path / "whole", round_size=5, max_items=15)
    assert whole.result.items == resumed.result.items
    assert whole.result.theta == resumed.result.theta
    assert whole.result.accuracy_mean == resumed.result.accuracy_mean


def test_glob_characters_in_sample_ids_are_matched_literally(plain, tmp_path):
    # ids that are fnmatch patterns of other ids: 'q*' would also run 'qa', 'q?' 'qb', ...
    ids = ["q*", "q?", "[q]", "qa", "qb", "q", "t:x"] + [f"x{k}" for k in range(33)]
    small = _subset(plain, len(ids), 10)
    bank = _mapped(small, "globs", ids)
    path = bank.save(tmp_path / "globs.nc")
    sim = fresh(path, 0.0, 1)
    task = sim_task(len(ids), "globs", ids)
    done = run_live(bank, task, model(0.0, 1), model_args={"bank": str(path)}, log_dir=tmp_path,
                    round_size=len(ids), max_items=len(ids))  # fmt: skip
    assert sim.asked == dict.fromkeys(bank.items, 1)
    assert done.result.n_items == len(ids)
    assert escape_sample_id("a*b?[c]") == "a[*]b[?][[]c]"


def test_shipped_mmlu_redux_task_rows_are_sample_ids(tmp_path):
    import pandas as pd

    from fluid_bayes.harness.tasks.mmlu_redux_inspect import QUESTIONS, TASK_NAME

    (task,) = load_tasks(str(REPO / "fluid_bayes/harness/tasks/mmlu_redux_inspect.py")
                         + "@mmlu_redux_local")  # fmt: skip
    rows = pd.read_csv(QUESTIONS)
    assert task.name == TASK_NAME and len(task.dataset) == len(rows) == 5700
    for k in (0, 1, 2345, 5699):
        s = task.dataset[k]
        assert s.id == k and s.input == rows.question[k]
        assert s.target == "ABCD"[rows.answer[k]] and s.metadata["item_id"] == rows.item_id[k]
    # the same task by its name, and a live run on the map task=mmlu_redux_local, doc_id=k
    bank = ItemBank.load(REPO / "models" / "mmlu-redux.nc")
    n = 300
    sub = ItemBank.from_draws(bank.a.values[:, :, :n], bank.b.values[:, :, :n],
                              items=list(bank.items[:n]), source="mmlu subset",
                              calibration_theta=bank.subjects["theta_mean"])  # fmt: skip
    mapped = _mapped(sub, TASK_NAME)
    path = mapped.save(tmp_path / "mmlu.nc")
    sim = fresh(path, 0.5, 1)
    result = run(mapped, "mmlu_redux_local", model(0.5, 1), model_args={"bank": str(path)},
                 log_dir=tmp_path / "logs", round_size=5, max_items=5)  # fmt: skip
    assert result.n_items == 5 and sim.asked == dict.fromkeys(result.items, 1)


# ------------------------------------------------------------------ bad input
def _nothing_ran(sim, log_dir: Path):
    assert not sim.asked
    assert not list(log_dir.glob("**/*.eval"))


def test_bad_input_is_refused_before_anything_runs(chem, plain, tmp_path):
    bank, path = chem
    sim = fresh(path, 0.0, 41)
    logs = tmp_path / "logs"
    args = {"model_args": {"bank": str(path)}, "log_dir": logs, "max_items": 5}
    with pytest.raises(BankError, match=r"item 'chembench_0' has no harness document"):
        run_live(plain, sim_task(), model(0.0, 41), **args)
    with pytest.raises(HarnessError, match=r"'nosuch\.py@x': no such file nosuch\.py"):
        run_live(bank, "nosuch.py@x", model(0.0, 41), **args)
    task_file = tmp_path / "tasks.py"
    task_file.write_text("from inspect_ai import task\n")
    with pytest.raises(HarnessError, match=r"cannot be loaded.*'nosuch' not found"):
        run_live(bank, f"{task_file}@nosuch", model(0.0, 41), **args)
    with pytest.raises(HarnessError, match=r"item 'chembench_599': the Inspect task chem_sim has "
                       r"no sample with id '599'"):  # fmt: skip
        run_live(bank, sim_task(N_ITEMS - 1), model(0.0, 41), **args)
    with pytest.raises(HarnessError, match=r"documents of task chem_sim, but the Inspect task "
                       r"is other"):  # fmt: skip
        run_live(bank, sim_task(name="other"), model(0.0, 41), **args)
    with pytest.raises(HarnessError, match=r"Inspect knows no model provider 'nosuch'"):
        run_live(bank, sim_task(), "nosuch/x", **args)
    with pytest.raises(HarnessError, match=r"unknown model argument\(s\) \['bogus'\]"):
        run_live(bank, sim_task(), model(0.0, 41), **{**args, "model_args": {
            "bank": str(path), "bogus": 1}})  # fmt: skip
    _nothing_ran(sim, tmp_path)


def test_session_file_of_another_bank_harness_or_model_is_refused(chem, plain, tmp_path):
    bank, path = chem
    session = tmp_path / "s.json"
    live(chem, 0.0, 42, tmp_path / "first", round_size=5, max_items=5, session=session)
    sim = fresh(path, 1.0, 42)
    kw = {"round_size": 5, "max_items": 10, "session": session}
    was = r"the session was run with model 'fluidsim/theta=0.0:seed=42', not "
    with pytest.raises(DataError, match=was + r"'fluidsim/theta=1.0:seed=42'"):
        live(chem, 1.0, 42, tmp_path / "logs", **kw)
    other = _mapped(_subset(plain, N_ITEMS, 8), TASK)  # other draws: another bank
    with pytest.raises(DataError, match=r"against bank"):
        run_live(other, sim_task(), model(1.0, 42), model_args={"bank": str(path)},
                 log_dir=tmp_path / "logs", **kw)  # fmt: skip
    d = json.loads(session.read_text())
    d["context"]["harness"] = "lm-eval"
    from fluid_bayes.adaptive.session import Session

    forged = Session.load(session, bank)
    forged.context = d["context"]
    forged.save(session)
    with pytest.raises(DataError, match=r"run with harness 'lm-eval', not 'inspect'"):
        live(chem, 0.0, 42, tmp_path / "logs", **kw)
    _nothing_ran(sim, tmp_path / "logs")


# ------------------------------------------------------------------ packaging, CLI
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)  # fmt: skip


def test_import_fluid_bayes_loads_no_inspect_and_shadows_no_stdlib():
    code = (
        "import sys, fluid_bayes, fluid_bayes.harness, fluid_bayes.harness.inspect as d\n"
        "import inspect\n"
        "assert 'inspect_ai' not in sys.modules, 'inspect_ai imported'\n"
        "assert inspect.signature(len) is not None and inspect.__name__ == 'inspect'\n"
        "print(d.__name__)"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "fluid_bayes.harness.inspect"


def test_missing_extra_is_one_line(chem, tmp_path):
    bank, path = chem
    code = (
        "import sys; sys.modules['inspect_ai'] = None\n"
        "from fluid_bayes.cli.main import main\n"
        f"sys.exit(main(['run', 'inspect', '--bank', {str(path)!r}, '--task', 'mmlu_redux_local',"
        f" '--model', 'fluidsim/x', '--log-dir', {str(tmp_path)!r}]))"
    )
    out = _python(code)
    assert out.returncode == 2
    assert out.stderr.strip() == f"fluid-bayes: error: {MISSING_EXTRA}"
    assert MISSING_EXTRA == "Inspect AI is not installed: pip install 'fluid-bayes[inspect]'"


def test_cli_run_inspect_json_and_resume(chem, tmp_path, capsys):
    from fluid_bayes.cli.main import main

    bank, path = chem
    task_file = tmp_path / "my_task.py"
    task_file.write_text(
        "from inspect_ai import Task, task\nfrom inspect_ai.dataset import MemoryDataset, Sample\n"
        "from inspect_ai.scorer import choice\nfrom inspect_ai.solver import multiple_choice\n\n"
        "@task\ndef chem_sim():\n"
        f"    samples = [Sample(id=k, input=f'Q{{k}}?', choices=list('wxyz'), target='ABCD'[k % 4])"
        f" for k in range({N_ITEMS})]\n"
        "    return Task(dataset=MemoryDataset(samples), solver=multiple_choice(), "
        "scorer=choice())\n"
    )
    argv = ["run", "inspect", "--bank", str(path), "--task", f"{task_file}@chem_sim",
            "--model", model(0.8, 51), "--log-dir",  # fluidsim answers the --bank
            str(tmp_path / "logs"), "--session", str(tmp_path / "s.json"), "--round-size", "3",
            "--max-items", "6", "--json", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["n_items"] == 6 and first["documents_run"] == 6 and first["rounds"] == 2
    assert first["full_task_documents"] == N_ITEMS
    assert main(argv) == 0  # the session is complete: nothing runs again
    again = json.loads(capsys.readouterr().out)
    assert again["documents_run"] == 0 and again["documents_resumed"] == 6
    assert again["items"] == first["items"]
    assert main([*argv[:-4], "--max-items", "0", "--quiet"]) == 2
    assert "--max-items" in capsys.readouterr().err
    at = argv.index("--log-dir")
    failing = [*argv[:at], "--model-args", f"bank={path}", "fail_after=1", *argv[at:]]
    failing[failing.index("--session") + 1] = str(tmp_path / "f.json")
    assert main(failing) == 4  # the model fails in round 1: one line, resumable
    err = capsys.readouterr().err.strip()
    assert err.startswith("fluid-bayes: harness failed: item ") and "\n" not in err
    assert err.endswith(f"the answers before it are in {tmp_path / 'f.json'}: rerun to resume")
