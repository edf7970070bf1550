"""The lm-evaluation-harness driver, through the real lm-eval (0.4.13; nothing mocked).

The examinee is the ``fluid-sim`` model (:mod:`fluid_bayes.harness.lm_eval_sim`): a real
lm-eval ``LM`` whose answers are :class:`SimulatedAbility`'s, asked the documents of the
shipped task ``mmlu_redux_local``, so a live run can be checked against the known
ability, against the documents it asked and against ``fluid_bayes.replay`` over the
same answers.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lm_eval")

import lm_eval.evaluator  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from fluid_bayes.adaptive.options import SessionConfig  # noqa: E402
from fluid_bayes.adaptive.replay import replay  # noqa: E402
from fluid_bayes.adaptive.session import Session  # noqa: E402
from fluid_bayes.bank import ItemBank  # noqa: E402
from fluid_bayes.data.responses import from_array  # noqa: E402
from fluid_bayes.exceptions import BankError, DataError  # noqa: E402
from fluid_bayes.harness.documents import DocumentMap, attach_documents, bank_documents  # noqa: E402
from fluid_bayes.harness.lm_eval import (  # noqa: E402
    MISSING_EXTRA,
    TASKS_DIR,
    LmEvalRunner,
    load_tasks,
    run,
    run_live,
)
from fluid_bayes.harness.lm_eval_sim import FluidSimLM  # noqa: E402
from fluid_bayes.harness.loop import HarnessError, HarnessRunError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASK = "mmlu_redux_local"
QUESTIONS = REPO / "fluid_bayes" / "data" / "mmlu_redux_helm" / "questions.csv"
N_ITEMS = 600  # the first 600 MMLU-Redux items (documents 0-599): quick sessions


def _subset(bank: ItemBank, n: int, thin: int) -> ItemBank:
    return ItemBank.from_draws(bank.a.values[:, ::thin, :n], bank.b.values[:, ::thin, :n],
                               items=list(bank.items[:n]), source="mmlu-redux subset",
                               calibration_theta=bank.subjects["theta_mean"])  # fmt: skip


def _mapped(bank: ItemBank, task: str = TASK, doc_ids=None) -> ItemBank:
    n = bank.n_items
    docs = tuple(doc_ids) if doc_ids is not None else tuple(map(str, range(n)))
    return attach_documents(bank, DocumentMap(bank.items, (task,) * n, docs))


@pytest.fixture(scope="module")
def full():
    return ItemBank.load(REPO / "models" / "mmlu-redux.nc")


@pytest.fixture(scope="module")
def plain(full):
    """The first MMLU-Redux items, 100 draws, without a document map."""
    return _subset(full, N_ITEMS, 2)


@pytest.fixture(scope="module")
def mmlu(plain, tmp_path_factory):
    """(mapped bank, its file): item k is document k of ``mmlu_redux_local``."""
    bank = _mapped(plain)
    return bank, bank.save(tmp_path_factory.mktemp("bank") / "mmlu.nc")


def sim(mmlu, theta, seed, **kw) -> FluidSimLM:
    return FluidSimLM(mmlu[0], theta=theta, seed=seed, **kw)


# ------------------------------------------------------------------ the shipped task
def test_shipped_task_documents_are_the_csv_rows_and_the_bank_items_in_order(full):
    import pandas as pd
    from lm_eval.utils import apply_template

    rows = pd.read_csv(QUESTIONS)
    _, tasks = load_tasks([TASK])
    task = tasks[TASK]
    docs = task.eval_docs
    assert len(docs) == len(rows) == full.n_items == 5700
    assert [d["item_id"] for d in docs] == list(rows.item_id) == list(full.items)
    assert [d["answer"] for d in docs] == list(rows.answer)
    dmap = bank_documents(full)  # the shipped bank's map: item k is document k
    assert set(dmap.tasks) == {TASK} and dmap.lm_eval_ids() == tuple(range(5700))
    # lm-eval's MMLU prompt: the subject's description, then its Jinja template
    template = ("{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. "
                "{{choices[2]}}\nD. {{choices[3]}}\nAnswer:")  # fmt: skip
    picks = [0, 1, 777, 2345, 4000, 5699]
    task.build_all_requests(samples=picks, rank=0, world_size=1)
    by_doc = {}
    for inst in task.instances:
        by_doc.setdefault(inst.doc["item_id"], []).append(inst)
    for k in picks:
        doc = docs[k]
        about = " ".join(doc["subject"].split("_"))
        want = (f"The following are multiple choice questions (with answers) about {about}.\n\n"
                + apply_template(template, doc))  # fmt: skip
        insts = by_doc[doc["item_id"]]
        assert [i.arguments for i in insts] == [(want, f" {c}") for c in "ABCD"]
    assert [m["metric"] for m in task.config.metric_list] == ["acc"]


def test_shipped_task_data_resolve_against_the_yaml_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    assert len(tm.load([TASK])["tasks"][TASK].eval_docs) == 5700


@pytest.mark.parametrize("theta", [-1.0, 0.5, 1.5])
def test_simulated_model_scores_the_banks_expected_accuracy(plain, theta):
    """Its P(correct) per item is the posterior predictive (mean over draws, computed
    here draw by draw), so its expected full-task accuracy is the bank's at theta."""
    from scipy.special import expit

    from fluid_bayes.adaptive.selection import BankArrays
    from fluid_bayes.harness.simulated import SimulatedAbility

    model = SimulatedAbility(plain, theta, seed=0)
    arrays = BankArrays.from_bank(plain)
    for j in (0, 7, N_ITEMS - 1):
        by_draw = [expit(arrays.a[s, j] * (theta - arrays.b[s, j])) for s in range(arrays.n_draws)]
        assert model.probability(plain.items[j]) == pytest.approx(np.mean(by_draw), rel=1e-12)
    expected = np.mean([model.probability(i) for i in plain.items])
    bank_curve = expit(arrays.a[:, None, :] * (theta - arrays.b[:, None, :])).mean(axis=(0, 2))
    assert expected == pytest.approx(float(bank_curve[0]), rel=1e-12)


