"""The refit decision on real data: ChemBench calibrated on its weaker models (real sampling).

The 5 strongest of ChemBench's 22 models are the "new" generation; 3 of the other 17,
drawn at random, are the control (same population as the calibration); the remaining 14
calibrate a bank on all 2,854 items (2 chains x 300 draws, a short fit: the decision, not
the bank, is under test). ``benchmarks/saturation.py`` runs the same split with 4 chains x
1,000 draws and the bank's own check.

The margin is real but small: ChemBench's top is compressed (the best calibration model,
Claude-3 (Opus), is as accurate as the weakest "new" one), so 3 of the 5 strongest are
above every calibration model with P >= 0.9 (2 on a random 2,000-item subset).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from fluid_bayes import HierarchicalTwoPL, read_responses
from fluid_bayes.cli.demo import saturation_split
from fluid_bayes.upkeep.advice import RefitThresholds, advise
from fluid_bayes.upkeep.newmodels import check_new_models

DATA = Path(__file__).resolve().parents[1] / "fluid_bayes" / "data" / "chembench" / "responses.csv"


@pytest.fixture(scope="module")
def chembench_split():
    data = read_responses(DATA)
    calib, strong, control = saturation_split(data)
    acc = data.accuracy()
    assert acc[strong].min() > acc[calib + control].max()  # the 5 most accurate
    assert len(calib) == 14 and len(control) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short fit; its R-hat is not under test
        bank = HierarchicalTwoPL().fit(
            data.select(subjects=calib), seed=1, draws=300, tune=300, chains=2
        )
    return bank, data, strong, control


def test_strongest_models_refit_and_control_keeps(chembench_split):
    bank, data, strong, control = chembench_split
    cal_max = float(bank.subjects["theta_mean"].max())
    assert set(bank.subjects.index).isdisjoint(strong + control)

    new = check_new_models(bank, data.select(subjects=strong), seed=0)
    advice = advise(None, new)
    assert advice.decision == "refit", str(advice)
    t = new.table
    assert advice.n_new_models_beyond == int((t["p_above_calibration"] >= 0.9).sum()) >= 3
    assert (t.loc[strong[-3:], "theta_mean"] > cal_max).all()  # the top 3 at least
    assert "above every calibration subject" in advice.reasons[0]
    # ChemBench is not saturated: nobody is at the ceiling; the trigger is the range
    assert advice.n_new_models_at_ceiling == 0
    off = advise(None, new, thresholds=RefitThresholds(beyond_share=None))
    assert off.decision == "keep"

    ctrl = check_new_models(bank, data.select(subjects=control), seed=0)
    keep = advise(None, ctrl)
    assert keep.decision == "keep", str(keep)
    assert keep.n_new_models_beyond == 0 and keep.n_new_models_at_ceiling == 0
    assert (ctrl.table["p_above_calibration"] < 0.01).all()
