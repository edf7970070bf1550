"""Wall time of ``fluid-bayes --help`` (and, optionally, of each command's ``--help``).

Run on demand: ``python benchmarks/cli_help.py [--repeats 5] [--commands]``. Each
measurement starts a fresh interpreter (``python -m fluid_bayes ...``) so it includes
the imports the parser needs; the median over the repeats is printed in seconds.
Target: under 0.5 s (the parser must import no PyMC, PyTensor, JAX or ArviZ).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

__all__ = ["COMMANDS", "main", "time_help"]

COMMANDS = (
    "calibrate",
    "bank",
    "evaluate",
    "demo",
    "experiment",
    "simulate",
    "mislabels",
    "diagnose",
    "refit",
    "drift",
)


def time_help(args: list[str], *, repeats: int = 5) -> float:
    """Median wall time of ``python -m fluid_bayes ARGS --help``.

    Parameters
    ----------
    args : list of str
        The command words before ``--help`` (empty for the top-level help).
    repeats : int, default 5
        Number of fresh interpreters to time.

    Returns
    -------
    float
        The median wall time in seconds.
    """
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fluid_bayes", *args, "--help"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    """Print the median ``--help`` wall time, in seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--commands", action="store_true", help="time every command's --help as well"
    )
    args = parser.parse_args(argv)
    rows = [("fluid-bayes --help", time_help([], repeats=args.repeats))]
    if args.commands:
        for cmd in COMMANDS:
            rows.append((f"fluid-bayes {cmd} --help", time_help([cmd], repeats=args.repeats)))
    for name, seconds in rows:
        print(f"{name:<34} {seconds:6.2f} s (median of {args.repeats})")


if __name__ == "__main__":
    main()
