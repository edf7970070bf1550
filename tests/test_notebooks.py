"""Execute every notebook in notebooks/ with small sampler sizes; any cell error fails.

Outputs of a saved notebook are not trusted: each one is re-executed here, top to
bottom, in a fresh kernel (pymc-marketing's ``scripts/run_notebooks`` approach). The
notebooks read their sampler sizes from ``FB_NB_DRAWS`` / ``FB_NB_TUNE``; the kernel
inherits this process's environment, so setting them here makes the runs small.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT_S = 600
SMALL_RUN = {"FB_NB_DRAWS": "100", "FB_NB_TUNE": "100", "FB_NB_QUICK": "1", "MPLBACKEND": "Agg"}


def _ensure_kernel() -> None:
    """Install the ``python3`` kernel spec into this environment if it lacks one.

    A fresh virtual environment (``make setup`` on CI) has ipykernel but no kernel spec;
    one in ``sys.prefix`` runs this interpreter and is found before user-level specs.
    """
    spec = Path(sys.prefix, "share", "jupyter", "kernels", KERNEL, "kernel.json")
    if not spec.is_file():
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix, kernel_name=KERNEL)


def test_notebooks_found() -> None:
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    for name, value in SMALL_RUN.items():
        monkeypatch.setenv(name, value)
    _ensure_kernel()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback
