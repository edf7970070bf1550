"""Item selection rules: which item to ask next.

Pure functions over the bank's arrays (:class:`BankArrays`) and the current ability
state; each works on a batch of ``B`` sessions at once (one session is ``B = 1``).

``mfi``
    The paper: Fisher information ``a^2 p (1 - p)`` at the current point estimate, on
    point item parameters (posterior means); ties go to the lowest bank index.
``expected-fi``
    Fisher information averaged over the item-parameter posterior draws, at the
    current ability estimate (posterior mean). Evaluated from a table of the expected
    information on the ability grid (linear interpolation), then the
    ``RERANK`` best candidates are re-scored exactly at the estimate, so the choice is
    the exact argmax unless the interpolation error exceeds the gap to the 11th item.
``mpwi``
    Information averaged over the ability posterior (on the grid) and the draws.
``random``
    Uniform among the available items.
``epv`` (default of the ``bayes`` method)
    The expected reduction of the ability posterior's variance by the item's answer,
    under the answer's posterior predictive distribution, over the joint (draw, node)
    weights of the session's ability posterior (:mod:`fluid_bayes.adaptive.variance_kernels`):
    minimizes the expected posterior variance. Unlike ``expected-fi`` it does not
    reward an item for the uncertainty of its parameters (``E[a^2 p q]`` grows with it;
    the answer to an uncertain item tells less). Scored exactly for the
    ``EPV_CANDIDATES`` best available items by ``expected-fi`` and by ``mfi`` at the
    estimate (their union), over at most ``EPV_DRAWS`` evenly thinned draws and, per
    draw, the nodes whose weight exceeds ``1e-10`` of the largest; the ``map``
    estimator's posterior enters as its normal approximation on the grid.

``randomesque=k`` (exposure control) picks uniformly among the ``k`` best. Items already
administered, excluded or (in replay) not answered by the subject are never chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fluid_bayes import irt
from fluid_bayes.adaptive import kernels, variance_kernels
from fluid_bayes.adaptive.ability import GridState, ability_grid, grid_spacing, normal_log_prior
from fluid_bayes.adaptive.options import SELECTORS
from fluid_bayes.dims import CHAIN, DRAW, ITEM

__all__ = [
    "SELECTION_RULES",
    "SELECTORS",
    "BankArrays",
    "SelectionRule",
    "criterion",
    "epv_candidates",
    "epv_fast",
    "epv_scores",
    "expected_fi_fast",
    "mfi_fast",
    "pick",
]

#: candidates re-scored exactly by ``expected-fi``
RERANK = 10
#: candidates of each screen (``expected-fi``, ``mfi``) that ``epv`` scores exactly
EPV_CANDIDATES = 16
#: draws ``epv`` evaluates at most (evenly thinned)
EPV_DRAWS = 500
_EPV_REL = 1e-10  # cells below this fraction of the largest weight are left out
_TABLE_BLOCK_BYTES = 64 * 2**20  # memory of one (draws, nodes, items) block of the tables
# per-node item rankings of the MFI kernel: node spacing over [-4, 4], items kept per node
_RANK_STEP, _RANK_RANGE, _RANK_KEEP = 0.01, (-4.0, 4.0), 1024


@dataclass(eq=False)
class BankArrays:
    """Item parameters of a bank as plain float64 arrays, with cached tables.

    Attributes
    ----------
    items : tuple of str
        Item ids in bank order (``N``).
    a, b : numpy.ndarray
        Posterior draws, shape ``(S, N)`` (chains and draws stacked), stored item-major
        (one item's draws are contiguous: a session reads them an item at a time).
    a_point, b_point : numpy.ndarray
        Posterior means, shape ``(N,)`` (the paper's point estimates).
    nodes : numpy.ndarray
        Ability grid, shape ``(G,)``.
    """

    items: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    a_point: np.ndarray
    b_point: np.ndarray
    nodes: np.ndarray = field(default_factory=ability_grid)
    _tables: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_bank(cls, bank, *, nodes: np.ndarray | None = None) -> BankArrays:
        """Extract the arrays of an :class:`~fluid_bayes.bank.ItemBank`."""
        a = np.asarray(bank.a.transpose(CHAIN, DRAW, ITEM).values, dtype=np.float64)
        b = np.asarray(bank.b.transpose(CHAIN, DRAW, ITEM).values, dtype=np.float64)
        a = a.reshape(-1, a.shape[-1])
        b = b.reshape(-1, b.shape[-1])
        return cls(
            items=bank.items,
            a=np.ascontiguousarray(a.T).T,
            b=np.ascontiguousarray(b.T).T,
            a_point=a.mean(axis=0),
            b_point=b.mean(axis=0),
            nodes=ability_grid() if nodes is None else np.asarray(nodes, dtype=np.float64),
        )

    @property
    def n_items(self) -> int:
        """Number of items ``N``."""
        return self.a.shape[1]

    @property
    def n_draws(self) -> int:
        """Number of item-parameter draws ``S``."""
        return self.a.shape[0]

    @property
    def node_step(self) -> float:
        """The grid's spacing if its nodes are equally spaced, else 0."""
        if "node_step" not in self._tables:  # np.float64: has nbytes, as the tables
            self._tables["node_step"] = np.float64(grid_spacing(self.nodes))
        return float(self._tables["node_step"])

    @property
    def order(self) -> np.ndarray:
        """Item indices by decreasing point discrimination (for the MFI kernel)."""
        if "order" not in self._tables:
            self._tables["order"] = np.argsort(-self.a_point, kind="stable")
        return self._tables["order"]

    @property
    def mfi_ranking(self) -> tuple:
        """Items ranked by point Fisher information at nodes 0.01 apart on [-4, 4].

        ``(ranked, ranked_info, g_lo, g_step, a_max)`` for
        :func:`fluid_bayes.adaptive.kernels.mfi_argmax_ranked`: the first ``min(N, 1024)``
        items per node (int32 ``(801, M)``) and their information there.
        """
        if "ranked" not in self._tables:
            lo, hi = _RANK_RANGE
            nodes = np.linspace(lo, hi, int(round((hi - lo) / _RANK_STEP)) + 1)
            m = min(self.n_items, _RANK_KEEP)
            ranked = np.empty((nodes.size, m), dtype=np.int32)
            info = np.empty((nodes.size, m))
            a, b = self.a_point, self.b_point
            rows = max(1, _TABLE_BLOCK_BYTES // (8 * self.n_items))
            for g0 in range(0, nodes.size, rows):
                full = irt.fisher_information(nodes[g0 : g0 + rows, None], a, b)
                top = np.argpartition(-full, m - 1, axis=1)[:, :m] if m < self.n_items else (
                    np.broadcast_to(np.arange(m), full.shape))  # fmt: skip
                vals = np.take_along_axis(full, top, axis=1)
                srt = np.argsort(-vals, axis=1, kind="stable")
                ranked[g0 : g0 + rows] = np.take_along_axis(top, srt, axis=1)
                info[g0 : g0 + rows] = np.take_along_axis(vals, srt, axis=1)
            self._tables["ranked"] = ranked
            self._tables["ranked_info"] = info
        return (self._tables["ranked"], self._tables["ranked_info"], _RANK_RANGE[0],
                _RANK_STEP, float(self.a_point.max()))  # fmt: skip

    def _build_tables(self) -> None:
        info, acc = kernels.expected_tables(self.a, self.b, self.nodes)
        self._tables["info"] = info
        self._tables["acc"] = acc

    @property
    def info_table(self) -> np.ndarray:
        """Posterior-expected Fisher information at every node, shape ``(G, N)``."""
        if "info" not in self._tables:
            self._build_tables()
        return self._tables["info"]

    @property
    def accuracy_table(self) -> np.ndarray:
        """Expected accuracy over all bank items per (draw, node), shape ``(S, G)``."""
        if "acc" not in self._tables:
            self._build_tables()
        return self._tables["acc"]

    @property
    def accuracy_order(self) -> tuple[np.ndarray, np.ndarray]:
        """The cells of :attr:`accuracy_table` sorted by value, built once.

        ``(order, values)``: the stable argsort of ``accuracy_table.ravel()`` and the
        values in that order (for :func:`~fluid_bayes.adaptive.kernels.sorted_weighted_hdi`).
        """
        if "acc_order" not in self._tables:
            flat = self.accuracy_table.ravel()
            order = np.argsort(flat, kind="stable")
            self._tables["acc_order"] = (order, flat[order])
        return self._tables["acc_order"]

    def point_accuracy(self, theta: np.ndarray) -> np.ndarray:
        """Mean over bank items of ``p(correct | theta)`` on point parameters."""
        theta = np.asarray(theta, dtype=np.float64)
        flat = np.ascontiguousarray(theta.ravel())
        return kernels.mean_icc(flat, self.a_point, self.b_point).reshape(theta.shape)

    def expected_information(self, theta: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Exact posterior-expected information of ``items`` (B, K) at ``theta`` (B,)."""
        return kernels.expected_information(self.a, self.b, np.asarray(theta, np.float64),
                                             np.asarray(items, np.int64))  # fmt: skip

    def nbytes(self) -> int:
        """Memory held by the arrays and the tables built so far, in bytes."""
        arrays = (self.a, self.b, self.a_point, self.b_point, self.nodes)
        tables = [t for v in self._tables.values() for t in (v if isinstance(v, tuple) else (v,))]
        return sum(x.nbytes for x in arrays) + sum(t.nbytes for t in tables)


def _interp_rows(table: np.ndarray, nodes: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``table`` (G, N) at each ``theta`` (B,): (B, N)."""
    t = np.clip(theta, nodes[0], nodes[-1])
    k = np.clip(np.searchsorted(nodes, t) - 1, 0, nodes.size - 2)
    w = ((t - nodes[k]) / (nodes[k + 1] - nodes[k]))[:, None]
    return (1.0 - w) * table[k] + w * table[k + 1]


def _posterior_cells(arrays: BankArrays, state) -> tuple:
    """The state's ability posterior as ``epv`` reads it.

    ``(w, nodes, a, b, draws)``: joint weights ``(S', W)`` of the draws used (at most
    :data:`EPV_DRAWS`, evenly thinned) on the window nodes ``(W,)``, the item
    parameters ``(S, N)`` the rows belong to (draws, or the point estimates as one
    draw) and the draw index of each row. A state without a grid (``map``) is its
    normal approximation ``N(mean, sd)`` on point parameters.
    """
    if isinstance(state, GridState):
        n_rows = state.n_draws
    else:
        est = state.summary()
        nodes = arrays.nodes
        w = np.exp(normal_log_prior(nodes, est.mean, max(est.sd, 1e-3)))[None, :]
        n_rows = 1
    if n_rows == arrays.n_draws:
        a, b = arrays.a, arrays.b
    elif n_rows == 1:
        a, b = arrays.a_point[None, :], arrays.b_point[None, :]
    else:
        raise ValueError(f"the state has {n_rows} draws, the bank {arrays.n_draws}")
    step = -(-n_rows // EPV_DRAWS)  # ceil
    draws = np.arange(0, n_rows, step, dtype=np.int64)
    if isinstance(state, GridState):  # only the rows used are normalized
        lo, hi, w = state.window_rows(draws)
        nodes = arrays.nodes[lo:hi]
    w = np.ascontiguousarray(w)
    return w, np.ascontiguousarray(nodes), a, b, draws


def epv_scores(arrays: BankArrays, state, items: np.ndarray) -> np.ndarray:
    """Expected reduction of the posterior variance of ability by each of ``items``.

    Parameters
    ----------
    arrays : BankArrays
        The bank.
    state : GridState or MapState
        The session's ability state.
    items : numpy.ndarray
        Bank indices (K,) (-1 scores ``-inf``).

    Returns
    -------
    numpy.ndarray
        ``Var(theta) - E_y[Var(theta | y)]`` per item (K,), ability^2 (higher is better).
    """
    w, nodes, a, b, draws = _posterior_cells(arrays, state)
    lo, hi = variance_kernels.draw_ranges(w, _EPV_REL)
    items = np.asarray(items, np.int64)
    return variance_kernels.variance_reduction(w, nodes, a, b, draws, items, lo, hi,
                                               arrays.node_step)  # fmt: skip


def epv_candidates(arrays: BankArrays, theta: float, unavailable: np.ndarray) -> np.ndarray:
    """The items ``epv`` scores: the union of the best available by both screens.

    The :data:`EPV_CANDIDATES` best by interpolated ``expected-fi`` and by point
    Fisher information (``mfi``) at ``theta``, in increasing index order.
    """
    m = min(EPV_CANDIDATES, arrays.n_items)
    th = np.array([float(theta)])
    by_info = kernels.top_candidates(arrays.info_table, arrays.nodes, th,
                                     unavailable[None, :], m)[0]  # fmt: skip
    by_point = kernels.top_point_information(float(theta), arrays.a_point, arrays.b_point,
                                             unavailable, m)  # fmt: skip
    return np.union1d(by_info[by_info >= 0], by_point[by_point >= 0]).astype(np.int64)


def criterion(
    rule: str,
    arrays: BankArrays,
    *,
    theta: np.ndarray,
    weights: np.ndarray | None = None,
    states: list | None = None,
) -> np.ndarray:
    """Score of every item for a batch of sessions (higher is better).

    Parameters
    ----------
    rule : {"mfi", "expected-fi", "mpwi", "random", "epv"}
        Selection rule (``random`` scores every item 0).
    arrays : BankArrays
        The bank.
    theta : numpy.ndarray
        Current ability estimates, shape ``(B,)``.
    weights : numpy.ndarray, optional
        Ability posteriors on ``arrays.nodes``, shape ``(B, G)``; needed by ``mpwi``.
    states : list, optional
        The sessions' ability states (``B``); needed by ``epv``, which scores every
        item exactly (:func:`epv_scores`; its ``fast`` path scores only the screened
        candidates).

    Returns
    -------
    numpy.ndarray
        Shape ``(B, N)``: information (1 / ability^2) for the information rules, the
        expected variance reduction (ability^2) for ``epv``.
    """
    theta = np.asarray(theta, dtype=np.float64)
    if rule == "mfi":
        return irt.fisher_information(theta[:, None], arrays.a_point, arrays.b_point)
    if rule == "expected-fi":
        return _interp_rows(arrays.info_table, arrays.nodes, theta)
    if rule == "mpwi":
        if weights is None:
            raise ValueError("mpwi needs the ability posterior weights")
        return weights @ arrays.info_table
    if rule == "random":
        return np.zeros((theta.size, arrays.n_items))
    if rule == "epv":
        if states is None:
            raise ValueError("epv needs the sessions' ability states")
        every = np.arange(arrays.n_items, dtype=np.int64)
        return np.stack([epv_scores(arrays, st, every) for st in states])
    raise ValueError(f"unknown selection rule {rule!r}; choose from {', '.join(SELECTORS)}")


def pick(
    rule: str,
    arrays: BankArrays,
    scores: np.ndarray,
    unavailable: np.ndarray,
    *,
    theta: np.ndarray,
    rngs: list[np.random.Generator] | None = None,
    randomesque: int = 1,
) -> np.ndarray:
    """Choose one item per session from its scores.

    Parameters
    ----------
    rule : str
        The rule that produced ``scores``.
    arrays : BankArrays
        The bank.
    scores : numpy.ndarray
        From :func:`criterion`, shape ``(B, N)``.
    unavailable : numpy.ndarray
        Boolean ``(B, N)``: administered, excluded or unanswered items.
    theta : numpy.ndarray
        Current estimates ``(B,)`` (for the exact re-scoring of ``expected-fi``).
    rngs : list of numpy.random.Generator, optional
        One per session; required by ``random`` and ``randomesque > 1``.
    randomesque : int
        Pick uniformly among the best ``randomesque`` items.

    Returns
    -------
    numpy.ndarray
        Chosen bank indices, shape ``(B,)``; -1 where nothing is available.
    """
    n_avail = (~unavailable).sum(axis=1)
    s = np.where(unavailable, -np.inf, scores)
    out = np.full(s.shape[0], -1, dtype=np.int64)
    if rule == "random":
        for i in np.flatnonzero(n_avail):
            out[i] = rngs[i].choice(np.flatnonzero(~unavailable[i]))
        return out
    k = int(randomesque)
    if k < 1:
        raise ValueError(f"randomesque must be >= 1, got {randomesque}")
    if k > 1 and rngs is None:
        raise ValueError("randomesque > 1 needs a random generator per session")
    if rule == "expected-fi":
        m = min(max(RERANK, k), s.shape[1])
        cand = np.argpartition(-s, m - 1, axis=1)[:, :m]
        cand.sort(axis=1)  # ties then go to the lowest index
        exact = arrays.expected_information(np.asarray(theta, dtype=np.float64), cand)
        exact = np.where(np.take_along_axis(unavailable, cand, axis=1), -np.inf, exact)
        s_cand, idx_cand = exact, cand
    else:
        s_cand, idx_cand = s, None
    for i in np.flatnonzero(n_avail):
        row = s_cand[i]
        if k == 1:
            j = int(np.argmax(row))
        else:
            kk = min(k, int(n_avail[i]), row.size)
            top = np.argsort(-row, kind="stable")[:kk]
            j = int(top[rngs[i].integers(kk)])
        out[i] = j if idx_cand is None else int(idx_cand[i, j])
    return out


def expected_fi_fast(arrays: BankArrays, theta: float, unavailable: np.ndarray) -> int:
    """``expected-fi`` for one session, as :func:`pick` does it (-1: none left).

    The ``RERANK`` best available items by the interpolated ``info_table`` at
    ``theta``, re-scored exactly over the draws; ties to the lowest index.
    """
    th = np.array([float(theta)])
    cand = kernels.top_candidates(arrays.info_table, arrays.nodes, th, unavailable[None, :],
                                   min(RERANK, arrays.n_items))[0]  # fmt: skip
    if cand[0] < 0:
        return -1
    exact = arrays.expected_information(th, cand[None, :])[0]
    return int(cand[int(np.argmax(exact))])


def epv_fast(arrays: BankArrays, theta: float, unavailable: np.ndarray, state) -> int:
    """``epv`` for one session over the screened candidates (-1: none left).

    :func:`epv_candidates` at ``theta``, scored by :func:`epv_scores`; ties to the
    lowest index.
    """
    cand = epv_candidates(arrays, theta, unavailable)
    if cand.size == 0:
        return -1
    return int(cand[int(np.argmax(epv_scores(arrays, state, cand)))])


def mfi_fast(arrays: BankArrays, theta: float, unavailable: np.ndarray) -> int:
    """The paper's MFI choice for one session by the pruned kernel (-1: none left)."""
    return int(
        kernels.mfi_argmax_ranked(
            float(theta),
            arrays.a_point,
            arrays.b_point,
            arrays.order,
            unavailable,
            *arrays.mfi_ranking,
        )
    )


@dataclass(frozen=True)
class SelectionRule:
    """One selection rule of the adaptive loop: how it scores items, how it chooses.

    Every user of a rule (:class:`~fluid_bayes.adaptive.session.Session`, hence replay,
    the experiments and the CLI) goes through :data:`SELECTION_RULES`.

    Attributes
    ----------
    name : str
        The rule's name (one of :data:`SELECTORS`).
    uses_posterior : bool
        The rule needs the ability posterior on the grid (``weights`` in :meth:`choose`).
    random : bool
        The rule draws from the session's random generator even at ``randomesque=1``.
    uses_state : bool
        The rule reads the session's ability state (``state`` in :meth:`choose`; its
        ``fast`` takes it as a fourth argument).
    fast : callable, optional
        ``fast(arrays, theta, unavailable[, state]) -> index``: a compiled
        single-session choice, the same as :func:`criterion` + :func:`pick` with
        ``randomesque=1`` (``epv``'s: over its screened candidates only).
    """

    name: str
    uses_posterior: bool = False
    random: bool = False
    uses_state: bool = False
    fast: Callable[..., int] | None = None

    def needs_rng(self, randomesque: int) -> bool:
        """Whether :meth:`choose` needs a random generator."""
        return self.random or randomesque > 1

    def choose(
        self,
        arrays: BankArrays,
        theta: float,
        unavailable: np.ndarray,
        *,
        weights: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        randomesque: int = 1,
        state=None,
    ) -> int:
        """The bank index of the item to ask one session next (-1: none left).

        Parameters
        ----------
        arrays : BankArrays
            The bank.
        theta : float
            The point the rule is evaluated at (the current estimate).
        unavailable : numpy.ndarray
            Boolean ``(N,)``: items that may not be chosen.
        weights : numpy.ndarray, optional
            The ability posterior on ``arrays.nodes``, shape ``(G,)``; needed when
            :attr:`uses_posterior`.
        rng : numpy.random.Generator, optional
            Needed when :meth:`needs_rng`.
        randomesque : int
            Choose uniformly among the best ``randomesque`` items.
        state : GridState or MapState, optional
            The session's ability state; needed when :attr:`uses_state`.
        """
        if self.uses_state and state is None:
            raise ValueError(f"selection rule {self.name!r} needs the session's ability state")
        if randomesque == 1 and self.fast is not None:
            if self.uses_state:
                return self.fast(arrays, theta, unavailable, state)
            return self.fast(arrays, theta, unavailable)
        th = np.array([float(theta)])
        w = None if weights is None else np.asarray(weights)[None, :]
        states = None if state is None else [state]
        scores = criterion(self.name, arrays, theta=th, weights=w, states=states)
        rngs = None if rng is None else [rng]
        j = pick(self.name, arrays, scores, unavailable[None, :], theta=th, rngs=rngs,
                 randomesque=randomesque)  # fmt: skip
        return int(j[0])


#: every selection rule, by name (the names of :data:`SELECTORS`, in that order)
SELECTION_RULES = {
    rule.name: rule
    for rule in (
        SelectionRule("expected-fi", fast=expected_fi_fast),
        SelectionRule("mfi", fast=mfi_fast),
        SelectionRule("mpwi", uses_posterior=True),
        SelectionRule("random", random=True),
        SelectionRule("epv", uses_state=True, fast=epv_fast),
    )
}
assert tuple(SELECTION_RULES) == SELECTORS
