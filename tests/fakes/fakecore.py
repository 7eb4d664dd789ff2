"""Shared machinery of the recording fakes in tests/fakes/bin (stdlib only, python3 >= 3.7).

Every invocation of a fake tool:

1. appends one JSON line ``{"tool", "argv", "cwd", "time"}`` to ``$FAKE_TOOLS_LOG``
   (required: without it the fake prints why on stderr and exits 97);
2. looks for a matching rule in ``$FAKE_TOOLS_SCRIPT`` (optional JSON list of rules, see
   ``RULE_KEYS``); a matching rule answers with its stdout/stderr/exit code after
   ``delay_s`` seconds, a ``passthrough`` rule only adds its delay/output and lets the
   next rule or the default behaviour answer;
3. otherwise runs the tool's default behaviour (fake_eksctl / fake_helm), whose state
   (clusters, releases, rule hit counts) lives in ``$FAKE_TOOLS_LOG.state.json``, changed
   only under an exclusive ``fcntl.flock`` on ``$FAKE_TOOLS_LOG.lock`` so concurrent calls
   are safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import time

LOG_ENV = "FAKE_TOOLS_LOG"
SCRIPT_ENV = "FAKE_TOOLS_SCRIPT"
MISUSE_EXIT = 97

RULE_KEYS = {
    "tool": "str: 'eksctl', 'helm' or '*' (default '*': any fake tool)",
    "argv_prefix": "list[str]: argv (without the program name) must start with these items",
    "argv_contains": "list[str]: each item must be one of argv's items (any order)",
    "argv_regex": "str: re.search against ' '.join(argv)",
    "stdout": "str: written to stdout",
    "stderr": "str: written to stderr",
    "exit_code": "int: exit status (default 0)",
    "delay_s": "number: real sleep before answering",
    "times": "int: the rule applies to its first N matches only, then falls through",
    "passthrough": "bool: after delay/output, go on to later rules / the default behaviour",
    "comment": "str: ignored",
}


class Misuse(Exception):
    """The fake was run wrongly (no log, bad script): exit 97, loudly."""


def state_path(log_path: str) -> str:
    return log_path + ".state.json"


def lock_path(log_path: str) -> str:
    return log_path + ".lock"


def validate_rules(rules) -> None:
    """Raise ValueError naming the first problem in a rule list."""
    if not isinstance(rules, list):
        raise ValueError(f"the script must be a JSON list of rules, got {type(rules).__name__}")
    for index, rule in enumerate(rules):
        where = f"rule #{index}"
        if not isinstance(rule, dict):
            raise ValueError(f"{where} must be an object")
        unknown = sorted(set(rule) - set(RULE_KEYS))
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {unknown}; known: {sorted(RULE_KEYS)}")
        for key in ("argv_prefix", "argv_contains"):
            if key in rule and not (
                isinstance(rule[key], list) and all(isinstance(x, str) for x in rule[key])
            ):
                raise ValueError(f"{where}: {key} must be a list of strings")
        for key in ("tool", "argv_regex", "stdout", "stderr", "comment"):
            if key in rule and not isinstance(rule[key], str):
                raise ValueError(f"{where}: {key} must be a string")
        if "argv_regex" in rule:
            try:
                re.compile(rule["argv_regex"])
            except re.error as exc:
                raise ValueError(f"{where}: argv_regex does not compile: {exc}") from None
        for key in ("exit_code", "times"):
            if key in rule and (isinstance(rule[key], bool) or not isinstance(rule[key], int)):
                raise ValueError(f"{where}: {key} must be an integer")
        if "times" in rule and rule["times"] < 0:
            raise ValueError(f"{where}: times must be >= 0")
        if "delay_s" in rule and (
            isinstance(rule["delay_s"], bool)
            or not isinstance(rule["delay_s"], (int, float))
            or rule["delay_s"] < 0
        ):
            raise ValueError(f"{where}: delay_s must be a non-negative number")
        if "passthrough" in rule and not isinstance(rule["passthrough"], bool):
            raise ValueError(f"{where}: passthrough must be true or false")


def rule_key(index: int, rule: dict) -> str:
    """Hit-count key: a rewritten script starts counting afresh."""
    digest = hashlib.sha1(json.dumps(rule, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    return f"{index}:{digest}"


def rule_matches(rule: dict, tool: str, argv: list) -> bool:
    if rule.get("tool", "*") not in ("*", tool):
        return False
    prefix = rule.get("argv_prefix")
    if prefix is not None and list(argv[: len(prefix)]) != list(prefix):
        return False
    contains = rule.get("argv_contains")
    if contains is not None and not all(item in argv for item in contains):
        return False
    pattern = rule.get("argv_regex")
    if pattern is not None and not re.search(pattern, " ".join(argv)):
        return False
    return True


def write_out(text: str) -> None:
    if text:
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.buffer.flush()


def write_err(text: str) -> None:
    if text:
        sys.stderr.flush()
        sys.stderr.buffer.write(text.encode("utf-8"))
        sys.stderr.buffer.flush()


class Context:
    """What a tool's default behaviour gets: output helpers and the locked shared state."""

    def __init__(self, tool: str, log_path: str):
        self.tool = tool
        self.log_path = log_path

    out = staticmethod(write_out)
    err = staticmethod(write_err)

    @contextlib.contextmanager
    def state(self):
        """Yield the whole state dict under the lock; it is written back on a clean exit."""
        with locked_state(self.log_path) as state:
            yield state

    def read_state(self) -> dict:
        return read_state(self.log_path)


