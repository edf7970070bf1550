"""The paper's metrics, checkpoint series, the run simulator and the experiment runner."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fluid_bayes import ItemBank
from fluid_bayes.adaptive.ability import map_ability
from fluid_bayes.adaptive.replay import replay
from fluid_bayes.adaptive.selection import BankArrays
from fluid_bayes.cli.main import main
from fluid_bayes.data.readers import read_responses
from fluid_bayes.data.series import checkpoint_series, read_reference
from fluid_bayes.exceptions import DataError
from fluid_bayes.study.experiment import EXPERIMENT_METHODS, run_experiment
from fluid_bayes.study.metrics import (
    bootstrap_indices,
    mean_rank_distance,
    monotonicity,
    paired_bootstrap,
    paired_differences,
    spearman,
    summarize,
    total_variation,
)
from fluid_bayes.study.simulate import simulate_bank, simulate_training_runs

# -- metrics against hand computations --------------------------------------------------


def test_total_variation_by_hand():
    # n = 4, sum |diff| = 1 + 0.5 + 1.5 = 3, |x_n - x_1| = 2: 4/3 * 3/2 = 2
    assert total_variation([0.0, 1.0, 0.5, 2.0]).value == pytest.approx(2.0)
    # monotone curve: n/(n-1)
    assert total_variation([0.1, 0.2, 0.4]).value == pytest.approx(1.5)
    assert total_variation([3.0, 1.0]).value == pytest.approx(2.0)


def test_total_variation_undefined():
    tv = total_variation([0.5, 0.9, 0.5])
    assert np.isnan(tv.value) and not tv.defined and "undefined" in tv.reason
    one = total_variation([0.7])
    assert np.isnan(one.value) and "1 checkpoint" in one.reason
    with pytest.raises(ValueError, match="NaN"):
        total_variation([0.1, np.nan])


def test_monotonicity_and_spearman_by_hand():
    assert monotonicity([1, 2, 3]).value == pytest.approx(1.0)
    assert monotonicity([3, 2, 1]).value == pytest.approx(1.0)  # absolute value
    # ranks (1, 3, 2) against (1, 2, 3): r = 0.5
    assert monotonicity([1, 3, 2]).value == pytest.approx(0.5)
    # ties: ranks (1.5, 1.5, 3) against (1, 2, 3): 1.5 / sqrt(1.5 * 2) = 0.8660
    assert monotonicity([1, 1, 2]).value == pytest.approx(1.5 / np.sqrt(3.0))
    assert not monotonicity([0.4]).defined
    assert not monotonicity([0.4, 0.4, 0.4]).defined
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]).value == pytest.approx(0.8)


def test_mean_rank_distance_by_hand():
    # ranks by score (1, 2, 3), by reference (3, 2, 1): |2| + 0 + |2| over 3
    assert mean_rank_distance([3, 2, 1], [1, 2, 3]).value == pytest.approx(4 / 3)
    # tie in the score: average ranks (2.5, 2.5, 1) against (1, 2, 3)
    assert mean_rank_distance([1, 1, 2], [3, 2, 1]).value == pytest.approx(4 / 3)
    assert mean_rank_distance([5, 1, 3], [9, 2, 4]).value == 0.0
    assert not mean_rank_distance([], []).defined


def test_summarize_by_hand():
    rows = []
    curves = {"r1": [0.1, 0.3, 0.2, 0.5], "r2": [0.4, 0.4]}  # r2: TV undefined, rho undefined
    for run, xs in curves.items():
        for t, x in enumerate(xs):
            rows.append({"subject": f"{run}@step{t}", "run": run, "step": t, "method": "m",
                         "budget": 10, "repeat": 0, "score": x, "n_mislabeled": t % 2})  # fmt: skip
    res = pd.DataFrame(rows)
    ref = pd.Series(np.arange(6.0), index=res["subject"])
    detail, summary = summarize(res, reference=ref)
    s = summary.set_index("metric")["value"]
    # r1: 4/3 * (0.2 + 0.1 + 0.3) / 0.4 = 2.0
    assert s["variance_tv"] == pytest.approx(2.0)
    assert summary.set_index("metric").loc["variance_tv", "n_undefined"] == 1
    # r1 ranks of (0.1, 0.3, 0.2, 0.5) against time: (1, 3, 2, 4) -> rho = 0.8
    assert s["monotonicity"] == pytest.approx(0.8)
    assert s["mislabels_per_session"] == pytest.approx(0.5)
    expect = mean_rank_distance(res["score"], ref.to_numpy()).value
    assert s["validity_rank_distance"] == pytest.approx(expect)
    assert set(detail.loc[detail["value"].isna(), "reason"].str.len() > 0) == {True}


# -- checkpoint series -------------------------------------------------------------------


def test_series_from_pattern_mapping_and_columns(tmp_path):
    ids = ["olmo2-7b@step120000", "olmo2-7b@step500", "pythia/stage1-step10"]
    s = checkpoint_series(ids)
    assert s["run"].tolist() == ["olmo2-7b", "olmo2-7b", "pythia"]
    assert s["step"].tolist() == [120000.0, 500.0, 10.0]
    with pytest.raises(DataError, match="'final' does not match"):
        checkpoint_series(["olmo@step1", "final"])
    with pytest.raises(DataError, match="same checkpoint"):
        checkpoint_series(["a@step1", "a_step-1"])
    m = tmp_path / "map.csv"
    m.write_text("subject,run,step\nx,r,1\ny,r,2\n")
    assert checkpoint_series(["y", "x"], mapping=m)["step"].tolist() == [2.0, 1.0]
    with pytest.raises(DataError, match="no run/step for subject.*'z'"):
        checkpoint_series(["x", "z"], mapping=m)
    m.write_text("subject,run,step\nx,r,one\n")
    with pytest.raises(DataError, match="step 'one', not a number"):
        checkpoint_series(["x"], mapping=m)
    w = tmp_path / "wide.csv"
    w.write_text("model,run,step,i1,i2\nc1,r,100,0,1\nc2,r,200,1,1\n")
    data = read_responses(w, subject_columns=["run", "step"])
    assert data.items == ("i1", "i2")
    assert checkpoint_series(data.subjects, meta=data.subject_meta)["step"].tolist() == [100, 200]
    with pytest.raises(DataError, match="no column\\(s\\) 'epoch'"):
        read_responses(w, subject_columns=["epoch"])


def test_read_reference_errors(tmp_path):
    p = tmp_path / "ref.csv"
    p.write_text("subject,score\na,0.5\nb,high\n")
    with pytest.raises(DataError, match="line 3 \\(subject 'b'\\): score 'high'"):
        read_reference(p)
    p.write_text("subject,score\na,0.5\nb,0.7\n")
    assert read_reference(p).to_dict() == {"a": 0.5, "b": 0.7}


# -- simulator ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chem():
    from fluid_bayes.cli.demo import MODELS

    return ItemBank.load(MODELS / "chembench.nc")


def test_simulated_bank_resembles_the_fitted_one(chem):
    bank = simulate_bank(3000, like=chem, seed=4, chains=2, draws=50)
    again = simulate_bank(3000, like=chem, seed=4, chains=2, draws=50)
    assert bank.config_hash == again.config_hash  # seeded
    assert bank.n_draws == 100 and bank.n_items == 3000
    fit, sim = chem.point_estimates(), bank.point_estimates()
    assert np.log(sim["a"]).mean() == pytest.approx(np.log(fit["a"]).mean(), abs=0.05)
    assert sim["b"].std() == pytest.approx(fit["b"].std(), rel=0.1)
    # posterior widths borrowed from the fitted items
    sd_fit = chem.b.std(["chain", "draw"]).median().item()
    sd_sim = bank.b.std(["chain", "draw"]).median().item()
    assert sd_sim == pytest.approx(sd_fit, rel=0.2)


def test_simulated_runs_follow_their_curves():
    bank = simulate_bank(400, seed=1)
    sim = simulate_training_runs(bank, runs=3, checkpoints=30, seed=5)
    assert sim.responses.n_subjects == 90
    assert list(sim.responses.subject_meta.columns) == ["run", "step"]
    for _, g in sim.truth.groupby("run"):
        assert g["theta"].iloc[-5:].mean() > g["theta"].iloc[:5].mean() + 0.5
    acc = sim.responses.accuracy()
    assert np.corrcoef(acc, sim.truth["theta"])[0, 1] > 0.95
    assert np.corrcoef(sim.reference, sim.truth["theta"])[0, 1] > 0.8
    # answers come from one posterior draw per run, not the point estimates
    assert sim.truth.groupby("run")["draw"].nunique().eq(1).all()
    same = simulate_training_runs(bank, runs=3, checkpoints=30, seed=5)
    assert sim.responses == same.responses


# -- the runner --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    bank = simulate_bank(600, seed=2, chains=2, draws=25)
    sim = simulate_training_runs(bank, runs=3, checkpoints=16, seed=3)
    series = checkpoint_series(sim.responses.subjects, meta=sim.responses.subject_meta)
    labels = pd.Series(np.where(np.arange(600) % 10 == 0, 1.0, 0.0), index=list(bank.items))
    labels.iloc[1::50] = np.nan
    res = run_experiment(bank, sim.responses, series=series, reference=sim.reference,
                         labels=labels, budgets=[10, 40, 900], repeats=2, seed=7)  # fmt: skip
    return bank, sim, series, labels, res


def test_runner_table_shape_and_caps(small):
    bank, sim, _, _, res = small
    r = res.results
    assert set(r["method"]) == set(EXPERIMENT_METHODS)
    assert res.config["budgets"] == [10, 40, 600]
    assert any("capped at 600" in n for n in res.notes)
    n = sim.responses.n_subjects
    assert len(r) == n * (2 + 2 * 3 * 2 + 2 * 3)  # full, random x reps x budgets, adaptive
    assert (r.loc[r["method"] == "random", "n_items"] == r.loc[r["method"] == "random",
                                                                  "budget"]).all()  # fmt: skip
    t2 = res.table2()
    assert list(t2.columns) == ["10", "40", "600", "full"]
    assert t2.loc[("variance_tv", "fluid"), "10"] == pytest.approx(
        res.summary.query("metric == 'variance_tv' and method == 'fluid' and budget == 10")[
            "value"].item())  # fmt: skip


def test_runner_scores_match_independent_computations(small):
    bank, sim, _, labels, res = small
    r = res.results
    arrays = BankArrays.from_bank(bank)
    answers = sim.responses.values
    # fluid: the replayed paper session's estimate after n items
    rep = replay(bank, sim.responses, method="paper", max_items=600, stop_sd=None,
                 subjects=[sim.responses.subjects[5]])  # fmt: skip
    got = r.query("method == 'fluid' and budget == 40 and subject == @rep.results[0].subject")
    assert got["score"].item() == pytest.approx(rep.results[0].steps[39].theta_mean, abs=1e-12)
    # random and random-irt: the same 10-item subset, by hand
    k = 3
    row = r.query("method == 'random' and budget == 10 and repeat == 1").iloc[k]
    rng = np.random.default_rng([7, 1, __import__("zlib").crc32(b"random")])
    subset = rng.permutation(600)[:10]
    assert row["score"] == pytest.approx(answers[k, subset].mean())
    irt_row = r.query("method == 'random-irt' and budget == 10 and repeat == 1").iloc[k]
    y = np.full(600, np.nan)
    y[subset] = answers[k, subset]
    th, se = map_ability(y, arrays.a_point, arrays.b_point)
    assert irt_row["score"] == pytest.approx(th) and irt_row["theta_sd"] == pytest.approx(se)
    assert row["n_mislabeled"] == np.nansum(labels.to_numpy()[subset] == 1.0)
    # adaptive: mislabels counted from the administered items
    items = res.items.query("method == 'fluid-bayes' and position <= 40")
    s0 = sim.responses.subjects[0]
    n_bad = labels.reindex(items.loc[items["subject"] == s0, "item"]).eq(1.0).sum()
    got = r.query("method == 'fluid-bayes' and budget == 40 and subject == @s0")
    assert got["n_mislabeled"].item() == n_bad
    # full accuracy
    full = r.query("method == 'full-accuracy'").set_index("subject")["score"]
    assert np.allclose(full.to_numpy(), answers.mean(axis=1))


def test_runner_is_seeded(small):
    bank, sim, series, labels, res = small
    again = run_experiment(bank, sim.responses, series=series, reference=sim.reference,
                           labels=labels, methods=["random", "random-irt", "fluid"],
                           budgets=[10, 40, 900], repeats=2, seed=7)  # fmt: skip
    mine = res.results[res.results["method"].isin(["random", "random-irt", "fluid"])]
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), again.results)
    other = run_experiment(bank, sim.responses, series=series, methods=["random"],
                           budgets=[10], repeats=1, seed=8)  # fmt: skip
    assert not np.allclose(other.results["score"], again.results.query(
        "method == 'random' and budget == 10 and repeat == 0")["score"])  # fmt: skip


def test_paper_result_on_a_simulated_pretraining_run(small):
    """Adaptive ability has lower TV and higher monotonicity than random subsets."""
    s = small[-1].summary.set_index(["metric", "method", "budget"])["value"]
    for budget in (10, 40):
        for method in ("fluid", "fluid-bayes"):
            assert s["variance_tv", method, budget] < s["variance_tv", "random", budget]
            assert s["monotonicity", method, budget] > s["monotonicity", "random", budget]


def test_runner_bad_input(small):
    bank, sim, series, _, _ = small
    with pytest.raises(ValueError, match="unknown method"):
        run_experiment(bank, sim.responses, series=series, methods=["fluid-x"])
    with pytest.raises(DataError, match="no run/step"):
        run_experiment(bank, sim.responses, series=series.iloc[1:], methods=["random"])
    ref = pd.Series([0.5], index=["nobody"])
    with pytest.raises(DataError, match="no subject of the data has a reference"):
        run_experiment(bank, sim.responses, series=series, reference=ref, methods=["random"])


def test_cli_simulate_and_experiment(tmp_path):
    sim_dir, out = tmp_path / "sim", tmp_path / "exp"
    assert main(["simulate", "--items", "300", "--runs", "2", "--checkpoints", "6",
                 "--draws", "20", "--seed", "1", "--out", str(sim_dir)]) == 0  # fmt: skip
    code = main(["experiment", str(sim_dir / "responses.csv"), "--bank", str(sim_dir / "bank.nc"),
                 "--reference", str(sim_dir / "reference.csv"), "--series-columns", "run",
                 "step", "--budgets", "5", "20", "--repeats", "2", "--no-progress",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    summary = pd.read_csv(out / "summary.csv")
    assert {"metric", "method", "budget", "value"} <= set(summary.columns)
    assert set(summary["metric"]) == {"validity_rank_distance", "validity_spearman",
                                      "variance_tv", "monotonicity"}  # fmt: skip
    assert set(summary["method"]) == set(EXPERIMENT_METHODS)
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 12 * (2 + 2 * 2 * 2 + 2 * 2)
    for fig in ("training_curves", "metrics_vs_budget", "items_over_training"):
        assert (out / f"{fig}.png").stat().st_size > 10_000
    cfg = json.loads((out / "experiment.json").read_text())
    assert cfg["budgets"] == [5, 20] and cfg["repeats"] == 2


def test_cli_experiment_bad_input(tmp_path, capsys):
    sim_dir = tmp_path / "sim"
    main(["simulate", "--items", "100", "--runs", "1", "--checkpoints", "3", "--draws", "10",
          "--out", str(sim_dir)])  # fmt: skip
    code = main(["experiment", str(sim_dir / "responses.csv"), "--bank",
                 str(sim_dir / "bank.nc"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "does not match the checkpoint pattern" in err or "not a number" in err


def test_series_pattern_keeps_whole_run_names():
    s = checkpoint_series(["pythia-160m-step1000", "olmo2-7b-step1000", "olmo2-13b-step1000",
                           "olmo-1b-0724-step5000", "olmo2-7b/stage1-step5"])  # fmt: skip
    assert s["run"].tolist() == ["pythia-160m", "olmo2-7b", "olmo2-13b", "olmo-1b-0724",
                                 "olmo2-7b"]  # fmt: skip
    frame = pd.DataFrame({"subject": ["a", "b"], "run": ["r", " "], "step": [1, 2]})
    with pytest.raises(DataError, match="subject 'b' has no run"):
        checkpoint_series(["a", "b"], mapping=frame)


def test_summarize_without_applicable_metric_is_empty_not_a_crash():
    res = pd.DataFrame({"subject": ["a"], "run": [np.nan], "step": [np.nan], "method": ["m"],
                        "budget": [5], "repeat": [0], "score": [0.3]})  # fmt: skip
    detail, summary = summarize(res)
    assert detail.empty and summary.empty and "metric" in summary.columns


def test_runner_refuses_what_it_cannot_score(small):
    bank, sim, series, _, _ = small
    with pytest.raises(ValueError, match="no metric applies"):
        run_experiment(bank, sim.responses, methods=["random"], budgets=[5])
    with pytest.raises(ValueError, match="methods repeat"):
        run_experiment(bank, sim.responses, series=series, methods=["fluid", "fluid"])
    stray = pd.Series([1.0, 0.0], index=["not-an-item", "nor-this"])
    with pytest.raises(DataError, match="none of the 2 labeled item\\(s\\) is in the bank"):
        run_experiment(bank, sim.responses, labels=stray, methods=["random"], budgets=[5])
    values = np.column_stack([sim.responses.values, np.zeros(sim.responses.n_subjects)])
    values[0, :-1] = np.nan  # subject 0 answered only an item the bank does not have
    from fluid_bayes.data.responses import from_array

    holey = from_array(values, subjects=sim.responses.subjects,
                       items=[*sim.responses.items, "extra"], source="holey")  # fmt: skip
    with pytest.raises(DataError, match=f"answered no item of the bank: {holey.subjects[0]}"):
        run_experiment(bank, holey, series=series, methods=["random"], budgets=[5])


# -- paired bootstrap of the comparison -----------------------------------------------


def test_paired_bootstrap_against_numpy_with_the_same_resamples(small):
    _, sim, _, _, res = small
    r, d = res.results, res.detail
    runs = sorted(r["run"].astype(str).unique())
    idx = bootstrap_indices(len(runs), 200, 11)
    got = paired_bootstrap(r, d, baseline="fluid", reference=sim.reference,
                           methods=["fluid-bayes", "random"], n_boot=200, seed=11)  # fmt: skip
    q = [0.05, 0.95]
    # a per-run metric: the runs' values (random: averaged over its 2 repeats), resampled
    for method in ("fluid-bayes", "random"):

        def per_run(m):
            g = d.query("metric == 'monotonicity' and method == @m and budget == 40")
            return g.groupby("run")["value"].mean().reindex(runs).to_numpy()

        diff = per_run(method)[idx].mean(axis=1) - per_run("fluid")[idx].mean(axis=1)
        row = got.query("metric == 'monotonicity' and method == @method and budget == 40")
        assert row["diff"].item() == pytest.approx(per_run(method).mean() - per_run("fluid").mean())
        assert row[["diff_low", "diff_high"]].to_numpy()[0] == pytest.approx(np.quantile(diff, q))

    # rank distance: recomputed over the subjects of the resampled runs
    def rank_dist(m, take_runs, rep=0):
        g = r.query("method == @m and budget == 10 and repeat == @rep")
        parts = [g[g["run"] == runs[u]] for u in take_runs]
        x = pd.concat(parts)
        return mean_rank_distance(x["score"], sim.reference.loc[x["subject"]]).value

    diff = [rank_dist("fluid-bayes", row) - rank_dist("fluid", row) for row in idx]
    row = got.query("metric == 'validity_rank_distance' and method == 'fluid-bayes' and "
                    "budget == 10")  # fmt: skip
    assert row[["diff_low", "diff_high"]].to_numpy()[0] == pytest.approx(np.quantile(diff, q))
    # random: averaged over its two repeats (the same subsets in every resample)
    rand = [np.mean([rank_dist("random", row, k) for k in (0, 1)]) - rank_dist("fluid", row)
            for row in idx]  # fmt: skip
    row = got.query("metric == 'validity_rank_distance' and method == 'random' and "
                    "budget == 10")  # fmt: skip
    assert row[["diff_low", "diff_high"]].to_numpy()[0] == pytest.approx(np.quantile(rand, q))
    # Spearman over the resampled subjects (a run drawn twice counts twice; the random
    # method's accuracies at 10 items tie), every resample, not only the interval ends
    def rho(m, take_runs, rep=0):
        g = r.query("method == @m and budget == 10 and repeat == @rep")
        x = pd.concat([g[g["run"] == runs[u]] for u in take_runs])
        return spearman(x["score"], sim.reference.loc[x["subject"]]).value

    want = [np.mean([rho("random", row, k) for k in (0, 1)]) - rho("fluid", row) for row in idx]
    row = got.query("metric == 'validity_spearman' and method == 'random' and budget == 10")
    assert row[["diff_low", "diff_high"]].to_numpy()[0] == pytest.approx(np.quantile(want, q))
    diffs = paired_differences(r, d, baseline="fluid", reference=sim.reference,
                               methods=["random"], n_boot=200, seed=11)  # fmt: skip
    full = diffs.query("metric == 'validity_spearman' and budget == 10")["diff"].item()
    assert full[1:] == pytest.approx(np.array(want), rel=1e-12, abs=1e-12)
    # same seed, same intervals; another seed, others
    again = paired_bootstrap(r, d, baseline="fluid", reference=sim.reference,
                             methods=["fluid-bayes", "random"], n_boot=200, seed=11)  # fmt: skip
    pd.testing.assert_frame_equal(got, again)
    other = paired_bootstrap(r, d, baseline="fluid", reference=sim.reference,
                             methods=["fluid-bayes"], n_boot=200, seed=12)  # fmt: skip
    assert not np.allclose(other["diff_low"], got.query("method == 'fluid-bayes'")["diff_low"])
    with pytest.raises(ValueError, match="baseline method 'nobody'"):
        paired_bootstrap(r, d, baseline="nobody")


def test_runner_reports_the_comparison_in_summary_and_table2(small):
    _, _, _, _, res = small
    c = res.comparison
    assert set(c["method"]) == {"random", "random-irt", "fluid-bayes"}
    assert set(c["baseline"]) == {"fluid"} and res.config["baseline"] == "fluid"
    assert (c["diff_low"] <= c["diff_high"]).all()
    assert len(c) == 3 * 4 * 3  # methods x metrics x budgets
    s = res.summary.set_index(["metric", "method", "budget"])
    v = s["value"]
    # the difference is the difference of the summary's means (one repeat: exactly)
    assert s.loc[("variance_tv", "fluid-bayes", 40), "diff"] == pytest.approx(
        v["variance_tv", "fluid-bayes", 40] - v["variance_tv", "fluid", 40]
    )
    assert np.isnan(s.loc[("variance_tv", "fluid", 40), "diff"])
    t2 = res.table2()
    assert t2.loc[("monotonicity", "fluid-bayes - fluid"), "10"] == pytest.approx(
        s.loc[("monotonicity", "fluid-bayes", 10), "diff"]
    )
    assert t2.loc[("monotonicity", "fluid-bayes - fluid high"), "40"] == pytest.approx(
        s.loc[("monotonicity", "fluid-bayes", 40), "diff_high"]
    )
    assert list(t2.columns) == ["10", "40", "600", "full"]
    bank, sim, series, _, _ = small
    with pytest.raises(ValueError, match="unknown baseline 'full-accuracy'"):
        run_experiment(bank, sim.responses, series=series, baseline="full-accuracy")
    alone = run_experiment(bank, sim.responses, series=series, methods=["random"],
                           budgets=[10], repeats=1, baseline=None)  # fmt: skip
    assert alone.comparison.empty and "diff" not in alone.summary
    assert alone.table2().index.get_level_values(1).tolist() == ["random", "random"]
