"""Independent pieces of work (sessions, subjects) spread over worker processes by Dask.

:class:`Workers` is the one place that makes and uses a ``dask.distributed`` client:

- ``workers=1`` (the Python API's default): everything runs here, in this process, in
  order; dask is not even imported;
- ``workers=N > 1``: a local cluster of ``N`` processes with one thread each
  (``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``), numba and the
  BLAS single-threaded in each, so ``N`` workers on ``N`` cores do not oversubscribe;
- ``scheduler="ADDRESS"``: the existing cluster at ``ADDRESS`` (``Client(ADDRESS)``),
  connected to when the pool is entered;
- ``workers="auto"`` (the command line's default): the work starts here; a local cluster
  of :func:`available_cores` processes is started only when the work left, timed on the
  first pieces, would take more than :data:`AUTO_SECONDS` here. Measured on the 2-core
  machine (quiet): a cluster of 2 starts in 3.6 s, its workers import the package in
  3.5 s and load the compiled kernels in 0.9 s, and each runs Bayesian sessions at 0.8
  of this process's speed; so a job of ``T`` seconds here takes about ``5 + T / 1.6`` s
  on 2 workers and gains only above about 13 s.

:meth:`Workers.map` runs ``fn(shared, batch) -> list`` over batches of pieces. The first
piece always runs here, so the caches of ``shared`` (the bank's tables) are built once
and go with it; ``shared`` is then sent to each worker once
(``client.scatter(..., broadcast=True)``), the batches are submitted in order and their
results gathered in that order: the output is the serial run's, piece for piece.

Worker processes are started by ``spawn``: a script that asks for ``workers > 1``
needs the usual ``if __name__ == "__main__":`` guard around its work.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fluid_bayes.exceptions import OptionError

__all__ = [
    "AUTO_SECONDS",
    "Workers",
    "available_cores",
    "check_workers",
    "using_workers",
]

#: ``workers="auto"`` starts a local cluster only for more work than this, in seconds
#: of serial time left after the first pieces (above the break-even of about 13 s)
AUTO_SECONDS = 20.0
_PROBES = 3  # pieces timed here (after the first) to decide ``auto``
_MAX_BATCH = 32  # pieces per batch: progress at least every 32 pieces
_BATCHES_PER_WORKER = 4  # enough batches to even out workers that finish early
_CONNECT_TIMEOUT = "10s"
# dask sets OMP, MKL, OpenBLAS threads to 1; numba's are set to 1 per task thread
# (_one_thread), not by NUMBA_NUM_THREADS in the workers' environment: numba may read its
# configuration before that variable is set, and the first compilation in a worker (a
# kernel missing from the on-disk cache) then fails on the changed thread count
# no dashboard; the scheduler's HTTP server on a free port (not 8787, maybe taken)
_NO_DASHBOARD = {"dashboard_address": ":0"}

Progress = Callable[[int, int], None]


def available_cores() -> int:
    """Return the number of cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_workers(workers: int | str, scheduler: str | None) -> None:
    """Refuse a worker count or scheduler address that cannot be used.

    Parameters
    ----------
    workers : int or "auto"
        Worker processes (``>= 1``).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``).

    Raises
    ------
    OptionError
        ``workers`` is not a positive integer or ``"auto"``, ``scheduler`` is empty or
        holds spaces, or both name a pool (``workers`` other than 1 or ``"auto"`` and a
        ``scheduler``).
    """
    if workers != "auto" and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise OptionError(f"workers must be an integer >= 1 or 'auto', got {workers!r}")
    if scheduler is None:
        return
    if not isinstance(scheduler, str) or not scheduler or any(c.isspace() for c in scheduler):
        raise OptionError(
            f"scheduler must be the address of a Dask scheduler (tcp://host:8786), "
            f"got {scheduler!r}"
        )
    if workers not in (1, "auto"):
        raise OptionError(
            f"give workers ({workers}) or scheduler ({scheduler}), not both: the "
            "scheduler's cluster has its own workers"
        )