# ------------------------------------------------------------------ live runs
@pytest.mark.parametrize(("theta", "seed"), [(-1.0, 11), (0.5, 12), (1.5, 13)])
def test_live_run_covers_the_known_ability_and_runs_each_document_once(mmlu, theta, seed):
    # Seeded and deterministic (the answers hash (seed, item); expected-FI selection has
    # no randomness), so coverage is a fixed fact, not a chance. The answers follow the
    # bank's own 2PL, so the posterior is calibrated: the true ability lies in its 94%
    # interval unless the answers are improbably lucky or unlucky. MMLU-Redux's items
    # discriminate little (a ~ 0.3, 14 calibration models), so after 30 answers the SD
    # is still ~0.8 and the estimates are well within it.
    lm = sim(mmlu, theta, seed)
    state = random.getstate(), np.random.get_state()[1].copy()  # noqa: NPY002
    level, git = logging.getLogger("lm_eval").level, lm_eval.evaluator.get_git_commit_hash
    live = run_live(mmlu[0], lm, round_size=5, max_items=30)
    th = live.result.theta
    assert th.hdi_low <= theta <= th.hdi_high, (theta, th)
    assert live.result.n_items == 30 and live.documents_run == 30 and len(live.rounds) == 6
    # one simple_evaluate per round, and exactly the documents the session asked, once each
    assert [len(c) for c in lm.calls] == [5] * 6
    assert lm.simulated.asked == dict.fromkeys(live.result.items, 1)
    assert [sorted(c) for c in lm.calls] == [sorted(r.items) for r in live.rounds]
    truth = lm.simulated.answers(live.result.items)
    assert [s.answer for s in live.result.steps] == [truth[i] for i in live.result.items]
    assert live.full_task_documents == 5700  # the whole task, not only the bank's items
    # global state is left as it was: RNGs not reseeded, logging and lm-eval restored
    assert random.getstate() == state[0]
    assert (np.random.get_state()[1] == state[1]).all()  # noqa: NPY002
    assert logging.getLogger("lm_eval").level == level
    assert lm_eval.evaluator.get_git_commit_hash is git


def _replayed(bank, lm, subject, **options):
    answers = lm.simulated.answers()
    data = from_array(np.array([[answers[i] for i in bank.items]], dtype=float),
                      subjects=[subject], items=list(bank.items))  # fmt: skip
    (result,) = replay(bank, data, config=SessionConfig.for_method("bayes", **options)).results
    return result


