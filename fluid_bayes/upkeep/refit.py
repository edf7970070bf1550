"""Refit a bank on its calibration answers plus new models', linked to the old scale.

Steps:

1. old answers: the bank's stored calibration answers (:attr:`ItemBank.observed_data`;
   banks fitted by this package store them) or ``old_data`` (checked against the
   bank's data fingerprint);
2. combined matrix: old subjects then new ones, over the union of items (an item only
   one side answered is missing for the other). New subjects that are already
   calibration subjects follow ``duplicates``: ``"error"`` (default; a refit must not
   count a model twice), ``"replace"`` (the new answers replace the old ones) or
   ``"skip"`` (the old answers are kept); whichever, the report lists them;
3. the same model specification as the old bank (priors, likelihood, grouping) is
   fitted to it;
4. the new bank is linked onto the old scale on the common items
   (:func:`fluid_bayes.upkeep.drift.link`, per posterior draw, with purification of drifting
   items) and mapped there (:func:`fluid_bayes.upkeep.drift.apply_linking`); its lineage
   records the parent bank, the linking constants and what was added.

Linking rather than anchoring: the joint model defines its scale by its calibration
sample (abilities of mean 0 and SD 1), and adding stronger models moves that sample;
fixing item parameters instead would deny the refit the chance to show drift.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from fluid_bayes.data.responses import ResponseMatrix, from_array
from fluid_bayes.exceptions import BankError, DataError

__all__ = ["DUPLICATE_POLICIES", "RefitResult", "combine_answers", "refit"]

DUPLICATE_POLICIES = ("error", "replace", "skip")


@dataclass(frozen=True)
class RefitResult:
    """A refitted, linked bank and what went into it.

    Attributes
    ----------
    bank : ItemBank
        The new bank on the old bank's scale (with its calibration answers stored).
    unlinked : ItemBank
        The refit on its own scale (before linking).
    linking : Linking
        Constants ``theta_old = A theta_new + B`` with their draws.
    added_subjects, added_items, duplicates : tuple of str
        New subjects, items not in the old bank, and subjects present on both sides.
    duplicate_policy : str
        What was done with the duplicates.
    """

    bank: Any
    unlinked: Any
    linking: Any
    added_subjects: tuple[str, ...]
    added_items: tuple[str, ...]
    duplicates: tuple[str, ...]
    duplicate_policy: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "bank": self.bank.config_hash,
            "parent": self.linking.to_dict().get("old_bank"),
            "linking": self.linking.to_dict(),
            "added_subjects": list(self.added_subjects),
            "added_items": list(self.added_items),
            "duplicates": list(self.duplicates),
            "duplicate_policy": self.duplicate_policy,
            "convergence": self.bank.convergence.to_dict(),
        }

    def __str__(self) -> str:
        lines = [
            f"refit {self.bank.config_hash}: {len(self.added_subjects)} new subject(s), "
            f"{len(self.added_items)} new item(s); linked onto the old scale:",
            "  " + str(self.linking).replace("\n", "\n  "),
        ]
        if self.duplicates:
            lines.append(f"  {len(self.duplicates)} subject(s) were already in the bank "
                         f"({self.duplicate_policy}): "
                         f"{', '.join(self.duplicates[:5])}")  # fmt: skip
        lines.append("  " + str(self.bank.convergence).replace("\n", "\n  "))
        return "\n".join(lines)


def combine_answers(
    old: ResponseMatrix, new: ResponseMatrix, *, duplicates: str = "error"
) -> tuple[ResponseMatrix, tuple[str, ...], tuple[str, ...]]:
    """Old then new subjects over the union of items (missing where not answered).

    Returns
    -------
    combined : ResponseMatrix
    repeated : tuple of str
        Subjects on both sides (handled by ``duplicates``).
    added_items : tuple of str
        Items only the new data has.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
    old_subjects, old_items = set(old.subjects), set(old.items)
    if not old_items & set(new.items):
        raise DataError(f"{new.report.source}: none of its {new.n_items} items is in the bank")
    repeated = tuple(s for s in new.subjects if s in old_subjects)
    if repeated and duplicates == "error":
        raise DataError(
            f"{new.report.source}: {len(repeated)} subject(s) are already calibration subjects "
            f"of the bank: {', '.join(repeated[:5])} (drop them, or choose duplicates="
            "'replace' or 'skip')"
        )
    keep_old = [s for s in old.subjects if not (duplicates == "replace" and s in repeated)]
    keep_new = [s for s in new.subjects if not (duplicates == "skip" and s in repeated)]
    if not keep_new:
        raise DataError(f"{new.report.source}: no new subject left to add")
    added_items = tuple(i for i in new.items if i not in old_items)
    items = list(old.items) + list(added_items)
    col = {i: k for k, i in enumerate(items)}
    values = np.full((len(keep_old) + len(keep_new), len(items)), np.nan)
    o = old.select(subjects=keep_old)
    values[: len(keep_old), [col[i] for i in o.items]] = o.values
    n = new.select(subjects=keep_new)
    values[len(keep_old) :, [col[i] for i in n.items]] = n.values
    combined = from_array(
        values, subjects=keep_old + keep_new, items=items,
        source=f"bank calibration answers + {new.report.source}",
    )  # fmt: skip
    return combined, repeated, added_items


