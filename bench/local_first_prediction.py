"""Time to first successful prediction with the local provider (target: <= 60 s from an
installed venv on a 2-core machine), beside baselines measured in the same run: how long the
bare `mlflow` and `mlserver` executables take just to start and print their version.

`kservectl up --provider local` returns only after its test passed (V2 infer and /invocations
answered with as many predictions as rows sent), so its wall time is the time to first
prediction. Runs in a temporary KSERVECTL_HOME and cleans up after itself (`kservectl cleanup
--provider local --yes --delete-data` in that home, then the folder is removed).
Run: .venv/bin/python bench/local_first_prediction.py
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def main() -> int:
    home = tempfile.mkdtemp(prefix="kservectl-bench-")
    env = {**os.environ, "KSERVECTL_HOME": home}
    kservectl = str(BIN / "kservectl")
    rows = []
    try:
        for label, argv in (("baseline: mlflow --version", [str(BIN / "mlflow"), "--version"]),
                            ("baseline: mlserver --version", [str(BIN / "mlserver"), "--version"])):
            rows.append((label, timed(argv, env)[0], ""))
        up = [kservectl, "up", "--provider", "local", "--cluster", "bench", "--output", "json"]
        for label in ("cold up (train, register, serve, test)", "warm up (all running: no-op)"):
            seconds, proc = timed(up, env)
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
                return 1
            verdict = json.loads(proc.stdout)["test"]["verdict"]
            rows.append((label, seconds, verdict.split(":")[0]))
        subprocess.run([kservectl, "cleanup", "-p", "local", "-c", "bench", "--yes"], env=env, check=True,
                       capture_output=True)
        seconds, proc = timed(up, env)
        rows.append(("restart after cleanup (store kept)", seconds,
                     json.loads(proc.stdout)["test"]["verdict"].split(":")[0] if proc.returncode == 0 else "FAIL"))
    finally:
        subprocess.run([kservectl, "cleanup", "-p", "local", "-c", "bench", "--yes", "--delete-data"], env=env,
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
          f"{platform.python_version()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'case':<44} {'seconds':>8}  test")
    for label, seconds, verdict in rows:
        print(f"{label:<44} {seconds:>8.1f}  {verdict}")
    cold = rows[2][1]
    print(f"\ntime to first prediction {cold:.1f}s: {'meets' if cold <= 60 else 'MISSES'} the 60 s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
