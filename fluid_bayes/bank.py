"""The item bank: item-parameter posterior draws plus provenance, saved as netCDF.

A bank is a labelled :class:`xarray.DataTree` with groups

``posterior``
    ``a`` and ``b`` (dims ``chain, draw, item``), the calibration abilities
    ``theta`` (``chain, draw, subject``) and the hyperparameters. Point banks
    (imported ``item_id,a,b`` tables) have one chain and one draw.
``sample_stats``
    The sampler's statistics (divergences, energy, step size), when sampled.
``items``
    Item metadata columns (dim ``item``), e.g. the MMLU subject.
``subjects``
    The calibration subjects' ability summaries and accuracies (dim ``subject``).
``observed``
    Optional: the calibration answers (``int8``, dims ``subject, item``; 1 right,
    0 wrong, -1 missing), attached by :meth:`ItemBank.with_observed`; model checks
    (:mod:`fluid_bayes.upkeep.checking`) and refits read them back as
    :attr:`ItemBank.observed_data`.

and the provenance in :class:`BankMeta` (root attributes, JSON). Files are written
atomically and never pickled; a file of another format or version is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from fluid_bayes.calibration.diagnostics import ConvergenceReport
from fluid_bayes.data.responses import ResponseMatrix
from fluid_bayes.dims import BANK_FORMAT, BANK_FORMAT_VERSION, CHAIN, DRAW, HDI_PROB, ITEM, SUBJECT
from fluid_bayes.exceptions import BankError
from fluid_bayes.reporting import nan_to_none

__all__ = ["BankMeta", "ItemBank", "bank_hash", "items_dataset"]

_META_ATTR = "fluid_bayes_meta"
_OBSERVED = "observed"


def _package_version() -> str:
    from fluid_bayes import __version__

    return __version__


@dataclass(frozen=True)
class BankMeta:
    """Provenance of a bank, stored as JSON in the file's root attributes.

    Attributes
    ----------
    model_type : str
        ``"hierarchical-2pl"`` or ``"point-2pl"`` (imported point estimates).
    kind : str
        ``"posterior"`` (MCMC draws), ``"approximate"`` (ADVI) or ``"point"``.
    config : dict
        Model configuration (priors, likelihood, grouping); see ``config_hash``.
    config_hash : str
        Hash of the configuration *and* the data fingerprint: the bank's identity.
    data_fingerprint : str
        SHA-256 of the calibration answers (ids and values).
    sampler : dict
        Sampler name, draws, tune, chains, seed, likelihood actually used.
    convergence : dict
        :class:`~fluid_bayes.calibration.diagnostics.ConvergenceReport` as a dict.
    data_report : dict
        What the reader reported (threshold, constant items, dropped subjects).
    source : str
        Where the calibration data came from.
    package_version, created : str
        fluid_bayes version and UTC time of creation.
    lineage : dict
        Parent bank and linking constants after a refit (empty for a first fit).
    """

    model_type: str
    kind: str
    config: dict[str, Any]
    config_hash: str
    data_fingerprint: str
    sampler: dict[str, Any]
    convergence: dict[str, Any]
    data_report: dict[str, Any]
    source: str
    package_version: str = field(default_factory=_package_version)
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    lineage: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Canonical JSON of every field."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=_json_default)

    @classmethod
    def from_json(cls, text: str) -> BankMeta:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(d)
        if missing:
            raise BankError(f"bank metadata lacks {sorted(missing)}")
        return cls(**{k: d[k] for k in names})


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def bank_hash(config: dict[str, Any], fingerprint: str) -> str:
    """Identity of a bank: hash of its configuration and its data fingerprint."""
    blob = json.dumps({"config": config, "data": fingerprint}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ItemBank:
    """Posterior of item parameters with provenance.

    Build one with :meth:`fluid_bayes.calibration.model.HierarchicalTwoPL.fit`,
    :meth:`from_point_params` or :meth:`load`. Immutable: no per-session state.
    """

    tree: xr.DataTree
    meta: BankMeta

    # ----------------------------------------------------------- accessors
    @property
    def posterior(self) -> xr.Dataset:
        """The posterior group as a Dataset (``a``, ``b``, ``theta``, hyperparameters)."""
        return self.tree["posterior"].to_dataset()

    @property
    def a(self) -> xr.DataArray:
        """Discrimination draws, dims ``(chain, draw, item)``."""
        return self.posterior["a"]

    @property
    def b(self) -> xr.DataArray:
        """Difficulty draws on the ability scale, dims ``(chain, draw, item)``."""
        return self.posterior["b"]

    @property
    def items(self) -> tuple[str, ...]:
        """Item ids in bank order."""
        return tuple(str(i) for i in self.posterior[ITEM].values)

    @property
    def n_items(self) -> int:
        """Number of items."""
        return self.posterior.sizes[ITEM]

    @property
    def n_draws(self) -> int:
        """Total posterior draws (chains x draws)."""
        return self.posterior.sizes[CHAIN] * self.posterior.sizes[DRAW]

    @property
    def is_point(self) -> bool:
        """True for banks of imported point estimates (one draw)."""
        return self.meta.kind == "point"

    @property
    def config_hash(self) -> str:
        """The bank's identity (configuration and data)."""
        return self.meta.config_hash

    @property
    def convergence(self) -> ConvergenceReport:
        """Convergence diagnostics of the calibration fit."""
        return ConvergenceReport.from_dict(self.meta.convergence)

    @property
    def item_meta(self) -> pd.DataFrame:
        """Item metadata (index ``item``); empty columns when none was given."""
        if "items" not in self.tree.children:
            return pd.DataFrame(index=pd.Index(self.items, name=ITEM))
        return self.tree["items"].to_dataset().to_dataframe()

    @property
    def subjects(self) -> pd.DataFrame:
        """Calibration subjects' ability summaries (mean, sd, 94% HDI) and accuracy."""
        if "subjects" not in self.tree.children:
            return pd.DataFrame(index=pd.Index([], name=SUBJECT))
        return self.tree["subjects"].to_dataset().to_dataframe()

    @property
    def observed_data(self) -> ResponseMatrix | None:
        """The calibration answers stored by :meth:`with_observed` (None when absent).

        Returns
        -------
        ResponseMatrix or None
            Same subjects, items (in the calibration data's order) and answers as the
            data the bank was fitted on: its ``fingerprint()`` equals
            ``meta.data_fingerprint``.
        """
        if _OBSERVED not in self.tree.children:
            return None
        da = self.tree[_OBSERVED].to_dataset()["answer"]
        codes = np.asarray(da.transpose(SUBJECT, ITEM).values)
        values = np.where(codes < 0, np.nan, codes.astype(np.float64))
        data = ResponseMatrix(
            values=values,
            subjects=tuple(str(s) for s in da[SUBJECT].values),
            items=tuple(str(i) for i in da[ITEM].values),
        )
        report = dataclasses.replace(data.report, source=f"{self.meta.source} (in the bank)")
        return dataclasses.replace(data, report=report)

    def with_observed(self, data: ResponseMatrix) -> ItemBank:
        """A copy of the bank that also stores its calibration answers.

        Parameters
        ----------
        data : ResponseMatrix
            The answers the bank was fitted on: its fingerprint must equal
            ``meta.data_fingerprint``.

        Returns
        -------
        ItemBank
            Same posterior and metadata, plus the ``observed`` group (``int8``,
            -1 = missing), which :meth:`save` and :meth:`load` round-trip.

        Raises
        ------
        BankError
            The fingerprints differ, or the data's items (or subjects, when the bank
            has calibration abilities) are not the bank's.
        """
        fp = data.fingerprint()
        if fp != self.meta.data_fingerprint:
            raise BankError(
                f"{data.report.source}: these answers (fingerprint {fp[:16]}...) are not the "
                f"bank's calibration data (bank data_fingerprint "
                f"{self.meta.data_fingerprint[:16]}...)"
            )
        if set(data.items) != set(self.items) or data.n_items != self.n_items:
            raise BankError(
                f"{data.report.source}: items differ from the bank's "
                f"({data.n_items} in the data, {self.n_items} in the bank)"
            )
        post = self.posterior
        if SUBJECT in post.dims:
            bank_subjects = {str(s) for s in post[SUBJECT].values}
            if set(data.subjects) != bank_subjects or data.n_subjects != len(bank_subjects):
                raise BankError(
                    f"{data.report.source}: subjects differ from the bank's calibration "
                    f"subjects ({data.n_subjects} in the data, {len(bank_subjects)} in the bank)"
                )
        codes = np.where(np.isnan(data.values), -1, data.values).astype(np.int8)
        observed = xr.Dataset(
            {"answer": ((SUBJECT, ITEM), codes)},
            coords={SUBJECT: list(data.subjects), ITEM: list(data.items)},
        )
        groups = {name: node.to_dataset() for name, node in self.tree.children.items()}
        groups[_OBSERVED] = observed
        return ItemBank(tree=xr.DataTree.from_dict(groups), meta=self.meta)

    def point_estimates(self) -> pd.DataFrame:
        """Posterior means of ``a`` and ``b`` per item (what the paper's method uses)."""
        post = self.posterior
        return pd.DataFrame(
            {
                "a": post["a"].mean((CHAIN, DRAW)).values,
                "b": post["b"].mean((CHAIN, DRAW)).values,
            },
            index=pd.Index(self.items, name=ITEM),
        )

    # -------------------------------------------------------------- summary
    def summary(self) -> pd.DataFrame:
        """Per-item posterior mean, SD and 94% HDI of ``a`` and ``b``.

        Returns
        -------
        pandas.DataFrame
            Index ``item``; columns ``a_mean, a_sd, a_hdi_low, a_hdi_high, b_mean,
            b_sd, b_hdi_low, b_hdi_high`` (``b`` on the ability scale).
        """
        post = self.posterior[["a", "b"]]
        mean = post.mean((CHAIN, DRAW))
        sd = post.std((CHAIN, DRAW), ddof=1) if self.n_draws > 1 else post.mean((CHAIN, DRAW)) * 0
        if self.n_draws > 1:
            hdi = az.hdi(post, prob=HDI_PROB)
            low, high = hdi.sel(ci_bound="lower"), hdi.sel(ci_bound="upper")
        else:
            low = high = mean
        cols = {}
        for v in ("a", "b"):
            cols[f"{v}_mean"] = mean[v].values
            cols[f"{v}_sd"] = sd[v].values
            cols[f"{v}_hdi_low"] = low[v].values
            cols[f"{v}_hdi_high"] = high[v].values
        return pd.DataFrame(cols, index=pd.Index(self.items, name=ITEM))

    def summary_dict(self) -> dict[str, Any]:
        """The JSON summary: sizes, diagnostics, provenance and the item table."""
        conv = self.meta.convergence
        table = self.summary().reset_index()
        return {
            "model_type": self.meta.model_type,
            "kind": self.meta.kind,
            "config_hash": self.meta.config_hash,
            "data_fingerprint": self.meta.data_fingerprint,
            "package_version": self.meta.package_version,
            "source": self.meta.source,
            "likelihood": self.meta.sampler.get("likelihood"),
            "sampler": self.meta.sampler.get("sampler"),
            "n_items": self.n_items,
            "n_subjects": int(self.meta.sampler.get("n_subjects", 0)),
            "constant_items_integrated": int(self.meta.sampler.get("constant_items_integrated", 0)),
            "chains": int(self.posterior.sizes[CHAIN]),
            "draws": int(self.posterior.sizes[DRAW]),
            "max_rhat": nan_to_none(conv.get("max_rhat")),
            "min_ess_bulk": nan_to_none(conv.get("min_ess_bulk")),
            "min_ess_tail": nan_to_none(conv.get("min_ess_tail")),
            "divergences": int(conv.get("divergences", 0)),
            "min_bfmi": nan_to_none(conv.get("min_bfmi")),
            "converged": bool(conv.get("ok", False)),
            "items": json.loads(table.to_json(orient="records", double_precision=15)),
        }

    def __str__(self) -> str:
        d = self.summary_dict()
        s = self.summary()
        lines = [
            f"item bank {d['config_hash']} ({d['model_type']}, {d['kind']}, "
            f"likelihood {d['likelihood']}) from {d['source']}",
            f"  {d['n_items']} items, {d['n_subjects']} calibration subjects, "
            f"{d['chains']} chains x {d['draws']} draws ({d['sampler']})",
            *(
                [f"  {n} constant items integrated out while sampling, drawn exactly afterwards"]
                if (n := d["constant_items_integrated"])
                else []
            ),
            "  " + str(self.convergence).replace("\n", "\n  "),
            f"  a: median of posterior means {s['a_mean'].median():.3f} "
            f"(range {s['a_mean'].min():.3f} .. {s['a_mean'].max():.3f})",
            f"  b: median of posterior means {s['b_mean'].median():.3f} "
            f"(range {s['b_mean'].min():.3f} .. {s['b_mean'].max():.3f})",
        ]
        subj = self.subjects
        if len(subj):
            top = subj.sort_values("theta_mean", ascending=False)
            lines.append("  calibration abilities (mean +- sd, accuracy):")
            for name, row in top.head(10).iterrows():
                sd = f" +- {row['theta_sd']:.3f}" if "theta_sd" in row else ""
                acc = f"  acc {row['accuracy']:.3f}" if "accuracy" in row else ""
                lines.append(f"    {str(name)[:40]:<40} {row['theta_mean']:+.3f}{sd}{acc}")
            if len(top) > 10:
                lines.append(f"    ... and {len(top) - 10} more")
        return "\n".join(lines)

    def thinned(self, step: int) -> ItemBank:
        """Keep every ``step``-th draw of each chain (for compact shipped banks).

        The convergence diagnostics stay those of the full fit; the thinning is
        recorded in ``meta.sampler["thinned_by"]``.
        """
        if step < 1:
            raise ValueError(f"thinning step must be >= 1, got {step}")
        groups = {}
        for name, node in self.tree.children.items():
            ds = node.to_dataset()
            groups[name] = ds.isel({DRAW: slice(None, None, step)}) if DRAW in ds.dims else ds
        prior = int(self.meta.sampler.get("thinned_by", 1))
        meta = dataclasses.replace(
            self.meta, sampler={**self.meta.sampler, "thinned_by": prior * step}
        )
        return ItemBank(tree=xr.DataTree.from_dict(groups), meta=meta)

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | Path, *, float32: bool = False) -> Path:
        """Write the bank to netCDF atomically (temporary file, then rename).

        Parameters
        ----------
        path : str or Path
            Target file; its folder is created.
        float32 : bool
            Store posterior draws in single precision (half the size; draws carry
            Monte Carlo error far above float32 rounding). They are read back as
            float64. Recorded in the file.

        Returns
        -------
        pathlib.Path
            The written path.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tree = self.tree.copy()
        if float32:
            _cast_posterior(tree, np.float64, np.float32)
        tree.attrs = {
            "format": BANK_FORMAT,
            "format_version": BANK_FORMAT_VERSION,
            "storage": "float32" if float32 else "float64",
            _META_ATTR: self.meta.to_json(),
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            tree.to_netcdf(tmp, engine="h5netcdf")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ItemBank:
        """Read a bank written by :meth:`save`.

        Raises
        ------
        BankError
            The file is missing, not netCDF, not a fluid_bayes bank, or of another
            format version.
        """
        path = Path(path)
        if not path.is_file():
            raise BankError(f"{path}: no such bank file")
        try:
            with xr.open_datatree(path, engine="h5netcdf") as handle:
                tree = handle.load()
        except (OSError, ValueError) as exc:
            raise BankError(f"{path}: not a netCDF item bank ({exc})") from exc
        attrs = tree.attrs
        if attrs.get("format") != BANK_FORMAT:
            raise BankError(
                f"{path}: not a fluid_bayes item bank (format attribute "
                f"{attrs.get('format')!r}, expected {BANK_FORMAT!r})"
            )
        version = int(attrs.get("format_version", -1))
        if version != BANK_FORMAT_VERSION:
            raise BankError(
                f"{path}: bank format version {version}, this fluid_bayes "
                f"({_package_version()}) reads version {BANK_FORMAT_VERSION} only; "
                "recalibrate or use the fluid_bayes version that wrote it"
            )
        try:
            meta = BankMeta.from_json(attrs[_META_ATTR])
        except (KeyError, json.JSONDecodeError, TypeError) as exc:
            raise BankError(f"{path}: bank metadata unreadable ({exc})") from exc
        if attrs.get("storage") == "float32":
            _cast_posterior(tree, np.float32, np.float64)
        tree.attrs = {}
        if "posterior" not in tree.children or not {"a", "b"} <= set(tree["posterior"].data_vars):
            raise BankError(f"{path}: bank has no posterior of a and b")
        return cls(tree=tree, meta=meta)

    # ---------------------------------------------------------- point banks
    @classmethod
    def from_point_params(
        cls, params: pd.DataFrame, *, source: str = "point parameters"
    ) -> ItemBank:
        """A bank whose posterior is given point estimates (one chain, one draw).

        Parameters
        ----------
        params : pandas.DataFrame
            Index item ids; columns ``a`` and ``b`` (ability scale). Extra columns
            are kept as item metadata. Use
            :func:`fluid_bayes.data.readers.read_point_params` for files.
        source : str
            Recorded provenance.
        """
        a = params["a"].to_numpy(float)[None, None, :]
        b = params["b"].to_numpy(float)[None, None, :]
        extra = params.drop(columns=["a", "b"])
        return cls.from_draws(
            a, b, items=[str(i) for i in params.index], source=source, kind="point",
            item_meta=extra if len(extra.columns) else None,
        )  # fmt: skip

    @classmethod
    def from_draws(
        cls,
        a: np.ndarray,
        b: np.ndarray,
        *,
        items: list[str],
        source: str,
        kind: str = "synthetic",
        item_meta: pd.DataFrame | None = None,
        calibration_theta: pd.Series | None = None,
    ) -> ItemBank:
        """A bank from given draws of ``a`` and ``b``, shape ``(chain, draw, item)``.

        For imported point estimates (``kind="point"``, one draw) and for banks drawn
        by simulation (``kind="synthetic"``: no sampler, no diagnostics).

        Parameters
        ----------
        a, b : numpy.ndarray
            Discrimination (> 0) and difficulty draws on the ability scale.
        items : list of str
            Item ids.
        source : str
            Recorded provenance.
        kind : {"synthetic", "point"}
            What the draws are.
        item_meta : pandas.DataFrame, optional
            Item metadata indexed by item id.
        calibration_theta : pandas.Series, optional
            Abilities of the calibration subjects (index subject ids); they set the
            default start ability and the ``auto`` stopping threshold of sessions.
        """
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        if a.ndim != 3 or a.shape != b.shape or a.shape[2] != len(items):
            raise BankError(f"a and b must both be (chain, draw, {len(items)}), got "
                            f"{a.shape} and {b.shape}")  # fmt: skip
        if not (np.isfinite(a).all() and np.isfinite(b).all() and (a > 0).all()):
            raise BankError("a must be finite and positive and b finite")
        post = xr.Dataset(
            {"a": ((CHAIN, DRAW, ITEM), a), "b": ((CHAIN, DRAW, ITEM), b)},
            coords={CHAIN: np.arange(a.shape[0]), DRAW: np.arange(a.shape[1]), ITEM: items},
        )
        groups = {"posterior": post}
        if item_meta is not None:
            groups["items"] = items_dataset(item_meta)
        if calibration_theta is not None:
            th = calibration_theta.astype(float)
            groups["subjects"] = xr.Dataset(
                {"theta_mean": (SUBJECT, th.to_numpy())},
                coords={SUBJECT: [str(s) for s in th.index]},
            )
        digest = hashlib.sha256("\n".join(items).encode())
        digest.update(np.ascontiguousarray(a))
        digest.update(np.ascontiguousarray(b))
        fingerprint = digest.hexdigest()
        model_type = "point-2pl" if kind == "point" else "synthetic-2pl"
        config = {"model_type": model_type}
        nan = float("nan")
        conv = ConvergenceReport(nan, nan, nan, 0, nan, (), sampler=kind, approximate=True)
        meta = BankMeta(
            model_type=model_type,
            kind=kind,
            config=config,
            config_hash=bank_hash(config, fingerprint),
            data_fingerprint=fingerprint,
            sampler={"sampler": kind, "likelihood": None,
                     "n_subjects": 0 if calibration_theta is None else len(calibration_theta)},
            convergence=conv.to_dict(),
            data_report={},
            source=source,
        )  # fmt: skip
        return cls(tree=xr.DataTree.from_dict(groups), meta=meta)


def _cast_posterior(tree: xr.DataTree, source: type, target: type) -> None:
    """Cast the posterior's ``source``-typed variables to ``target`` in place."""
    post = tree["posterior"].to_dataset()
    tree["posterior"] = xr.DataTree(
        post.map(lambda v: v.astype(target) if v.dtype == source else v)
    )


def items_dataset(meta: pd.DataFrame) -> xr.Dataset:
    """Item metadata as the bank's ``items`` group, on dim ``item`` (strings kept as strings)."""
    df = meta.copy()
    df.index = pd.Index([str(i) for i in df.index], name=ITEM)
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype(str)
    return xr.Dataset.from_dataframe(df)
