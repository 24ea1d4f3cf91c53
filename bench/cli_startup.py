"""Time the start-up of the ``orb`` command: the median wall time of ``orb --help`` and of
``orb --version`` over N runs, each a fresh process (what a user or a script waits for).
The CLI imports a command's module only when it runs, so both should stay well under a
second. Prints the figures.

    .venv/bin/python bench/cli_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ORB = Path(sys.executable).with_name("orb")


def median_seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(ORB), *args], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    for args in (["--help"], ["--version"]):
        print(f"orb {' '.join(args):<10} median {median_seconds(args, runs):.3f} s "
              f"over {runs} runs")


if __name__ == "__main__":
    main()