@pytest.mark.parametrize("k", [1, 4])
def test_live_session_equals_replay_of_the_same_answers(mmlu, k):
    lm = sim(mmlu, 0.3, 21)
    live = run_live(mmlu[0], lm, round_size=k, max_items=8 if k == 1 else 12)
    ref = _replayed(mmlu[0], lm, live.result.subject, round_size=k,
                    max_items=live.result.n_items)  # fmt: skip
    assert live.result.items == ref.items
    assert [s.answer for s in live.result.steps] == [s.answer for s in ref.steps]
    for key in ("theta_mean", "theta_sd"):
        np.testing.assert_allclose([getattr(s, key) for s in live.result.steps],
                                   [getattr(s, key) for s in ref.steps], rtol=1e-9)  # fmt: skip
    assert live.result.accuracy_mean == pytest.approx(ref.accuracy_mean, rel=1e-9)
    assert len(live.rounds) == len(lm.calls) == -(-live.result.n_items // k)


def test_a_failed_model_resumes_without_rerunning_or_losing_answers(mmlu, tmp_path):
    bank, path = mmlu
    session = tmp_path / "s.json"
    failing = sim(mmlu, -0.4, 31, fail_after=7)  # round 1 (5) passes, round 2 fails
    with pytest.raises(HarnessRunError, match=r"round 2 .*failing as asked \(fail_after=7"):
        run_live(bank, failing, round_size=5, max_items=15, session=session)
    first = [r["item"] for r in json.loads(session.read_text())["records"]]
    assert len(first) == 5 and failing.simulated.asked == dict.fromkeys(first, 1)
    again = sim(mmlu, -0.4, 31)
    resumed = run_live(bank, again, round_size=5, max_items=15, session=session)
    assert resumed.resumed_items == 5 and resumed.documents_run == 10
    assert list(resumed.result.items[:5]) == first  # no answer lost
    assert not set(again.simulated.asked) & set(first)  # no answered document run twice
    assert again.simulated.asked == dict.fromkeys(resumed.result.items[5:], 1)
    whole = run_live(bank, sim(mmlu, -0.4, 31), round_size=5, max_items=15)
    assert whole.result.items == resumed.result.items
    assert whole.result.theta == resumed.result.theta
    assert whole.result.accuracy_mean == resumed.result.accuracy_mean


def test_records_are_matched_by_position_and_checked_against_the_document(mmlu):
    bank = mmlu[0]
    lm = sim(mmlu, 0.0, 5)
    runner = LmEvalRunner([TASK], lm, documents=bank_documents(bank))
    pairs = [(bank.items[k], str(k)) for k in (40, 3, 17)]  # unsorted on purpose
    scores = runner.run({TASK: pairs})
    truth = lm.simulated.answers([i for i, _ in pairs])
    assert scores == {i: float(truth[i]) for i, _ in pairs}
    res = lm_eval.simple_evaluate(model=lm, tasks=[runner.tasks[TASK]], samples={TASK: [3, 17]},
                                  task_manager=runner.task_manager,
                                  log_samples=True, bootstrap_iters=0, random_seed=None,
                                  numpy_random_seed=None, torch_random_seed=None)  # fmt: skip
    records = res["samples"][TASK]
    two = [(bank.items[3], "3"), (bank.items[17], "17")]
    assert set(runner.read_scores(TASK, two, records)) == {bank.items[3], bank.items[17]}
    with pytest.raises(HarnessRunError, match=r"in place of document 3 .* is labelled 17 and "
                       r"holds another document"):  # fmt: skip
        runner.read_scores(TASK, two, records[::-1])
    with pytest.raises(HarnessRunError, match=r"1 records under filter 'none' for the 2"):
        runner.read_scores(TASK, two, records[:1])


# ------------------------------------------------------------------ bad input
def test_bad_input_is_refused_before_anything_runs(mmlu, plain, tmp_path):
    bank, path = mmlu
    lm = sim(mmlu, 0.0, 41)
    with pytest.raises(BankError, match=r"item 'abstract_algebra_0' has no harness document"):
        run_live(plain, lm, max_items=5)
    empty = TaskManager(include_path=str(tmp_path), include_defaults=False)
    with pytest.raises(HarnessError, match=r"lm-eval knows no task 'no_such_task'"):
        run_live(_mapped(plain, "no_such_task"), lm, task_manager=empty, max_items=5)
    last = bank.items[-1]
    too_far = _mapped(plain, doc_ids=[*map(str, range(N_ITEMS - 1)), "5700"])
    with pytest.raises(HarnessError, match=rf"item '{last}': lm-eval task {TASK} has no "
                       r"document 5700 \(its 5700 documents are 0-5699\)"):  # fmt: skip
        run_live(too_far, lm, max_items=5)
    negative = _mapped(plain, doc_ids=["-1", *map(str, range(1, N_ITEMS))])
    with pytest.raises(BankError, match=r"document id '-1' is not an lm-eval doc_id"):
        run_live(negative, lm, max_items=5)
    with pytest.raises(HarnessError, match=rf"task {TASK} does not score metric 'acc_norm' "
                       r"\(its metrics: acc\)"):  # fmt: skip
        run_live(bank, lm, metric="acc_norm", max_items=5)
    with pytest.raises(HarnessError, match=r"knows no model 'no-such-model'"):
        run_live(bank, "no-such-model", max_items=5)
    with pytest.raises(HarnessError, match=r"unknown model argument\(s\) bogus"):
        run_live(bank, "fluid-sim", model_args=f"bank={path},bogus=1", max_items=5)
    with pytest.raises(HarnessError, match=r"argument\(s\) limit, samples are the driver's"):
        run_live(bank, lm, eval_args={"samples": {}, "limit": 3}, max_items=5)
    assert not lm.calls and not lm.simulated.asked


def test_session_file_of_another_bank_harness_or_model_is_refused(mmlu, plain, tmp_path):
    bank, path = mmlu
    session = tmp_path / "s.json"
    run_live(bank, sim(mmlu, 0.0, 42), round_size=5, max_items=5, session=session)
    lm = sim(mmlu, 1.0, 42)
    kw = {"round_size": 5, "max_items": 10, "session": session}
    with pytest.raises(DataError, match=r"run with model_args \{'bank': '[0-9a-f]+', "
                       r"'theta': 0.0, 'seed': 42\}, not .*'theta': 1.0"):  # fmt: skip
        run_live(bank, lm, **kw)
    other = _mapped(_subset(plain, N_ITEMS, 4))  # other draws: another bank
    with pytest.raises(DataError, match=r"against bank"):
        run_live(other, lm, **kw)
    forged = Session.load(session, bank)
    forged.context = {**forged.context, "harness": "inspect"}
    forged.save(session)
    with pytest.raises(DataError, match=r"run with harness 'inspect', not 'lm-eval'"):
        run_live(bank, lm, **kw)
    assert not lm.calls and not lm.simulated.asked


# ------------------------------------------------------------------ packaging, CLI
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)  # fmt: skip


