"""The ``epv`` selection rule (expected posterior variance over the joint draws) against
a brute-force numpy computation, in sessions and with every estimator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from test_adaptive import simulated_answers, synthetic_bank

from fluid_bayes.adaptive.ability import GridState, MapState, normal_log_prior
from fluid_bayes.adaptive.replay import replay
from fluid_bayes.adaptive.selection import (
    SELECTION_RULES,
    BankArrays,
    criterion,
    epv_candidates,
    epv_scores,
    pick,
)
from fluid_bayes.adaptive.session import Session, run_session

BANK = synthetic_bank(n_items=80, n_draws=30, seed=21)
ARRAYS = BankArrays.from_bank(BANK)


def _state(answers, *, seed=0):
    """A bayes GridState after ``answers`` random items' answers."""
    rng = np.random.default_rng(seed)
    st = GridState(ARRAYS.nodes, normal_log_prior(ARRAYS.nodes), ARRAYS.n_draws)
    for j in rng.choice(ARRAYS.n_items, answers, replace=False):
        st.update(ARRAYS.a[:, j], ARRAYS.b[:, j], float(rng.random() < 0.5))
    return st


def _brute_epv(w, nodes, a, b):
    """Expected posterior variance of every item, as the definition reads (S, G) x N."""
    p = expit(a[:, None, :] * (nodes[None, :, None] - b[:, None, :]))  # (S, G, N)
    out = []
    for j in range(a.shape[1]):
        p1 = np.sum(w * p[:, :, j])
        w1 = w * p[:, :, j] / p1
        w0 = w * (1 - p[:, :, j]) / (1 - p1)
        var = [np.sum(v * nodes**2) - np.sum(v * nodes) ** 2 for v in (w0, w1)]
        out.append(p1 * var[1] + (1 - p1) * var[0])
    return np.array(out)


@pytest.mark.parametrize("answers", [0, 3, 12])
def test_epv_is_the_expected_posterior_variance(answers):
    st = _state(answers, seed=answers)
    w, nodes = st.joint(), ARRAYS.nodes
    var = np.sum(w * nodes**2) - np.sum(w * nodes) ** 2
    epv = _brute_epv(w, nodes, ARRAYS.a, ARRAYS.b)
    got = epv_scores(ARRAYS, st, np.arange(ARRAYS.n_items))
    # cells below 1e-10 of the largest weight are left out: agreement to ~1e-8 relative
    assert np.allclose(var - epv, got, rtol=1e-6, atol=1e-10)
    # criterion scores every item so; pick takes its argmax
    scores = criterion("epv", ARRAYS, theta=np.array([st.summary().mean]), states=[st])
    assert np.allclose(scores[0], got)
    unavailable = np.zeros((1, ARRAYS.n_items), bool)
    j = pick("epv", ARRAYS, scores, unavailable, theta=np.array([0.0]))[0]
    assert j == np.argmin(epv)
    # the fast path scores the screened candidates: its choice is their best
    theta = st.summary().mean
    cand = epv_candidates(ARRAYS, theta, unavailable[0])
    fast = SELECTION_RULES["epv"].choose(ARRAYS, theta, unavailable[0], state=st)
    assert fast == cand[np.argmin(epv[cand])]


def test_epv_with_point_parameters_and_the_map_state():
    # eap: one draw of point parameters; map: its normal approximation on the grid
    nodes = ARRAYS.nodes
    eap = GridState(nodes, normal_log_prior(nodes), 1)
    for j in (3, 9, 40):
        eap.update(ARRAYS.a_point[j : j + 1], ARRAYS.b_point[j : j + 1], 1.0)
    w = eap.joint()
    var = np.sum(w * nodes**2) - np.sum(w * nodes) ** 2
    brute = var - _brute_epv(w, nodes, ARRAYS.a_point[None, :], ARRAYS.b_point[None, :])
    assert np.allclose(epv_scores(ARRAYS, eap, np.arange(80)), brute, rtol=1e-6, atol=1e-10)
    ms = MapState()
    ms.update(ARRAYS.a_point[5], ARRAYS.b_point[5], 0.0)
    est = ms.summary()
    wn = np.exp(normal_log_prior(nodes, est.mean, est.sd))[None, :]
    var = np.sum(wn * nodes**2) - np.sum(wn * nodes) ** 2
    brute = var - _brute_epv(wn, nodes, ARRAYS.a_point[None, :], ARRAYS.b_point[None, :])
    assert np.allclose(epv_scores(ARRAYS, ms, np.arange(80)), brute, rtol=1e-6, atol=1e-10)


def test_epv_discounts_an_uncertain_item():
    """Two items with the same mean parameters: the one whose draws disagree scores less,
    though its expected Fisher information is larger (the Jensen gap of issue 21)."""
    rng = np.random.default_rng(3)
    s = ARRAYS.n_draws
    a, b = ARRAYS.a.copy(), ARRAYS.b.copy()
    a[:, 0] = 1.5
    a[:, 1] = 1.5 * np.exp(rng.normal(0, 0.8, s) - 0.32)  # same mean-ish a, spread draws
    a[:, 1] *= 1.5 / a[:, 1].mean()
    b[:, 0] = b[:, 1] = 0.0
    arr = BankArrays(items=ARRAYS.items, a=a, b=b, a_point=a.mean(0), b_point=b.mean(0))
    st = GridState(arr.nodes, normal_log_prior(arr.nodes), s)
    info = arr.expected_information(np.array([0.0]), np.array([[0, 1]]))[0]
    assert info[1] > info[0]
    red = epv_scores(arr, st, np.array([0, 1]))
    assert red[1] < red[0]


def test_epv_sessions_replay_and_exclusions():
    data = simulated_answers(BANK, 4, seed=5, missing=0.1)
    rep = replay(BANK, data, estimator="bayes", select="epv", max_items=12)
    for k in (0, 3):
        row = dict(zip(data.items, data.values[k], strict=True))
        missing = tuple(i for i, v in row.items() if np.isnan(v))
        r = run_session(BANK, row.__getitem__, subject=data.subjects[k], select="epv",
                        max_items=12, exclude=missing)  # fmt: skip
        assert rep.results[k].items == r.items and not set(r.items) & set(missing)
    # every step's choice is the fast rule's at the state then (rebuilt by hand)
    s = Session(BANK, select="epv", max_items=8, randomesque=1)
    st = GridState(ARRAYS.nodes, normal_log_prior(ARRAYS.nodes), ARRAYS.n_draws,
                   s.config.integration)  # fmt: skip
    used = np.zeros(ARRAYS.n_items, bool)
    pos = {i: j for j, i in enumerate(ARRAYS.items)}
    while (item := s.next_item()) is not None:
        theta = st.summary().mean if used.any() else s.start_ability
        j = SELECTION_RULES["epv"].choose(ARRAYS, theta, used, state=st)
        assert pos[item] == j
        y = float(ARRAYS.b_point[j] < 0.2)
        s.record(item, y)
        st.update(ARRAYS.a[:, j], ARRAYS.b[:, j], y)
        used[j] = True
    # randomesque draws among the best by the full criterion; rounds of k work too
    s2 = Session(BANK, select="epv", randomesque=3, seed=4, max_items=6, round_size=3)
    while items := s2.next_items():
        for i in items:
            s2.record(i, 1)
    assert s2.n_items == 6
    with pytest.raises(ValueError, match="needs the session's ability state"):
        SELECTION_RULES["epv"].choose(ARRAYS, 0.0, used)


@pytest.mark.parametrize("integration", ["mixture", "weighted"])
def test_window_rows_are_those_rows_of_the_normalized_window(integration):
    """The few rows epv reads, normalized from the update pass's row sums alone, equal
    the same rows of the whole window's weights; so does the marginal of the pass."""
    rng = np.random.default_rng(4)
    st = GridState(ARRAYS.nodes, normal_log_prior(ARRAYS.nodes), ARRAYS.n_draws, integration)
    draws = np.array([0, 7, 29])
    for j in rng.choice(ARRAYS.n_items, 9, replace=False):
        st.update(ARRAYS.a[:, j], ARRAYS.b[:, j], float(rng.random() < 0.5))
        lo, hi, rows = st.window_rows(draws)
        marginal = st.marginal()
        w = st.joint()[:, lo:hi]  # normalized over the whole window (grid_window_weights)
        assert np.all(st.joint()[:, :lo] == 0) and np.all(st.joint()[:, hi:] == 0)
        np.testing.assert_allclose(rows, w[draws], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(marginal[lo:hi], w.sum(axis=0), rtol=1e-12, atol=1e-300)
        assert marginal.sum() == pytest.approx(1.0, rel=1e-12)


def test_point_information_screen_against_numpy():
    """The compiled screen: the m available items of largest a^2 p (1 - p) (the lower
    index among ties), fewer when fewer are available."""
    from fluid_bayes import irt
    from fluid_bayes.adaptive.kernels import top_point_information

    rng = np.random.default_rng(8)
    a, b = ARRAYS.a_point.copy(), ARRAYS.b_point.copy()
    a[[10, 11]], b[[10, 11]] = 2.0, 0.3  # two items tie
    for theta in (-2.5, 0.3, 1.7):
        unavailable = rng.random(a.size) < 0.3
        info = np.where(unavailable, -np.inf, irt.fisher_information(theta, a, b))
        want = np.sort(np.argsort(-info, kind="stable")[:16])
        got = top_point_information(theta, a, b, unavailable, 16)
        assert np.array_equal(got, want)
    few = np.ones(a.size, bool)
    few[[3, 50]] = False
    assert list(top_point_information(0.0, a, b, few, 16)) == [3, 50] + [-1] * 14
