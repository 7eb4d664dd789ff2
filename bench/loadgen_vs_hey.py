#!/usr/bin/env python
"""kservectl's load generator beside ``hey`` against the same MLServer, in one run.

Both tools send the same V2 inference request (built from the model's MLflow input example)
at the same concurrency for the same time, in alternating rounds (so drift on a shared machine
hits both), and the script prints requests per second side by side with the ratio. The target
is kservectl >= 90% of hey: then kservectl's figures measure the server, not the client.

Without ``--url`` it starts what ``kservectl test``'s real data-plane tests start: an MLflow
server (sqlite, local artifacts) with the example wine classifier logged and registered by
``kservectl.example``, and MLServer 1.7.1 with ``mlserver_mlflow.MLflowRuntime`` serving it, all
on 127.0.0.1 and stopped at the end. With ``--url URL --model NAME`` it measures that server.

    .venv/bin/python bench/loadgen_vs_hey.py [--concurrency 16] [--duration 10] [--rounds 5]

``hey`` is the Debian package ``hey``: ``apt-get update && apt-get install -y hey`` (or pass
``--install-hey`` to let this script run exactly that). Not a timed test: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from kservectl import loadgen, models, probe
from kservectl.settings import DEFAULT_SETTINGS

VENV_BIN = Path(sys.executable).parent
INSTALL_HINT = "apt-get update && apt-get install -y hey   (Debian package 'hey')"
TARGET = 0.90


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- hey ---------------------------------------------------------------------------------------
def find_hey(install: bool) -> str:
    found = shutil.which("hey")
    if found:
        return found
    say(f"hey is not installed. Install it with: {INSTALL_HINT}")
    if not install:
        say("(or re-run with --install-hey to let this script run those two commands)")
        raise SystemExit(2)
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "hey"]):
        say(f"running: {' '.join(argv)}")
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    found = shutil.which("hey")
    if not found:
        say(f"hey is still missing after apt-get; install it by hand: {INSTALL_HINT}")
        raise SystemExit(2)
    return found


def run_hey(hey: str, url: str, body_file: Path, host: str | None, concurrency: int, duration: float) -> dict:
    argv = [hey, "-z", f"{duration:g}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json",
            "-D", str(body_file)]
    if host:
        argv += ["-host", host]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    errors = re.search(r"Error distribution:(.*)", out, re.S)
    return {"rps": rps, "codes": codes, "errors": errors.group(1).strip() if errors else ""}


def run_ours(url: str, body: bytes, host: str | None, concurrency: int, duration: float) -> loadgen.LoadReport:
    spec = loadgen.LoadSpec(url, body, headers={"Host": host} if host else {}, concurrency=concurrency,
                            duration_s=duration, timeout_s=DEFAULT_SETTINGS.http.request)
    return loadgen.run(spec)


# -- a local data plane --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KSERVECTL_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited with {process.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout:g}s; see {log}")


def local_dataplane(root: Path, processes: list[subprocess.Popen]) -> tuple[str, str, probe.Payload]:
    """MLflow + the registered example + MLServer serving it. Returns (url, model, payload)."""
    from mlflow.artifacts import download_artifacts

    from kservectl import example

    timeout = DEFAULT_SETTINGS.http.server_start
    port = free_port()
    tracking = f"http://127.0.0.1:{port}"
    say(f"starting MLflow on {tracking} (sqlite, local artifacts)")
    log = root / "mlflow.log"
    processes.append(start([str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
                            "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                            "--port", str(port), "--workers", "1"], log, root))
    wait_http(f"{tracking}/health", processes[-1], log, timeout)
    say("training, logging and registering the example wine classifier")
    made = example.log_and_register(tracking)
    resolved = models.resolve(models.parse(made.model_uri), models.client(tracking))
    info = models.fetch_model_info(resolved.artifact_uri, tracking)
    payload = probe.payload_from_model_info(info.input_example, info.input_example_type, info.signature_inputs,
                                            f"MLflow input example of {made.model_uri}")
    repo = root / "models"
    model_dir = Path(download_artifacts(artifact_uri=resolved.artifact_uri, dst_path=str(repo / "wine"),
                                        tracking_uri=tracking))
    (repo / "wine" / "model-settings.json").write_text(json.dumps({
        "name": "wine", "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": str(model_dir)}}))
    http_port = free_port()
    # parallel_workers 0: MLServer 1.7.1's worker processes die at start under uvloop 0.23
    (repo / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": free_port(), "metrics_port": free_port(),
        "parallel_workers": 0}))
    url = f"http://127.0.0.1:{http_port}"
    say(f"starting MLServer on {url} serving {made.model_uri} as 'wine'")
    log = root / "mlserver.log"
    processes.append(start([str(VENV_BIN / "mlserver"), "start", str(repo)], log, repo))
    wait_http(f"{url}/v2/models/wine/ready", processes[-1], log, timeout)
    return url, "wine", payload


def metadata_payload(url: str, model: str, host: str | None) -> probe.Payload:
    response = httpx.get(f"{url}/v2/models/{model}", headers={"Host": host} if host else {}, timeout=30)
    response.raise_for_status()
    return probe.payload_from_metadata(response.json())


# -- the comparison ------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing V2 server (default: start MLflow + MLServer locally)")
    parser.add_argument("--model", default="wine", help="the model's name on --url")
    parser.add_argument("--host", help="Host header to send (e.g. through the Kourier NLB)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per tool per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--install-hey", action="store_true", help=f"run: {INSTALL_HINT.split('   ')[0]}")
    args = parser.parse_args()

    hey = find_hey(args.install_hey)
    processes: list[subprocess.Popen] = []
    root = Path(tempfile.mkdtemp(prefix="kservectl-bench-"))
    try:
        if args.url:
            url, model = args.url.rstrip("/"), args.model
            payload = metadata_payload(url, model, args.host)
        else:
            url, model, payload = local_dataplane(root, processes)
        infer = f"{url}/v2/models/{model}/infer"
        body = json.dumps(payload.v2_body()).encode()
        body_file = root / "request.json"
        body_file.write_bytes(body)
        check = probe.run_checks(probe.Target(url, model, args.host), payload)
        if not check.ok:
            say(check.verdict())
            return 1
        say(f"request: POST {infer}, {payload.n_rows} rows from {payload.source}, {len(body)} bytes")
        say(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        say(f"warming up for 3s at concurrency {args.concurrency}")
        run_ours(infer, body, args.host, args.concurrency, 3)

        rows = []
        for i in range(args.rounds):
            order = ("hey", "kservectl") if i % 2 == 0 else ("kservectl", "hey")
            result: dict[str, object] = {}
            for tool in order:
                if tool == "hey":
                    result["hey"] = run_hey(hey, infer, body_file, args.host, args.concurrency, args.duration)
                else:
                    result["ours"] = run_ours(infer, body, args.host, args.concurrency, args.duration)
            ours: loadgen.LoadReport = result["ours"]  # type: ignore[assignment]
            theirs: dict = result["hey"]  # type: ignore[assignment]
            rows.append((ours, theirs))
            say(f"round {i + 1} ({' then '.join(order)}): hey {theirs['rps']:8.1f} req/s   "
                f"kservectl {ours.rps:8.1f} req/s   ratio {ours.rps / theirs['rps']:6.1%}   "
                f"(kservectl p50 {ours.percentile(50):.1f} ms, p99 {ours.percentile(99):.1f} ms, "
                f"errors {ours.errors}; hey codes {theirs['codes']})")

        hey_rps = statistics.median(t["rps"] for _, t in rows)
        our_rps = statistics.median(o.rps for o, _ in rows)
        # each round pairs the two tools back to back: the median of those ratios cancels the drift
        # of a shared machine better than the ratio of the medians
        ratio = statistics.median(o.rps / t["rps"] for o, t in rows)
        say()
        say(f"{'':24}{'hey':>12}{'kservectl':>12}")
        say(f"{'req/s (median)':24}{hey_rps:12.1f}{our_rps:12.1f}")
        say(f"kservectl / hey: {ratio:.1%} (median of the per-round ratios; ratio of the medians "
            f"{our_rps / hey_rps:.1%}); target >= {TARGET:.0%}: {'met' if ratio >= TARGET else 'NOT met'}")
        say(f"concurrency {args.concurrency}, {args.duration:g}s per tool per round, {args.rounds} rounds; "
            f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0 if ratio >= TARGET else 1
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
