"""Rounds of k items (Session.next_items): the joint rules against independent
computations, the fantasy (fractional) update, budgets, stopping, saving a round in
progress, and replay in rounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_expit
from scipy.stats import norm
from test_adaptive import simulated_answers, synthetic_bank

from fluid_bayes import DataError, OptionError
from fluid_bayes.adaptive import kernels
from fluid_bayes.adaptive.ability import (
    GridState,
    ability_grid,
    grid_summary,
    joint_weights,
    normal_log_prior,
)
from fluid_bayes.adaptive.options import ROUND_RULES
from fluid_bayes.adaptive.replay import replay
from fluid_bayes.adaptive.rounds import plan_round, spread_points
from fluid_bayes.adaptive.selection import BankArrays, criterion
from fluid_bayes.adaptive.session import Session, SessionConfig, run_session

BANK = synthetic_bank(n_items=40, n_draws=16, seed=31)
ARRAYS = BankArrays.from_bank(BANK)


def _answer(item: str) -> int:
    """A deterministic examinee: right on items of even index."""
    return int(item[-1]) % 2 == 0


# ------------------------------------------------------------- fractional answers
@pytest.mark.parametrize("y", [0.0, 0.3, 0.5, 0.91, 1.0])
def test_fractional_update_is_the_tempered_likelihood(y):
    """GridState with an answer y in [0, 1] has the posterior of
    prod_s-mixture of logistic(x)^y logistic(-x)^(1-y), computed here directly."""
    rng = np.random.default_rng(3)
    n_s, n_k = 6, 9
    a = np.exp(rng.normal(0.2, 0.3, (n_s, n_k)))
    b = rng.normal(0, 1, (n_s, n_k))
    ys = np.r_[rng.integers(0, 2, n_k - 1).astype(float), y]
    nodes = ability_grid()
    state = GridState(nodes, normal_log_prior(nodes), n_s, "mixture")
    for j in range(n_k):
        state.update(a[:, j], b[:, j], ys[j])
    x = a[:, :, None] * (nodes[None, None, :] - b[:, :, None])  # (S, K, G)
    yk = ys[None, :, None]
    loglik = (yk * log_expit(x) + (1 - yk) * log_expit(-x)).sum(axis=1)  # (S, G)
    w = joint_weights(loglik, normal_log_prior(nodes), "mixture").sum(axis=0)
    ref = grid_summary(nodes, w[None, :])[0]
    got = state.summary()
    assert got.mean == pytest.approx(ref.mean, abs=1e-10)
    assert got.sd == pytest.approx(ref.sd, abs=1e-10)
    kern = kernels.grid_loglik_sum(np.ascontiguousarray(a), np.ascontiguousarray(b), ys, nodes)
    np.testing.assert_allclose(kern, loglik, rtol=1e-12, atol=1e-9)


def test_predictive_is_the_posterior_mean_of_the_item_curve():
    rng = np.random.default_rng(4)
    nodes = ability_grid()
    state = GridState(nodes, normal_log_prior(nodes), 16, "mixture")
    for j in range(5):
        state.update(ARRAYS.a[:, j], ARRAYS.b[:, j], float(j % 2))
    j = int(rng.integers(5, 40))
    w = state.joint()  # (S, G), sums to 1
    p = np.sum(w * expit(ARRAYS.a[:, j, None] * (nodes[None, :] - ARRAYS.b[:, j, None])))
    assert state.predictive(ARRAYS.a[:, j], ARRAYS.b[:, j]) == pytest.approx(p, abs=1e-12)
    copy = state.copy()
    copy.update(ARRAYS.a[:, j], ARRAYS.b[:, j], 1.0)
    assert copy.summary() != state.summary() and len(state._answers) == 5


# ------------------------------------------------------------------- the joint rules
def test_spread_points_are_normal_quantiles():
    assert spread_points(0.4, 2.0, 1).tolist() == [0.4]
    pts = spread_points(0.4, 2.0, 4)
    np.testing.assert_allclose(pts, 0.4 + 2.0 * norm.ppf([1 / 8, 3 / 8, 5 / 8, 7 / 8]))


def _after(session, n):
    for _ in range(n):
        item = session.next_item()
        session.record(item, _answer(item))
    return session


@pytest.mark.parametrize("rule", ROUND_RULES)
@pytest.mark.parametrize("method", ["bayes", "paper", "eap"])
def test_a_rounds_first_item_is_the_single_choice(rule, method):
    """k = 1 is next_item under every rule; so is the first item of a greedy round."""
    one = _after(Session(BANK, method=method, max_items=30), 3)
    many = _after(Session(BANK, method=method, max_items=30, round_rule=rule), 3)
    assert many.next_items(1) == [one.next_item()]
    if rule != "spread":  # spread's first point is below the mean
        assert many.next_items(6)[0] == one.next_item()


def test_top_rule_is_the_top_k_of_the_criterion():
    session = _after(Session(BANK, select="expected-fi", max_items=30, round_rule="top"), 4)
    theta = session.estimate().mean
    scores = criterion("expected-fi", ARRAYS, theta=np.array([theta]))[0]
    asked = [ARRAYS.items.index(i) for i in session.result().items]
    scores[asked] = -np.inf
    assert session.next_items(5) == [ARRAYS.items[j] for j in np.argsort(-scores)[:5]]


@pytest.mark.parametrize("rule", ["believer", "believer-mode"])
def test_believer_picks_for_the_posterior_updated_by_the_expected_answer(rule):
    """Pick 2 is the best item for the posterior updated by pick 1's expected answer,
    built here from the answers without the session."""
    session = _after(Session(BANK, select="expected-fi", max_items=30, round_rule=rule), 4)
    round_ = session.next_items(3)
    nodes = ability_grid()
    state = GridState(nodes, normal_log_prior(nodes), ARRAYS.n_draws, "mixture")
    asked = list(session.result().items)
    for item in asked:
        j = ARRAYS.items.index(item)
        state.update(ARRAYS.a[:, j], ARRAYS.b[:, j], float(_answer(item)))
    for t in range(2):
        j = ARRAYS.items.index(round_[t])
        p = state.predictive(ARRAYS.a[:, j], ARRAYS.b[:, j])
        state.update(ARRAYS.a[:, j], ARRAYS.b[:, j], p if rule == "believer" else float(p >= 0.5))
        asked.append(round_[t])
        scores = criterion("expected-fi", ARRAYS, theta=np.array([state.summary().mean]))[0]
        scores[[ARRAYS.items.index(i) for i in asked]] = -np.inf
        assert round_[t + 1] == ARRAYS.items[int(np.argmax(scores))]


def test_spread_rule_picks_the_best_item_at_each_point():
    session = _after(Session(BANK, select="expected-fi", max_items=30, round_rule="spread"), 4)
    est = session.estimate()
    taken = [ARRAYS.items.index(i) for i in session.result().items]
    expected = []
    for theta in spread_points(est.mean, est.sd, 4):
        scores = criterion("expected-fi", ARRAYS, theta=np.array([theta]))[0]
        scores[taken + expected] = -np.inf
        expected.append(int(np.argmax(scores)))
    assert session.next_items(4) == [ARRAYS.items[j] for j in expected]


def test_random_selection_draws_the_same_items_under_every_rule():
    rounds = {rule: Session(BANK, method="random", seed=3, round_rule=rule).next_items(6)
              for rule in ROUND_RULES}  # fmt: skip
    assert len({tuple(r) for r in rounds.values()}) == 1 and len(rounds["top"]) == 6


# ------------------------------------------------------------ budgets and stopping
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=st.sampled_from(ROUND_RULES), k=st.integers(1, 7), max_items=st.integers(1, 23),
       select=st.sampled_from(["expected-fi", "mfi", "mpwi", "random"]),
       n_exclude=st.integers(0, 30))  # fmt: skip
def test_rounds_are_distinct_unasked_items_within_the_budget(rule, k, max_items, select,
                                                             n_exclude):  # fmt: skip
    exclude = tuple(BANK.items[:n_exclude])
    session = Session(BANK, max_items=max_items, round_size=k, round_rule=rule, select=select,
                      exclude=exclude, seed=1)  # fmt: skip
    seen, sizes = [], []
    while items := session.next_items():
        assert len(set(items)) == len(items) and not set(items) & (set(seen) | set(exclude))
        sizes.append(len(items))
        for item in items:
            session.record(item, _answer(item))
        seen += items
    available = BANK.n_items - n_exclude
    assert len(seen) == min(max_items, available)
    assert all(s == k for s in sizes[:-1]) and 1 <= sizes[-1] <= k
    assert session.stop_reason == ("max_items" if max_items <= available else "exhausted")


def test_the_stop_rule_waits_for_the_end_of_a_round():
    one = run_session(BANK, _answer, stop_sd=10.0, max_items=20)
    assert one.n_items == 1 and one.stop_reason == "sd"  # any SD is below 10
    rounds = run_session(BANK, _answer, stop_sd=10.0, max_items=20, round_size=5)
    assert rounds.n_items == 5 and rounds.stop_reason == "sd"
    cut = run_session(BANK, _answer, max_items=12, round_size=5)
    assert cut.n_items == 12 and cut.stop_reason == "max_items"


def test_answers_of_a_round_may_come_in_any_order():
    first, second = Session(BANK, round_size=4), Session(BANK, round_size=4)
    items = first.next_items()
    assert second.next_items() == items
    for item in items:
        first.record(item, _answer(item))
    for item in reversed(items):
        second.record(item, _answer(item))
    assert first.next_items() == second.next_items()
    assert first.estimate().mean == pytest.approx(second.estimate().mean, abs=1e-12)


def test_an_answer_outside_the_round_ends_it():
    session = Session(BANK, round_size=4)
    items = session.next_items()
    other = next(i for i in BANK.items if i not in items)
    session.record(items[0], 1)
    assert session.next_items() == items[1:]
    session.record(other, 0)
    fresh = session.next_items()
    assert len(fresh) == 4 and fresh != items[1:]


def test_a_round_in_progress_is_saved_and_resumed(tmp_path):
    path = tmp_path / "s.json"
    session = Session(BANK, round_size=5, max_items=15, stop_sd=0.01)
    session = _after(session, 0)
    items = session.next_items()
    for item in items[:2]:
        session.record(item, _answer(item))
    session.save(path)
    resumed = Session.load(path, BANK)
    assert resumed.next_items() == items[2:]
    for s in (session, resumed):
        while got := s.next_items():
            for item in got:
                s.record(item, _answer(item))
    assert resumed.result().items == session.result().items
    assert resumed.result().theta == session.result().theta


# --------------------------------------------------------------------- replay
@pytest.mark.parametrize("method", ["bayes", "paper"])
@pytest.mark.parametrize("rule", ["believer", "spread"])
def test_replay_in_rounds_equals_sessions_in_rounds(method, rule):
    data = simulated_answers(BANK, 5, seed=8, missing=0.1)
    rep = replay(BANK, data, method=method, max_items=12, round_size=4, round_rule=rule)
    single = replay(BANK, data, method=method, max_items=12)
    for k in range(5):
        row = dict(zip(data.items, data.values[k], strict=True))
        missing = tuple(i for i, v in row.items() if np.isnan(v))
        r = run_session(BANK, row.__getitem__, subject=data.subjects[k], method=method,
                        max_items=12, round_size=4, round_rule=rule, exclude=missing)  # fmt: skip
        assert rep.results[k].items == r.items
        assert rep.results[k].theta.mean == pytest.approx(r.theta.mean, abs=1e-9)
    assert any(a.items != b.items for a, b in zip(rep.results, single.results, strict=True))


def test_round_options_are_checked():
    with pytest.raises(OptionError, match="round"):
        SessionConfig(round_size=0)
    with pytest.raises(OptionError, match="round rule"):
        SessionConfig(round_rule="best")
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        Session(BANK).next_items(0)
    with pytest.raises(ValueError, match="unknown round rule"):
        plan_round("best", 2, choose=None, believe=None, state=None, theta=0.0, sd=1.0,
                   unavailable=np.zeros(3, bool), step=0)  # fmt: skip
    with pytest.raises(DataError, match="not in the bank"):
        Session(BANK).record("nope", 1)
