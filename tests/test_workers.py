"""Sessions spread over Dask workers (issue 20 scope 2): the serial run's results, in order.

One real local cluster of 2 worker processes is shared by the module (``scheduler=`` its
address); one test starts its own through ``--workers 2``. Banks and data are tiny and
seeded, so what is compared is exact equality: items, estimates, order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_adaptive import simulated_answers, synthetic_bank

from fluid_bayes.adaptive import workers as workers_module
from fluid_bayes.adaptive.replay import replay
from fluid_bayes.adaptive.workers import Workers, available_cores, check_workers
from fluid_bayes.cli.main import main
from fluid_bayes.exceptions import OptionError
from fluid_bayes.study.experiment import run_experiment


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of 2 single-threaded worker processes; yields its address."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as lc:  # fmt: skip
        yield lc.scheduler_address


@pytest.fixture(scope="module")
def bank_and_data():
    bank = synthetic_bank(n_items=50, n_draws=30, seed=20)
    return bank, simulated_answers(bank, 11, seed=21, missing=0.1)


def _same(a, b) -> None:
    """Two replays' results equal to the bit, in the same order."""
    assert [r.subject for r in a.results] == [r.subject for r in b.results]
    for x, y in zip(a.results, b.results, strict=True):
        assert x.items == y.items
        assert x.theta == y.theta  # mean, SD and interval exactly
        assert (x.accuracy_mean, x.stop_reason) == (y.accuracy_mean, y.stop_reason)
        assert tuple(x.steps) == tuple(y.steps)
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)


@pytest.mark.parametrize("method", ["bayes", "paper"])
def test_replay_on_a_cluster_equals_serial(method, cluster, bank_and_data):
    bank, data = bank_and_data
    options = {"max_items": 12, "seed": 3}
    serial = replay(bank, data, method=method, **options)
    seen = []
    spread = replay(bank, data, method=method, scheduler=cluster,
                    progress=lambda done, n: seen.append((done, n)), **options)  # fmt: skip
    _same(serial, spread)
    assert seen[-1] == (11, 11) and len(seen) > 2  # one line per finished batch
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_experiment_on_a_cluster_equals_serial(cluster, bank_and_data):
    bank, data = bank_and_data
    reference = pd.Series(np.arange(11.0), index=list(data.subjects))
    kw = {"methods": ["fluid", "fluid-bayes", "random"], "budgets": [5, 10], "repeats": 2,
          "seed": 4, "reference": reference}  # fmt: skip
    serial = run_experiment(bank, data, **kw)
    spread = run_experiment(bank, data, scheduler=cluster, **kw)
    for name in ("results", "items", "detail", "summary"):
        pd.testing.assert_frame_equal(getattr(serial, name), getattr(spread, name),
                                      check_exact=True)  # fmt: skip


def test_one_pool_serves_many_replays(cluster, bank_and_data):
    bank, data = bank_and_data
    with Workers(scheduler=cluster) as pool:
        assert pool.n_workers() == 2
        first = replay(bank, data, method="eap", workers=pool, max_items=6)
        again = replay(bank, data, method="eap", workers=pool, max_items=6)
        assert pool._client is not None  # still open: the replays did not close it
    _same(first, again)
    assert pool._client is None


def test_a_worker_error_is_raised_here(cluster):
    with Workers(scheduler=cluster) as pool, pytest.raises(ZeroDivisionError):
        pool.map(_divide, 1.0, [1.0, 2.0, 0.0, 4.0])


def _divide(shared, batch):
    return [shared / x for x in batch]


def test_auto_stays_here_for_small_work(monkeypatch):
    monkeypatch.setattr(Workers, "_start", _no_cluster)
    with Workers("auto") as pool:
        assert pool.map(_divide, 6.0, [1.0, 2.0, 3.0] * 20) == [6.0, 3.0, 2.0] * 20


def _no_cluster(self, n=None):
    raise AssertionError("a cluster was started for a millisecond of work")


def test_auto_starts_a_cluster_for_long_work(monkeypatch):
    started = []
    monkeypatch.setattr(workers_module, "AUTO_SECONDS", -1.0)
    monkeypatch.setattr(workers_module, "available_cores", lambda: 2)
    monkeypatch.setattr(Workers, "_start", lambda self, n=None: started.append(n))
    with Workers("auto") as pool:
        assert pool.map(_divide, 6.0, [1.0, 2.0, 3.0, 6.0, 1.0]) == [6.0, 3.0, 2.0, 1.0, 6.0]
    assert started == [None]


