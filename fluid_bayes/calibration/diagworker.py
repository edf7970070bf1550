"""R-hat and bulk/tail ESS of a block of parameters, computed by ArviZ.

:func:`fluid_bayes.calibration.diagnostics.check_convergence` calls :func:`per_parameter` on its own
block and runs this file as a script on the other blocks, one process per core:
ArviZ's rank normalization loops over parameters in Python and holds the GIL, so on
thousands of item parameters (22 s for ChemBench's 5,730) processes are the only way to
use a second core. Run as a script (``python diagworker.py IN.npy OUT.npy``) the child
imports only numpy, xarray and ArviZ: not fluid_bayes, and not the caller's ``__main__``
(which :mod:`multiprocessing`'s spawn would re-run).
"""

from __future__ import annotations

import sys

import arviz_stats as azs
import numpy as np
import xarray as xr

__all__ = ["per_parameter"]


def per_parameter(values: np.ndarray) -> np.ndarray:
    """Rank-normalized split R-hat, bulk ESS and tail ESS of each parameter.

    Parameters
    ----------
    values : numpy.ndarray
        Draws, shape ``(chain, draw, parameter)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(3, parameter)``: R-hat, bulk ESS, tail ESS.
    """
    # the dims are ArviZ's default sample dims (fluid_bayes.dims.CHAIN, DRAW)
    da = xr.DataArray(values, dims=("chain", "draw", "parameter"))
    return np.stack(
        [
            np.asarray(azs.rhat(da).values, dtype=float),
            np.asarray(azs.ess(da, method="bulk").values, dtype=float),
            np.asarray(azs.ess(da, method="tail").values, dtype=float),
        ]
    )


if __name__ == "__main__":
    np.save(sys.argv[2], per_parameter(np.load(sys.argv[1])))