def test_import_fluid_bayes_loads_no_lm_eval():
    code = (
        "import sys, fluid_bayes, fluid_bayes.harness, fluid_bayes.harness.lm_eval as d\n"
        "import fluid_bayes.harness.lm_eval_tasks, fluid_bayes.cli.run\n"
        "assert 'lm_eval' not in sys.modules, 'lm_eval imported'\n"
        "print(d.__name__)"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "fluid_bayes.harness.lm_eval"


def test_missing_extra_is_one_line(mmlu):
    bank, path = mmlu
    code = (
        "import sys; sys.modules['lm_eval'] = None\n"
        "from fluid_bayes.cli.main import main\n"
        f"sys.exit(main(['run', 'lm-eval', '--bank', {str(path)!r}, '--model', 'hf']))"
    )
    out = _python(code)
    assert out.returncode == 2
    assert out.stderr.strip() == f"fluid-bayes: error: {MISSING_EXTRA}"
    assert MISSING_EXTRA.endswith("pip install 'fluid-bayes[lm-eval]'")


def test_cli_run_lm_eval_prints_rounds_json_and_resumes(mmlu, tmp_path, capsys):
    from fluid_bayes.cli.main import main

    bank, path = mmlu
    session = tmp_path / "runs" / "x.json"
    argv = ["run", "lm-eval", "--bank", str(path), "--model", "fluid-sim", "--model-args",
            "theta=0.8,seed=51", "--session", str(session), "--round-size", "3",  # bank: --bank
            "--max-items", "6", "--stop-sd", "auto"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr()
    assert out.err.count("\nround ") + out.err.startswith("round ") == 2
    assert "round 2: 3 documents" in out.err and f"session saved in {session}" in out.err
    assert "expected full-benchmark accuracy" in out.out and "6 run now" in out.out
    assert "of 5,700 documents" in out.out
    assert main([*argv, "--json", "--quiet"]) == 0  # complete: nothing runs again
    again = json.loads(capsys.readouterr().out)
    assert again["documents_run"] == 0 and again["documents_resumed"] == 6
    assert again["n_items"] == 6 and again["full_task_documents"] == 5700
    longer = [*argv[:-4], "--max-items", "9", "--stop-sd", "auto", "--json", "--quiet"]
    assert main(longer) == 2  # other options than the session's: refused, one line
    assert "started with other options" in capsys.readouterr().err
    assert main([*argv[:-4], "--max-items", "0"]) == 2
    assert "--max-items" in capsys.readouterr().err
    at = argv.index("--model-args") + 1
    failing = [*argv[:at], f"bank={path},theta=0.8,seed=51,fail_after=1", *argv[at + 1 :]]
    failing[failing.index("--session") + 1] = str(tmp_path / "f.json")
    assert main([*failing, "--quiet"]) == 4  # the model fails in round 1: one line
    err = capsys.readouterr().err.strip()
    assert err.startswith("fluid-bayes: harness failed: the harness failed in round 1")
    assert "\n" not in err and err.endswith(f"{tmp_path / 'f.json'}: rerun to resume")
    assert main(["run", "lm-eval", "--bank", str(path), "--model", "hf", "--include-path",
                 str(tmp_path / "nope")]) == 2  # fmt: skip
    assert "no such folder" in capsys.readouterr().err


def test_python_run_returns_the_session_result(mmlu):
    result = run(mmlu[1], "fluid-sim", model_args=f"bank={mmlu[1]},theta=0.2,seed=3",
                 round_size=5, max_items=5)  # fmt: skip
    assert result.n_items == 5 and result.subject.startswith("fluid-sim bank=")