def test_cli_evaluate_on_two_workers_prints_what_one_prints(tmp_path, capsys, bank_and_data):
    bank, data = bank_and_data
    bank.save(tmp_path / "bank.nc")
    data.to_frame().to_csv(tmp_path / "data.csv")
    argv = ["evaluate", str(tmp_path / "bank.nc"), str(tmp_path / "data.csv"), "--json",
            "--max-items", "8", "--trace", str(tmp_path / "t{}.csv")]  # fmt: skip
    outs = []
    for n in ("1", "2"):
        code = main([a.format(n) for a in argv] + ["--workers", n])
        out, err = capsys.readouterr()
        assert code == 0, err
        outs.append([json.loads(line) for line in out.splitlines()])
    assert outs[0] == outs[1] and len(outs[0]) == 11
    assert (tmp_path / "t1.csv").read_bytes() == (tmp_path / "t2.csv").read_bytes()


@pytest.mark.parametrize(
    ("workers", "scheduler", "message"),
    [(0, None, "workers must be an integer >= 1"), (2.5, None, "workers must be"),
     (True, None, "workers must be"), (2, "tcp://h:1", "not both"),
     (1, "", "scheduler must be"), (1, "tcp://a b", "scheduler must be")],
)  # fmt: skip
def test_bad_workers_refused_by_the_library(workers, scheduler, message):
    with pytest.raises(OptionError, match=message):
        check_workers(workers, scheduler)
    with pytest.raises(OptionError, match=message):
        replay(None, None, workers=workers, scheduler=scheduler)


def test_unreachable_scheduler_is_one_line(tmp_path, capsys, bank_and_data, monkeypatch):
    monkeypatch.setattr(workers_module, "_CONNECT_TIMEOUT", "1s")
    bank, data = bank_and_data
    bank.save(tmp_path / "bank.nc")
    data.to_frame().to_csv(tmp_path / "data.csv")
    code = main(["evaluate", str(tmp_path / "bank.nc"), str(tmp_path / "data.csv"),
                 "--scheduler", "tcp://127.0.0.1:9"])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("fluid-bayes: error: scheduler tcp://127.0.0.1:9: cannot connect")
    )


def test_importing_the_package_loads_no_dask():
    code = """
import sys
import fluid_bayes, fluid_bayes.adaptive.replay, fluid_bayes.study.experiment
from fluid_bayes.cli.main import _parser
_parser()
fluid_bayes.replay
assert not [m for m in ("dask", "distributed") if m in sys.modules]
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_available_cores():
    assert 1 <= available_cores() <= (__import__("os").cpu_count() or 1)



_SCRIPT = """
import os
import sys

import fluid_bayes as fb  # at the top, as in a user's script: workers import it at spawn

sys.path.insert(0, {tests!r})
from test_adaptive import simulated_answers, synthetic_bank

if __name__ == "__main__":
    bank = synthetic_bank(n_items=30, n_draws=20, seed=20)
    data = simulated_answers(bank, 7, seed=21)
    serial = fb.replay(bank, data, method="bayes", max_items=6, seed=3)
    os.environ["NUMBA_CACHE_DIR"] = {cache!r}  # empty: the workers must compile
    spread = fb.replay(bank, data, method="bayes", max_items=6, seed=3, workers=2)
    assert [r.items for r in serial.results] == [r.items for r in spread.results]
    assert [r.theta for r in serial.results] == [r.theta for r in spread.results]
    print("same", len(spread.results))
"""


def test_workers_compile_what_numba_has_not_cached(tmp_path):
    """A script that imports the package at its top, then replays on 2 workers with an
    empty numba cache: the kernels compile in the workers and the results are the serial
    run's. (This failed while the workers' environment set NUMBA_NUM_THREADS: the
    workers' numba had read its configuration at spawn, before the variable was set, and
    a compilation re-reads it after numba's threads started.)"""
    script = tmp_path / "user_script.py"
    tests = str(Path(__file__).resolve().parent)
    script.write_text(_SCRIPT.format(tests=tests, cache=str(tmp_path / "numba-cache")))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["same", "7"]