def refit(
    bank,
    new_data: ResponseMatrix,
    *,
    old_data: ResponseMatrix | None = None,
    duplicates: str = "error",
    link_method: str = "mean-sigma",
    **fit_options: Any,
) -> RefitResult:
    """Recalibrate on old plus new answers and link the result to the old scale.

    Parameters
    ----------
    bank : ItemBank
        The bank to refresh.
    new_data : ResponseMatrix
        Answers of the new models.
    old_data : ResponseMatrix, optional
        The bank's calibration answers, when the bank does not store them (checked
        against its data fingerprint).
    duplicates : {"error", "replace", "skip"}
        New subjects already in the bank (see the module docstring).
    link_method : {"mean-sigma", "stocking-lord"}
        Linking method (:func:`fluid_bayes.upkeep.drift.link`).
    **fit_options
        Passed to :meth:`HierarchicalTwoPL.fit` (``draws``, ``tune``, ``chains``,
        ``seed``, ``sampler``, ...).

    Returns
    -------
    RefitResult
    """
    from fluid_bayes.bank import bank_hash
    from fluid_bayes.calibration.model import HierarchicalTwoPL
    from fluid_bayes.upkeep.drift import apply_linking, link

    if old_data is not None:
        bank = bank.with_observed(old_data)  # verifies the fingerprint
    old = bank.observed_data
    if old is None:
        raise BankError(
            "the bank does not store its calibration answers (banks fitted before they were "
            "stored); pass old_data= (CLI: --old-data) with the answers it was fitted on"
        )
    combined, repeated, added_items = combine_answers(old, new_data, duplicates=duplicates)
    spec = HierarchicalTwoPL.from_dict(bank.meta.config)
    if spec.group_by is not None:
        meta = bank.item_meta
        missing = [i for i in combined.items if i not in meta.index]
        if missing:
            raise DataError(f"the bank groups items by {spec.group_by!r}, but new item(s) "
                            f"{', '.join(missing[:5])} have no group")  # fmt: skip
        combined = combined.with_item_meta(meta.loc[list(combined.items)], source="bank items")
    unlinked = spec.fit(combined, **fit_options)
    linking = link(bank, unlinked, method=link_method)
    linked = apply_linking(unlinked, linking)
    added = tuple(s for s in new_data.subjects if s not in repeated)
    lineage = dict(linked.meta.lineage)
    lineage.update({"refit_of": bank.config_hash, "added_subjects": len(added),
                    "added_items": len(added_items), "duplicates": list(repeated),
                    "duplicate_policy": duplicates})  # fmt: skip
    meta = dataclasses.replace(
        linked.meta, lineage=lineage,
        config_hash=bank_hash({**linked.meta.config, "lineage": lineage},
                              linked.meta.data_fingerprint),
    )  # fmt: skip
    linked = dataclasses.replace(linked, meta=meta).with_observed(combined)
    return RefitResult(linked, unlinked, linking, added, added_items, repeated, duplicates)