def _one_thread() -> None:
    """Numba's threads down to one in this (worker) thread: the workers are the cores."""
    import numba

    if numba.get_num_threads() != 1:
        numba.set_num_threads(1)


def _run_batch(fn: Callable, shared: Any, batch: list) -> list:
    _one_thread()
    return fn(shared, batch)


def _warm(modules: list[str]) -> None:
    """Import ``modules`` in a worker while this process does the first piece."""
    import importlib

    for module in modules:
        importlib.import_module(module)


class _Thread(threading.Thread):
    """Run ``target(*args)`` in a thread; :meth:`join` re-raises its exception here."""

    def __init__(self, target: Callable, *args: Any) -> None:
        super().__init__(daemon=True)
        self._call, self._error = (target, args), None
        self.start()

    def run(self) -> None:
        target, args = self._call
        try:
            target(*args)
        except BaseException as exc:  # handed to the joining thread
            self._error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error


class Workers:
    """Where independent batches of work run: here, or on a Dask cluster.

    Parameters
    ----------
    workers : int or "auto"
        1: here, serially; ``N > 1``: a local cluster of ``N`` single-threaded worker
        processes, started on first use; ``"auto"``: a local cluster of
        :func:`available_cores` processes once the work is large enough
        (:data:`AUTO_SECONDS`).
    scheduler : str, optional
        Address of an existing Dask scheduler to send the work to instead.
    log : callable, optional
        Called with a line of text when a cluster is started or connected to.

    Raises
    ------
    OptionError
        As :func:`check_workers`; on entering, a ``scheduler`` that cannot be reached.

    Examples
    --------
    >>> with Workers(1) as pool:
    ...     pool.map(lambda shared, batch: [shared * x for x in batch], 10, [1, 2, 3])
    [10, 20, 30]
    """

    def __init__(
        self,
        workers: int | str = 1,
        scheduler: str | None = None,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        check_workers(workers, scheduler)
        self.workers, self.scheduler = workers, scheduler
        self._log = log or (lambda text: None)
        self._client: Any = None
        self._cluster: Any = None
        self._warming: list = []

    def __repr__(self) -> str:
        where = self.scheduler or f"workers={self.workers!r}"
        return f"Workers({where}, {'running' if self._client else 'not started'})"

    @property
    def serial(self) -> bool:
        """True when every piece runs here (``workers=1`` and no scheduler)."""
        return self.workers == 1 and self.scheduler is None

    @property
    def external(self) -> bool:
        """True when the work goes to an existing cluster (``scheduler`` given)."""
        return self.scheduler is not None

    def __enter__(self) -> Workers:
        if self.external:
            self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client, and the local cluster if this pool started one."""
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        self._warming = []
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def n_workers(self) -> int:
        """Worker threads the work is spread over (1 while it runs here)."""
        if self._client is None:
            return 1
        return max(1, sum(self._client.nthreads().values()))

    def _start(self, n: int | None = None) -> None:
        if self._client is not None:
            return
        from dask.distributed import Client, LocalCluster

        t0 = time.perf_counter()
        if self.external:
            try:
                self._client = Client(self.scheduler, timeout=_CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise OptionError(
                    f"scheduler {self.scheduler}: cannot connect ({reason})"
                ) from None
            where = f"the cluster at {self.scheduler}"
        else:
            n = n or (available_cores() if self.workers == "auto" else int(self.workers))
            self._cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True,
                dashboard_address=None, scheduler_kwargs=_NO_DASHBOARD,
                silence_logs=logging.ERROR,  # not the warnings of workers slow to close
            )  # fmt: skip
            self._client = Client(self._cluster)
            where = f"a local cluster of {n} worker processes"
        self._log(f"{where}: {self.n_workers()} worker(s), {time.perf_counter() - t0:.1f} s")

    def _start_warm(self, modules: list[str]) -> None:
        self._start()
        self._warming = [self._client.submit(_warm, modules, workers=[w], pure=False)
                         for w in self._client.nthreads()]  # fmt: skip

    def map(
        self,
        fn: Callable[[Any, list], list],
        shared: Any,
        pieces: Sequence,
        *,
        progress: Progress | None = None,
    ) -> list:
        """Return ``fn(shared, batch)`` over batches of ``pieces``, concatenated in order.

        Parameters
        ----------
        fn : callable
            ``fn(shared, batch) -> list`` with one result per piece of ``batch``, in its
            order; a module-level function (the workers import it by name).
        shared : object
            What every batch needs (the bank, its arrays, the options): sent to each
            worker once, after the first piece ran here.
        pieces : sequence
            The independent pieces of work (e.g. ``(answers, subject)`` pairs).
        progress : callable, optional
            Called as ``progress(done, total)`` after each finished batch.

        Returns
        -------
        list
            One result per piece, in the order of ``pieces``: the same as
            ``fn(shared, list(pieces))``.
        """
        pieces, out = list(pieces), []
        total = len(pieces)
        report = progress or (lambda done, n: None)
        if not pieces:
            return out
        starting = None
        if not self.serial and self.workers != "auto" and self._client is None:
            # the cluster starts, and its workers import what they need, in a thread
            # while the first piece runs here
            parts = shared if isinstance(shared, tuple) else (shared,)
            modules = sorted({fn.__module__} | {type(x).__module__ for x in parts})
            starting = _Thread(self._start_warm, modules)
        out += fn(shared, pieces[:1])  # builds the caches of ``shared`` here, once
        if starting is not None:
            starting.join()
        if self._client is None and self.workers == "auto":
            t0 = time.perf_counter()
            probes = pieces[1 : 1 + _PROBES]
            if probes:
                out += fn(shared, probes)
                per_piece = (time.perf_counter() - t0) / len(probes)
                if per_piece * (total - len(out)) > AUTO_SECONDS and available_cores() > 1:
                    self._start()
        report(len(out), total)
        rest = pieces[len(out) :]
        if not rest:
            return out
        if self._client is None:
            for lo in range(0, len(rest), _MAX_BATCH):
                out += fn(shared, rest[lo : lo + _MAX_BATCH])
                report(len(out), total)
            return out
        return out + self._distribute(fn, shared, rest, len(out), total, report)

    def _distribute(self, fn, shared, rest, done, total, report) -> list:
        from dask.distributed import as_completed

        client = self._client
        size = max(1, min(_MAX_BATCH, math.ceil(len(rest) / (_BATCHES_PER_WORKER *
                                                             self.n_workers()))))  # fmt: skip
        batches = [rest[lo : lo + size] for lo in range(0, len(rest), size)]
        [ref] = client.scatter([shared], broadcast=True, hash=False)
        futures = [client.submit(_run_batch, fn, ref, b, pure=False) for b in batches]
        sizes = dict(zip((f.key for f in futures), map(len, batches), strict=True))
        try:
            for future in as_completed(futures):
                done += sizes[future.key]
                future.result()  # a worker's error, raised here
                report(done, total)
            return [x for future in futures for x in future.result()]
        finally:
            client.cancel([*futures, ref])


@contextmanager
def using_workers(
    workers: int | str | Workers = 1,
    scheduler: str | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> Iterator[Workers]:
    """Yield ``workers`` if it is a :class:`Workers` already, else a new one (closed after).

    Parameters
    ----------
    workers : int, "auto" or Workers
        A worker count (:class:`Workers`), or a pool to share between calls (the
        experiment passes one pool to each of its replays).
    scheduler : str, optional
        Address of an existing Dask scheduler (only with a worker count).
    log : callable, optional
        As :class:`Workers`.

    Yields
    ------
    Workers
    """
    if isinstance(workers, Workers):
        if scheduler is not None:
            raise OptionError("give a Workers pool or a scheduler, not both")
        yield workers
        return
    with Workers(workers, scheduler, log=log) as pool:
        yield pool
