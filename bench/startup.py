"""How fast does kservectl start? `kservectl --help` and `kservectl version` (median of N runs)
beside, in the same run, a bare interpreter and an eager import of boto3 + kubernetes + mlflow
(what the CLI would cost if it imported its libraries up front).

Target (foundation issue): `kservectl --help` median <= 0.20 s on a 2-core machine.
Run: .venv/bin/python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(argv: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    exe = shutil.which("kservectl", path=str(Path(sys.executable).parent)) or "kservectl"
    py = sys.executable
    cases = [
        ("python -c pass (interpreter floor)", [py, "-c", "pass"], args.runs),
        ("kservectl --help", [exe, "--help"], args.runs),
        ("kservectl version", [exe, "version"], args.runs),
        ("kservectl serve --help", [exe, "serve", "--help"], args.runs),
        ("eager import boto3+kubernetes+mlflow (baseline)", [py, "-c", "import boto3, kubernetes, mlflow"], 3),
    ]
    timed([exe, "--help"], 2)  # warm the page cache
    print(f"{'case':<52} {'median':>8} {'min':>8} {'runs':>5}")
    results = {}
    for name, argv, runs in cases:
        samples = timed(argv, runs)
        results[name] = statistics.median(samples)
        print(f"{name:<52} {statistics.median(samples):>7.3f}s {min(samples):>7.3f}s {runs:>5}")
    helpm = results["kservectl --help"]
    eager = results["eager import boto3+kubernetes+mlflow (baseline)"]
    verdict = "meets" if helpm <= 0.20 else "MISSES"
    print(f"\nkservectl --help median {helpm:.3f}s {verdict} the 0.20 s target; "
          f"{eager / helpm:.0f}x faster than importing its libraries eagerly ({eager:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
