"""JSON and text formatting of reports: the helpers the bank and the upkeep reports share.

:func:`nan_to_none` and :func:`plain` turn numpy scalars into values :mod:`json` writes
(NaN as ``null``), :func:`records` does it for every row of a table, and :func:`join_ids`
lists ids in a message without printing thousands of them. Error messages about input
data list their ids with :func:`fluid_bayes.data.report.show_ids` instead (quoted, with
the total count).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["join_ids", "nan_to_none", "plain", "records"]

_SHOW = 10  # how many ids join_ids lists before "... and N more"


def nan_to_none(v: Any) -> float | None:
    """Return ``v`` as a Python float, or None when it is None or NaN.

    Parameters
    ----------
    v : float, numpy floating or integer, or None
        A number.

    Returns
    -------
    float or None
        ``float(v)``; None for None and NaN (JSON ``null``).
    """
    if v is None:
        return None
    v = float(v)
    return None if np.isnan(v) else v


def plain(v: Any) -> Any:
    """Return a JSON-able scalar: numpy bools and integers as Python ones, NaN as None.

    Parameters
    ----------
    v : Any
        A scalar, numpy or Python.

    Returns
    -------
    bool, int, float, None or ``v``
        Booleans as ``bool``, integers as ``int``, floats as :func:`nan_to_none` gives
        them; anything else unchanged.
    """
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return nan_to_none(v)
    return v


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a table's rows as JSON-able dicts (NaN as None, numpy scalars as Python ones).

    Parameters
    ----------
    df : pandas.DataFrame
        The table; its index is the row id.

    Returns
    -------
    list of dict
        One dict per row: the index under its name (``"id"`` when unnamed), as a string,
        then every column's value through :func:`plain`.
    """
    return [{df.index.name or "id": str(idx), **{k: plain(v) for k, v in row.items()}}
            for idx, row in df.iterrows()]  # fmt: skip


def join_ids(ids: Iterable[Any]) -> str:
    """List ids for a message: the first 10, then a count of the rest.

    Parameters
    ----------
    ids : iterable
        Item or subject ids.

    Returns
    -------
    str
        ``"a, b, c"``, or ``"a, ..., j ... and N more"`` past 10 ids.
    """
    ids = list(ids)
    more = f" ... and {len(ids) - _SHOW} more" if len(ids) > _SHOW else ""
    return ", ".join(str(i) for i in ids[:_SHOW]) + more
