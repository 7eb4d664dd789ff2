"""Default behaviour of the fake ``helm`` (modelled on helm v4.1.4; stdlib only, python3 >= 3.7).

Emulated: ``version``, ``install``, ``upgrade [--install]``, ``uninstall``, ``list``, ``status``,
``history``, ``get values``, ``repo add``, ``repo update``, ``repo list``. Flags are checked
against helm 4.1.4's own flag tables (from its ``--help``), so a helm-3-only flag such as
``--recreate-pods`` fails as it would for real, ``--atomic``/``--force`` print helm 4's
deprecation notice, ``--wait`` takes its value only as ``--wait=watcher``, and ``--timeout``
must be a Go duration. Releases persist in the shared state file (see fakecore) keyed by
namespace/name; ``--dry-run`` changes nothing.

Other real helm subcommands (template, lint, pull, ...) are not emulated: they exit 97 with a
message, so a test notices instead of silently getting a made-up answer. Unknown subcommands
exit 1 with helm's own error text.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import tarfile

import miniyaml

VERSION = "v4.1.4"
GIT_COMMIT = "05fa37973dc9e42b76e1d2883494c87174b6074f"
GO_VERSION = "go1.25.9"
KUBE_CLIENT_VERSION = "v1.35"
NOT_EMULATED_EXIT = 97
_UTC = _dt.timezone.utc  # noqa: UP017 - datetime.UTC needs python 3.11; the fakes run on any python3

# name -> (shorthand, kind): kind is "bool", "value", or "opt" (value only via --flag=value)
GLOBAL_FLAGS = {
    "burst-limit": (None, "value"),
    "color": (None, "value"),
    "colour": (None, "value"),
    "content-cache": (None, "value"),
    "debug": (None, "bool"),
    "kube-apiserver": (None, "value"),
    "kube-as-group": (None, "value"),
    "kube-as-user": (None, "value"),
    "kube-ca-file": (None, "value"),
    "kube-context": (None, "value"),
    "kube-insecure-skip-tls-verify": (None, "bool"),
    "kube-tls-server-name": (None, "value"),
    "kube-token": (None, "value"),
    "kubeconfig": (None, "value"),
    "namespace": ("n", "value"),
    "qps": (None, "value"),
    "registry-config": (None, "value"),
    "repository-cache": (None, "value"),
    "repository-config": (None, "value"),
    "help": ("h", "bool"),
}

_INSTALL_UPGRADE_COMMON = {
    "ca-file": (None, "value"),
    "cert-file": (None, "value"),
    "create-namespace": (None, "bool"),
    "dependency-update": (None, "bool"),
    "description": (None, "value"),
    "devel": (None, "bool"),
    "disable-openapi-validation": (None, "bool"),
    "dry-run": (None, "opt"),
    "enable-dns": (None, "bool"),
    "force-conflicts": (None, "bool"),
    "force-replace": (None, "bool"),
    "hide-notes": (None, "bool"),
    "hide-secret": (None, "bool"),
    "insecure-skip-tls-verify": (None, "bool"),
    "key-file": (None, "value"),
    "keyring": (None, "value"),
    "labels": ("l", "value"),
    "no-hooks": (None, "bool"),
    "output": ("o", "value"),
    "pass-credentials": (None, "bool"),
    "password": (None, "value"),
    "plain-http": (None, "bool"),
    "post-renderer": (None, "value"),
    "post-renderer-args": (None, "value"),
    "render-subchart-notes": (None, "bool"),
    "repo": (None, "value"),
    "rollback-on-failure": (None, "bool"),
    "set": (None, "value"),
    "set-file": (None, "value"),
    "set-json": (None, "value"),
    "set-literal": (None, "value"),
    "set-string": (None, "value"),
    "skip-crds": (None, "bool"),
    "skip-schema-validation": (None, "bool"),
    "take-ownership": (None, "bool"),
    "timeout": (None, "value"),
    "username": (None, "value"),
    "values": ("f", "value"),
    "verify": (None, "bool"),
    "version": (None, "value"),
    "wait": (None, "opt"),
    "wait-for-jobs": (None, "bool"),
    # hidden in --help, still accepted by helm 4 with a deprecation notice
    "atomic": (None, "bool"),
    "force": (None, "bool"),
}

LOCAL_FLAGS = {
    "install": dict(
        _INSTALL_UPGRADE_COMMON,
        **{
            "generate-name": ("g", "bool"),
            "name-template": (None, "value"),
            "replace": (None, "bool"),
            "server-side": (None, "opt"),
        },
    ),
    "upgrade": dict(
        _INSTALL_UPGRADE_COMMON,
        **{
            "cleanup-on-fail": (None, "bool"),
            "history-max": (None, "value"),
            "install": ("i", "bool"),
            "reset-then-reuse-values": (None, "bool"),
            "reset-values": (None, "bool"),
            "reuse-values": (None, "bool"),
            "server-side": (None, "value"),
        },
    ),
    "uninstall": {
        "cascade": (None, "value"),
        "description": (None, "value"),
        "dry-run": (None, "bool"),
        "ignore-not-found": (None, "bool"),
        "keep-history": (None, "bool"),
        "no-hooks": (None, "bool"),
        "timeout": (None, "value"),
        "wait": (None, "opt"),
    },
    "list": {
        "all-namespaces": ("A", "bool"),
        "date": ("d", "bool"),
        "deployed": (None, "bool"),
        "failed": (None, "bool"),
        "filter": ("f", "value"),
        "max": ("m", "value"),
        "no-headers": (None, "bool"),
        "offset": (None, "value"),
        "output": ("o", "value"),
        "pending": (None, "bool"),
        "reverse": ("r", "bool"),
        "selector": ("l", "value"),
        "short": ("q", "bool"),
        "superseded": (None, "bool"),
        "time-format": (None, "value"),
        "uninstalled": (None, "bool"),
        "uninstalling": (None, "bool"),
    },
    "status": {"output": ("o", "value"), "revision": (None, "value")},
    "history": {"max": (None, "value"), "output": ("o", "value")},
    "version": {"short": (None, "bool"), "template": (None, "value")},
    "get values": {"all": ("a", "bool"), "output": ("o", "value"), "revision": (None, "value")},
    "repo add": {
        "allow-deprecated-repos": (None, "bool"),
        "ca-file": (None, "value"),
        "cert-file": (None, "value"),
        "force-update": (None, "bool"),
        "insecure-skip-tls-verify": (None, "bool"),
        "key-file": (None, "value"),
        "pass-credentials": (None, "bool"),
        "password": (None, "value"),
        "password-stdin": (None, "bool"),
        "timeout": (None, "value"),
        "username": (None, "value"),
    },
    "repo update": {"timeout": (None, "value")},
    "repo list": {"no-headers": (None, "bool"), "output": ("o", "value")},
}

ALIASES = {"un": "uninstall", "del": "uninstall", "delete": "uninstall", "ls": "list", "hist": "history"}
REPO_ALIASES = {"up": "update", "ls": "list"}
GROUPS = {"get": ("values",), "repo": ("add", "update", "list")}
REAL_COMMANDS = {
    "completion",
    "create",
    "dependency",
    "env",
    "get",
    "help",
    "history",
    "install",
    "lint",
    "list",
    "package",
    "plugin",
    "pull",
    "push",
    "registry",
    "repo",
    "rollback",
    "search",
    "show",
    "status",
    "template",
    "test",
    "uninstall",
    "upgrade",
    "verify",
    "version",
}
USAGE = {
    "install": "helm install [NAME] [CHART] [flags]",
    "upgrade": "helm upgrade [RELEASE] [CHART] [flags]",
    "uninstall": "helm uninstall RELEASE_NAME [...] [flags]",
    "list": "helm list [flags]",
    "status": "helm status RELEASE_NAME [flags]",
    "history": "helm history RELEASE_NAME [flags]",
    "version": "helm version [flags]",
    "get values": "helm get values RELEASE_NAME [flags]",
    "repo add": "helm repo add [NAME] [URL] [flags]",
    "repo update": "helm repo update [REPO1 [REPO2 ...]] [flags]",
    "repo list": "helm repo list [flags]",
}


class HelmError(Exception):
    def __init__(self, message, code=1):
        Exception.__init__(self, message)
        self.code = code


# -- argument parsing (pflag semantics) ----------------------------------------------------------


def _find_command(argv):
    """The (sub)command words, skipping global flags and their values."""
    words = []
    i = 0
    shorts = {s: n for n, (s, _) in GLOBAL_FLAGS.items() if s}
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            if "=" not in arg and GLOBAL_FLAGS.get(name, (None, "bool"))[1] == "value":
                i += 1
        elif arg.startswith("-") and len(arg) > 1:
            name = shorts.get(arg[1])
            if name and GLOBAL_FLAGS[name][1] == "value" and len(arg) == 2:
                i += 1
        else:
            words.append(arg)
            if len(words) == 2:
                break
        i += 1
    return words


def parse_flags(argv, flags):
    """pflag-like parsing: returns (opts: name -> [values], positionals, [(name, value)] in order)."""
    opts = {}
    ordered = []
    positionals = []
    shorts = {s: n for n, (s, _) in flags.items() if s}

    def put(name, value):
        opts.setdefault(name, []).append(value)
        ordered.append((name, value))

    def check_bool(name, value):
        if value.lower() not in ("1", "t", "true", "0", "f", "false"):
            raise HelmError(
                f'invalid argument "{value}" for "--{name}" flag: '
                f'strconv.ParseBool: parsing "{value}": invalid syntax'
            )
        return "true" if value.lower() in ("1", "t", "true") else "false"

    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positionals.extend(argv[i + 1 :])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in flags:
                raise HelmError(f"unknown flag: --{name}")
            kind = flags[name][1]
            if kind == "bool":
                put(name, check_bool(name, value) if eq else "true")
            elif kind == "opt":
                put(name, value if eq else None)
            elif eq:
                put(name, value)
            else:
                if i + 1 >= len(argv):
                    raise HelmError(f"flag needs an argument: --{name}")
                i += 1
                put(name, argv[i])
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                ch = arg[j]
                name = shorts.get(ch)
                if name is None:
                    raise HelmError(f"unknown shorthand flag: '{ch}' in {arg}")
                kind = flags[name][1]
                rest = arg[j + 1 :]
                if kind == "bool":
                    if rest.startswith("="):
                        put(name, check_bool(name, rest[1:]))
                        break
                    put(name, "true")
                    j += 1
                    continue
                if rest.startswith("="):
                    rest = rest[1:]
                if rest:
                    put(name, rest)
                elif kind == "opt":
                    put(name, None)
                else:
                    if i + 1 >= len(argv):
                        raise HelmError(f"flag needs an argument: '{ch}' in -{ch}")
                    i += 1
                    put(name, argv[i])
                break
        else:
            positionals.append(arg)
        i += 1
    return opts, positionals, ordered


def _last(opts, name, default=None):
    values = opts.get(name)
    return values[-1] if values else default


def _flag_on(opts, name):
    return _last(opts, name) == "true"


_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")


def check_duration(name, value):
    if value in ("0", "+0", "-0"):
        return
    if _DURATION.match(value):
        return
    if re.match(r"^[-+]?(\d+(\.\d*)?|\.\d+)$", value):
        raise HelmError(
            f'invalid argument "{value}" for "--{name}" flag: time: missing unit in duration "{value}"'
        )
    raise HelmError(f'invalid argument "{value}" for "--{name}" flag: time: invalid duration "{value}"')


# -- formatting helpers -----------------------------------------------------------------------------


def _now():
    return _dt.datetime.now(_UTC)


def _iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond:06d}Z"


def _parse_iso(text):
    return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=_UTC)


def _ansic(text):
    """Go time.ANSIC, in local time like helm prints it."""
    ts = _parse_iso(text).astimezone()
    return f"{ts.strftime('%a %b')} {ts.day:2d} {ts.strftime('%H:%M:%S %Y')}"


def _go_time_string(text):
    """Go's Time.String() for a UTC time: '2026-01-02 10:00:00.123456 +0000 UTC'."""
    ts = _parse_iso(text)
    frac = f"{ts.microsecond:06d}".rstrip("0")
    return ts.strftime("%Y-%m-%d %H:%M:%S") + ("." + frac if frac else "") + " +0000 UTC"