def read_state(log_path: str) -> dict:
    try:
        with open(state_path(log_path), encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def locked_state(log_path: str):
    with open(lock_path(log_path), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            state = read_state(log_path)
            yield state
            target = state_path(log_path)
            tmp = f"{target}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(state, fh, indent=1, sort_keys=True)
            os.replace(tmp, target)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def record_call(log_path: str, tool: str, argv: list) -> None:
    try:
        cwd = os.getcwd()
    except OSError:  # the caller's directory was deleted
        cwd = None
    line = json.dumps(
        {"tool": tool, "argv": list(argv), "cwd": cwd, "time": time.time()},
        ensure_ascii=False,
    )
    with open(log_path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            fh.write(line + "\n")
            fh.flush()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load_rules() -> list:
    path = os.environ.get(SCRIPT_ENV, "")
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return []  # the env may name a file a test has not written yet
    except OSError as exc:
        raise Misuse(f"cannot read {SCRIPT_ENV}={path}: {exc}") from None
    if not text.strip():
        return []
    try:
        rules = json.loads(text)
    except ValueError as exc:
        raise Misuse(f"{SCRIPT_ENV}={path} is not valid JSON: {exc}") from None
    try:
        validate_rules(rules)
    except ValueError as exc:
        raise Misuse(f"{SCRIPT_ENV}={path}: {exc}") from None
    return rules


def select_rules(log_path: str, tool: str, argv: list, rules: list) -> list:
    """The rules this call applies, in order: passthrough ones, then at most one answering rule.

    Hit counts are read and bumped under the state lock, so ``times`` holds under concurrency.
    """
    if not rules:
        return []
    chosen = []
    with locked_state(log_path) as state:
        hits = state.setdefault("rule_hits", {})
        for index, rule in enumerate(rules):
            if not rule_matches(rule, tool, argv):
                continue
            key = rule_key(index, rule)
            if "times" in rule and hits.get(key, 0) >= rule["times"]:
                continue
            hits[key] = hits.get(key, 0) + 1
            chosen.append(rule)
            if not rule.get("passthrough", False):
                break
    return chosen


def main(tool: str, default_handler) -> None:
    """Entry point of a fake tool script: record, apply the script, else the default behaviour."""
    argv = sys.argv[1:]
    log_path = os.environ.get(LOG_ENV, "")
    try:
        if not log_path:
            raise Misuse(
                f"{LOG_ENV} is not set. This is the recording test fake of {tool} (tests/fakes/bin), "
                f"not the real tool; use the fake_tools pytest fixture or set {LOG_ENV}."
            )
        log_path = os.path.abspath(log_path)
        try:
            record_call(log_path, tool, argv)
        except OSError as exc:
            raise Misuse(f"cannot append to {LOG_ENV}={log_path}: {exc}") from None
        rules = load_rules()
        chosen = select_rules(log_path, tool, argv, rules)
    except Misuse as exc:
        write_err(f"fake {tool}: {exc}\n")
        sys.exit(MISUSE_EXIT)

    for rule in chosen:
        delay = float(rule.get("delay_s", 0) or 0)
        if delay:
            time.sleep(delay)
        write_out(rule.get("stdout", ""))
        write_err(rule.get("stderr", ""))
        if not rule.get("passthrough", False):
            sys.exit(int(rule.get("exit_code", 0)))

    code = default_handler(argv, Context(tool, log_path))
    sys.exit(int(code or 0))