def _table(rows, ctx):
    widths = [max(len(str(row[c])) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        ctx.out("\t".join(str(cell).ljust(widths[c]) for c, cell in enumerate(row)) + "\n")


def _usage_error(cmd, message):
    return HelmError(f"{message}\n\nUsage:  {USAGE[cmd]}")


def _require_args(cmd, positionals, exact=None, at_least=None, none=False):
    if none and positionals:
        raise _usage_error(cmd, f'"helm {cmd}" accepts no arguments')
    if exact is not None and len(positionals) != exact:
        raise _usage_error(cmd, f'"helm {cmd}" requires {exact} argument{"" if exact == 1 else "s"}')
    if at_least is not None and len(positionals) < at_least:
        raise _usage_error(
            cmd, f'"helm {cmd}" requires at least {at_least} argument{"" if at_least == 1 else "s"}'
        )


def _output_format(opts):
    fmt = _last(opts, "output", "table")
    if fmt not in ("table", "json", "yaml"):
        raise HelmError(f'invalid argument "{fmt}" for "-o, --output" flag: invalid format type')
    return fmt


def _namespace(opts):
    return _last(opts, "namespace") or os.environ.get("HELM_NAMESPACE") or "default"


# -- values -----------------------------------------------------------------------------------------


def _split_unescaped(text, sep):
    parts, buf, depth, i = [], "", 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf += text[i : i + 2]
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
        i += 1
    parts.append(buf)
    return parts


def _unescape(text):
    return re.sub(r"\\(.)", r"\1", text)


def _typed(value):
    if value == "true":
        return True
    if value == "false":
        return False
    if value == "null":
        return None
    if re.match(r"^-?(0|[1-9]\d*)$", value):
        return int(value)
    return value


def _assign(config, path, value):
    keys = [_unescape(k) for k in _split_unescaped(path, ".")]
    node = config
    for key in keys[:-1]:
        m = re.match(r"^(.*)\[(\d+)\]$", key)
        if m:
            lst = node.setdefault(m.group(1), [])
            idx = int(m.group(2))
            while len(lst) <= idx:
                lst.append({})
            if not isinstance(lst[idx], dict):
                lst[idx] = {}
            node = lst[idx]
            continue
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    last = keys[-1]
    m = re.match(r"^(.*)\[(\d+)\]$", last)
    if m:
        lst = node.setdefault(m.group(1), [])
        idx = int(m.group(2))
        while len(lst) <= idx:
            lst.append(None)
        lst[idx] = value
    else:
        node[last] = value


def _merge(base, override):
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _set_values(config, expr, mode):
    if mode == "set-literal":
        key, _, value = expr.partition("=")
        _assign(config, key, value)
        return
    if mode == "set-json":
        key, _, value = expr.partition("=")
        try:
            _assign(config, key, json.loads(value))
        except ValueError as exc:
            raise HelmError(f"failed parsing --set-json data {expr}: {exc}") from None
        return
    for item in _split_unescaped(expr, ","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise HelmError(f'failed parsing --{mode} data: key "{item}" has no value')
        if mode == "set-file":
            try:
                with open(value, encoding="utf-8") as fh:
                    _assign(config, key, fh.read())
            except OSError:
                raise HelmError(
                    f"failed parsing --set-file data: open {value}: no such file or directory"
                ) from None
        elif value.startswith("{") and value.endswith("}"):
            items = [_unescape(v) for v in _split_unescaped(value[1:-1], ",") if v != ""]
            _assign(config, key, items if mode == "set-string" else [_typed(v) for v in items])
        else:
            value = _unescape(value)
            _assign(config, key, value if mode == "set-string" else _typed(value))


def compute_values(ordered, failure_prefix):
    """(config, values_args, notes) from the ordered flags, like helm merges them."""
    config = {}
    values_args = []
    notes = []
    for name, value in ordered:
        if name == "values":
            values_args.append(["--values", value])
            if value == "-" or re.match(r"^[a-z]+://", value):
                notes.append(f"values from {value} not read by the fake")
                continue
            try:
                with open(value, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError:
                raise HelmError(f"open {value}: no such file or directory") from None
            try:
                data = miniyaml.loads(text)
            except ValueError as exc:
                notes.append(f"values file {value} not understood by the fake's YAML subset: {exc}")
                continue
            if isinstance(data, dict):
                _merge(config, data)
            elif data is not None:
                raise HelmError("{}{}: failed to parse {}: not a map".format(failure_prefix, "", value))
    for mode in ("set-json", "set", "set-string", "set-file", "set-literal"):
        for name, value in ordered:
            if name == mode:
                values_args.append(["--" + name, value])
                _set_values(config, value, mode)
    return config, values_args, notes


# -- charts -----------------------------------------------------------------------------------------


def resolve_chart(ref, opts, state, failure_prefix):
    """(name, version, app_version) of a chart reference, reading local charts for real."""
    version = _last(opts, "version")
    if os.path.isdir(ref):
        chart_file = os.path.join(ref, "Chart.yaml")
        try:
            with open(chart_file, encoding="utf-8") as fh:
                meta = miniyaml.loads(fh.read()) or {}
        except OSError:
            raise HelmError(f"{failure_prefix}Chart.yaml file is missing") from None
        except ValueError as exc:
            raise HelmError(f"{failure_prefix}cannot load Chart.yaml: {exc}") from None
        return _chart_meta(meta, ref)
    if os.path.isfile(ref):
        try:
            with tarfile.open(ref, "r:*") as tar:
                member = next((m for m in tar.getmembers() if re.match(r"^[^/]+/Chart\.yaml$", m.name)), None)
                if member is None:
                    raise HelmError(f"{failure_prefix}Chart.yaml file is missing")
                meta = miniyaml.loads(tar.extractfile(member).read().decode("utf-8")) or {}
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise HelmError(
                f"{failure_prefix}file '{ref}' does not appear to be a gzipped archive; "
                f"got '{type(exc).__name__}'"
            ) from None
        return _chart_meta(meta, ref)
    if ref.startswith(("/", "./", "../")) or ref in (".", ".."):
        raise HelmError(f'{failure_prefix}path "{ref}" not found')
    if ref.startswith("oci://"):
        name = ref.rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0]
    elif _last(opts, "repo"):
        name = ref
    elif "/" in ref:
        repo, name = ref.split("/", 1)
        if repo not in state.get("repos", {}):
            raise HelmError(f"{failure_prefix}repo {repo} not found")
    else:
        raise HelmError(
            f"{failure_prefix}non-absolute URLs should be in form of repo_name/path_to_chart, got: {ref}"
        )
    version = version or "0.1.0"
    return name, version, version


def _chart_meta(meta, ref):
    name = str(meta.get("name") or os.path.basename(os.path.abspath(ref)))
    version = str(meta.get("version") or "0.1.0")
    app_version = meta.get("appVersion")
    return name, version, ("" if app_version is None else str(app_version))


# -- release views ----------------------------------------------------------------------------------


def _release_json(rel):
    info = {
        "first_deployed": rel["first_deployed"],
        "last_deployed": rel["last_deployed"],
        "description": rel["description"],
        "status": rel["status"],
    }
    if rel.get("notes"):
        info["notes"] = rel["notes"]
    return {
        "name": rel["name"],
        "info": info,
        "config": rel.get("config") or {},
        "version": rel["revision"],
        "namespace": rel["namespace"],
    }


def _print_release(rel, fmt, ctx, dry_run=False, hide_notes=False):
    if fmt == "json":
        ctx.out(json.dumps(_release_json(rel), separators=(",", ":")) + "\n")
        return
    if fmt == "yaml":
        ctx.out(miniyaml.dumps(_release_json(rel)))
        return
    lines = [
        "NAME: {}".format(rel["name"]),
        "LAST DEPLOYED: {}".format(_ansic(rel["last_deployed"])),
        "NAMESPACE: {}".format(rel["namespace"]),
        "STATUS: {}".format(rel["status"]),
        f"REVISION: {rel['revision']}",
        "DESCRIPTION: {}".format(rel["description"]),
        "TEST SUITE: None",
    ]
    if dry_run:
        lines += ["HOOKS:", "MANIFEST:", ""]
    if rel.get("notes") and not hide_notes:
        lines += ["NOTES:", rel["notes"].strip()]
    ctx.out("\n".join(lines) + "\n")


def _list_entry(rel):
    return {
        "name": rel["name"],
        "namespace": rel["namespace"],
        "revision": str(rel["revision"]),
        "updated": _go_time_string(rel["last_deployed"]),
        "status": rel["status"],
        "chart": "{}-{}".format(rel["chart"], rel["chart_version"]),
        "app_version": rel["app_version"],
    }


# -- commands ---------------------------------------------------------------------------------------


def cmd_version(opts, positionals, ordered, ctx):
    _require_args("version", positionals, none=True)
    template = _last(opts, "template")
    if template is not None:
        fields = {
            "Version": VERSION,
            "GitCommit": GIT_COMMIT,
            "GitTreeState": "clean",
            "GoVersion": GO_VERSION,
            "KubeClientVersion": KUBE_CLIENT_VERSION,
        }
        ctx.out(re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: fields.get(m.group(1), "<no value>"), template))
        return 0
    if _flag_on(opts, "short"):
        ctx.out(f"{VERSION}+g{GIT_COMMIT[:7]}\n")
        return 0
    ctx.out(
        f'version.BuildInfo{{Version:"{VERSION}", GitCommit:"{GIT_COMMIT}", GitTreeState:"clean", '
        f'GoVersion:"{GO_VERSION}", KubeClientVersion:"{KUBE_CLIENT_VERSION}"}}\n'
    )
    return 0


def _deprecations(opts, ctx):
    if "atomic" in opts:
        ctx.err("Flag --atomic has been deprecated, use --rollback-on-failure instead\n")
    if "force" in opts:
        ctx.err("Flag --force has been deprecated, use --force-replace instead\n")
    for value in opts.get("wait", []):
        if value is None or value in ("watcher", "hookOnly", "legacy"):
            continue
        if value == "true":
            ctx.err(
                'level=WARN msg="--wait=true is deprecated (boolean value) '
                'and can be replaced with --wait=watcher"\n'
            )
        elif value == "false":
            ctx.err(
                'level=WARN msg="--wait=false is deprecated (boolean value) '
                'and can be replaced with --wait=hookOnly"\n'
            )
        else:
            raise HelmError(
                f'invalid argument "{value}" for "--wait" flag: invalid wait input "{value}". '
                "Valid inputs are watcher, hookOnly, and legacy"
            )
    for name in ("timeout",):
        for value in opts.get(name, []):
            check_duration(name, value)


def _dry_run_mode(opts, ctx):
    if "dry-run" not in opts:
        return "none"
    value = _last(opts, "dry-run")
    if value is None:
        ctx.err("level=WARN msg=\"--dry-run is deprecated and should be replaced with '--dry-run=client'\"\n")
        return "client"
    if value == "true":
        ctx.err(
            "level=WARN msg=\"boolean '--dry-run=true' flag is deprecated and must be replaced with "
            "'--dry-run=client'\"\n"
        )
        return "client"
    if value == "false":
        ctx.err(
            "level=WARN msg=\"boolean '--dry-run=false' flag is deprecated and must be replaced with "
            "'--dry-run=none'\"\n"
        )
        return "none"
    if value not in ("none", "client", "server"):
        raise HelmError(f'invalid dry-run value ("{value}"). Must be "none", "server", or "client"')
    return value


def _history_entry(rel):
    return {
        "revision": rel["revision"],
        "updated": rel["last_deployed"],
        "status": rel["status"],
        "chart": "{}-{}".format(rel["chart"], rel["chart_version"]),
        "app_version": rel["app_version"],
        "description": rel["description"],
    }


def cmd_install_or_upgrade(cmd, opts, positionals, ordered, ctx):
    upgrade = cmd == "upgrade"
    install_flag = _flag_on(opts, "install")
    if upgrade:
        _require_args("upgrade", positionals, exact=2)
    else:
        _require_args("install", positionals, at_least=1)
        if len(positionals) > 2:
            raise HelmError(
                "INSTALLATION FAILED: expected at most two arguments, unexpected arguments: {}".format(
                    ", ".join(positionals[2:])
                )
            )
        if len(positionals) == 1:
            if not _flag_on(opts, "generate-name"):
                raise HelmError("INSTALLATION FAILED: must either provide a name or specify --generate-name")
            positionals = [
                f"{os.path.basename(positionals[0].rstrip('/')) or 'chart'}-{int(_now().timestamp())}"
            ] + positionals
    _deprecations(opts, ctx)
    dry_run = _dry_run_mode(opts, ctx)
    fmt = _output_format(opts)
    name, chart_ref = positionals[0], positionals[1]
    namespace = _namespace(opts)
    key = f"{namespace}/{name}"
    hide_notes = _flag_on(opts, "hide-notes")

    with ctx.state() as state:
        helm = state.setdefault("helm", {})
        releases = helm.setdefault("releases", {})
        existing = releases.get(key)
        installing = existing is None or existing["status"] == "uninstalled"
        if upgrade and installing and not install_flag:
            raise HelmError(f'UPGRADE FAILED: "{name}" has no deployed releases')
        if (
            not upgrade
            and existing is not None
            and existing["status"] != "uninstalled"
            and not _flag_on(opts, "replace")
        ):
            raise HelmError("INSTALLATION FAILED: cannot re-use a name that is still in use")
        installing = installing or not upgrade  # plain install (also --replace) is always an install
        prefix = "UPGRADE FAILED: " if (upgrade and not installing) else "INSTALLATION FAILED: "
        chart, chart_version, app_version = resolve_chart(chart_ref, opts, helm, prefix)
        try:
            config, values_args, notes = compute_values(ordered, prefix)
        except HelmError as exc:
            raise HelmError(str(exc)) from None
        if upgrade and not installing:
            reuse = _flag_on(opts, "reuse-values") or (
                not values_args
                and not _flag_on(opts, "reset-values")
                and not _flag_on(opts, "reset-then-reuse-values")
            )
            if _flag_on(opts, "reset-then-reuse-values") or reuse:
                config = _merge(json.loads(json.dumps(existing.get("config") or {})), config)
        now = _iso(_now())
        revision = 1 if existing is None else existing["revision"] + 1
        rel = {
            "name": name,
            "namespace": namespace,
            "revision": revision,
            "status": "deployed",
            "chart": chart,
            "chart_version": chart_version,
            "app_version": app_version,
            "chart_ref": chart_ref,
            "values_args": values_args,
            "config": config,
            "first_deployed": now if installing or existing is None else existing["first_deployed"],
            "last_deployed": now,
            "description": _last(opts, "description")
            or ("Install complete" if installing else "Upgrade complete"),
            "history": list(existing.get("history", [])) if existing else [],
        }
        if notes:
            rel["fake_notes"] = notes
        if dry_run != "none":
            rel["status"] = "pending-install" if installing else "pending-upgrade"
            rel["description"] = "Dry run complete"
        else:
            if existing and existing.get("history"):
                rel["history"][-1] = dict(rel["history"][-1], status="superseded")
            rel["history"].append(_history_entry(rel))
            releases[key] = rel

    if upgrade and fmt == "table":
        if installing:
            ctx.out(f'Release "{name}" does not exist. Installing it now.\n')
        else:
            ctx.out(f'Release "{name}" has been upgraded. Happy Helming!\n')
    _print_release(rel, fmt, ctx, dry_run=dry_run != "none", hide_notes=hide_notes)
    return 0


def cmd_uninstall(opts, positionals, ordered, ctx):
    _require_args("uninstall", positionals, at_least=1)
    for value in opts.get("timeout", []):
        check_duration("timeout", value)
    namespace = _namespace(opts)
    dry_run = _flag_on(opts, "dry-run")
    with ctx.state() as state:
        releases = state.setdefault("helm", {}).setdefault("releases", {})
        for name in positionals:
            key = f"{namespace}/{name}"
            rel = releases.get(key)
            if rel is None or rel["status"] == "uninstalled":
                if _flag_on(opts, "ignore-not-found"):
                    ctx.out(f'release "{name}" uninstalled\n')
                    continue
                raise HelmError(f"uninstall: Release not loaded: {name}: release: not found")
            if not dry_run:
                if _flag_on(opts, "keep-history"):
                    rel["status"] = "uninstalled"
                    rel["description"] = _last(opts, "description") or "Uninstallation complete"
                else:
                    del releases[key]
            ctx.out(f'release "{name}" uninstalled\n')
    return 0


def cmd_list(opts, positionals, ordered, ctx):
    _require_args("list", positionals, none=True)
    fmt = _output_format(opts)
    state = ctx.read_state()
    releases = list(state.get("helm", {}).get("releases", {}).values())
    if not _flag_on(opts, "all-namespaces"):
        namespace = _namespace(opts)
        releases = [r for r in releases if r["namespace"] == namespace]
    wanted = {
        s
        for s in ("deployed", "failed", "pending", "superseded", "uninstalled", "uninstalling")
        if _flag_on(opts, s)
    }
    if not wanted:
        wanted = {"deployed", "failed"}

    def status_ok(r):
        status = r["status"]
        return status in wanted or (status.startswith("pending") and "pending" in wanted)

    releases = [r for r in releases if status_ok(r)]
    pattern = _last(opts, "filter")
    if pattern:
        releases = [r for r in releases if re.search(pattern, r["name"])]
    if _flag_on(opts, "date"):
        releases.sort(key=lambda r: r["last_deployed"])
    else:
        releases.sort(key=lambda r: r["name"])
    if _flag_on(opts, "reverse"):
        releases.reverse()
    entries = [_list_entry(r) for r in releases]
    if fmt == "json":
        ctx.out(json.dumps(entries, separators=(",", ":")) + "\n")
    elif fmt == "yaml":
        ctx.out(miniyaml.dumps(entries))
    elif _flag_on(opts, "short"):
        for e in entries:
            ctx.out(e["name"] + "\n")
    else:
        rows = (
            []
            if _flag_on(opts, "no-headers")
            else [["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"]]
        )
        rows += [
            [
                e["name"],
                e["namespace"],
                e["revision"],
                e["updated"],
                e["status"],
                e["chart"],
                e["app_version"],
            ]
            for e in entries
        ]
        if rows:
            _table(rows, ctx)
    return 0


def _get_release(state, opts, name):
    rel = state.get("helm", {}).get("releases", {}).get(f"{_namespace(opts)}/{name}")
    if rel is None:
        raise HelmError("release: not found")
    return rel


def cmd_status(opts, positionals, ordered, ctx):
    _require_args("status", positionals, exact=1)
    fmt = _output_format(opts)
    rel = _get_release(ctx.read_state(), opts, positionals[0])
    _print_release(rel, fmt, ctx)
    return 0


def cmd_history(opts, positionals, ordered, ctx):
    _require_args("history", positionals, exact=1)
    fmt = _output_format(opts)
    rel = _get_release(ctx.read_state(), opts, positionals[0])
    entries = rel.get("history", [])
    if fmt == "json":
        ctx.out(json.dumps(entries, separators=(",", ":")) + "\n")
    elif fmt == "yaml":
        ctx.out(miniyaml.dumps(entries))
    else:
        rows = [["REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION"]]
        rows += [
            [e["revision"], _ansic(e["updated"]), e["status"], e["chart"], e["app_version"], e["description"]]
            for e in entries
        ]
        _table(rows, ctx)
    return 0


def cmd_get_values(opts, positionals, ordered, ctx):
    _require_args("get values", positionals, exact=1)
    fmt = _output_format(opts)
    rel = _get_release(ctx.read_state(), opts, positionals[0])
    config = rel.get("config") or {}
    if fmt == "json":
        ctx.out(json.dumps(config or None, separators=(",", ":")) + "\n")
    elif fmt == "yaml":
        ctx.out(miniyaml.dumps(config) if config else "null\n")
    else:
        ctx.out("USER-SUPPLIED VALUES:\n" + (miniyaml.dumps(config) if config else "null\n"))
    return 0


def cmd_repo_add(opts, positionals, ordered, ctx):
    _require_args("repo add", positionals, exact=2)
    name, url = positionals
    with ctx.state() as state:
        repos = state.setdefault("helm", {}).setdefault("repos", {})
        if name in repos and repos[name] != url and not _flag_on(opts, "force-update"):
            raise HelmError(f"repository name ({name}) already exists, please specify a different name")
        existed = repos.get(name) == url
        repos[name] = url
    if existed:
        ctx.out(f'"{name}" already exists with the same configuration, skipping\n')
    else:
        ctx.out(f'"{name}" has been added to your repositories\n')
    return 0


def cmd_repo_update(opts, positionals, ordered, ctx):
    repos = ctx.read_state().get("helm", {}).get("repos", {})
    if not repos:
        raise HelmError("no repositories found. You must add one before updating")
    names = positionals or sorted(repos)
    for name in names:
        if name not in repos:
            raise HelmError(f"no repositories found matching '{name}'.  Nothing will be updated")
    ctx.out("Hang tight while we grab the latest from your chart repositories...\n")
    for name in names:
        ctx.out(f'...Successfully got an update from the "{name}" chart repository\n')
    ctx.out("Update Complete. \u2388Happy Helming!\u2388\n")
    return 0


def cmd_repo_list(opts, positionals, ordered, ctx):
    _require_args("repo list", positionals, none=True)
    fmt = _output_format(opts)
    repos = ctx.read_state().get("helm", {}).get("repos", {})
    if not repos:
        raise HelmError("no repositories to show")
    entries = [{"name": n, "url": u} for n, u in sorted(repos.items())]
    if fmt == "json":
        ctx.out(json.dumps(entries, separators=(",", ":")) + "\n")
    elif fmt == "yaml":
        ctx.out(miniyaml.dumps(entries))
    else:
        header = [] if _flag_on(opts, "no-headers") else [["NAME", "URL"]]
        _table(header + [[e["name"], e["url"]] for e in entries], ctx)
    return 0


HANDLERS = {
    "version": cmd_version,
    "install": lambda o, p, d, c: cmd_install_or_upgrade("install", o, p, d, c),
    "upgrade": lambda o, p, d, c: cmd_install_or_upgrade("upgrade", o, p, d, c),
    "uninstall": cmd_uninstall,
    "list": cmd_list,
    "status": cmd_status,
    "history": cmd_history,
    "get values": cmd_get_values,
    "repo add": cmd_repo_add,
    "repo update": cmd_repo_update,
    "repo list": cmd_repo_list,
}


def handle(argv, ctx):
    try:
        words = _find_command(argv)
        if not words:
            parse_flags(argv, GLOBAL_FLAGS)
            ctx.out("The Kubernetes package manager\n\nUsage:\n  helm [command]\n")
            return 0
        first = ALIASES.get(words[0], words[0])
        if first not in REAL_COMMANDS:
            raise HelmError(f'unknown command "{words[0]}" for "helm"\nRun \'helm --help\' for usage.')
        cmd = first
        if first in GROUPS:
            if len(words) < 2:
                raise HelmError(f'fake helm: "helm {first}" needs a subcommand', code=NOT_EMULATED_EXIT)
            sub = REPO_ALIASES.get(words[1], words[1]) if first == "repo" else words[1]
            cmd = f"{first} {sub}"
        if cmd not in HANDLERS:
            raise HelmError(
                "fake helm: `helm {}` is not emulated by tests/fakes (emulated: {}); "
                "answer it with a FAKE_TOOLS_SCRIPT rule".format(cmd, ", ".join(sorted(HANDLERS))),
                code=NOT_EMULATED_EXIT,
            )
        flags = dict(GLOBAL_FLAGS)
        flags.update(LOCAL_FLAGS[cmd])
        opts, positionals, ordered = parse_flags(argv, flags)
        if _flag_on(opts, "help"):
            ctx.out(f"Usage:\n  {USAGE[cmd]}\n")
            return 0
        # drop the command words from the positionals
        cmd_words = words[: len(cmd.split())]
        for word in cmd_words:
            positionals.remove(word)
        return HANDLERS[cmd](opts, positionals, ordered, ctx)
    except HelmError as exc:
        text = str(exc)
        ctx.err(text + "\n" if text.startswith("fake helm:") else f"Error: {text}\n")
        return exc.code
