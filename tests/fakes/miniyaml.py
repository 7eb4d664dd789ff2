"""A tiny YAML-subset reader and writer for the fake tools (stdlib only, no PyYAML).

Enough for eksctl ClusterConfig files, helm Chart.yaml and values files: block mappings,
block sequences (including ``- key: value`` items), plain / single- / double-quoted
scalars, comments, flow ``[a, b]`` / ``{a: b}`` collections, ``|`` / ``>`` block scalars and
a leading ``---``. Only the first document is read. Plain scalars stay strings except
``true``/``false``/``null``/``~`` (so ``version: 1.30`` stays "1.30", as eksctl means it).

Runs under any python3 >= 3.7.
"""

from __future__ import annotations

import json
import re

__all__ = ["YamlError", "loads", "dumps"]


class YamlError(ValueError):
    pass


def _strip_comment(text: str) -> str:
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"') and (i == 0 or text[i - 1] in " :[{,-"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _split_key(text: str):
    """``key: rest`` -> (key, rest); None when the line is not a mapping entry."""
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end > 0 and text[end + 1 : end + 2] == ":" and text[end + 2 : end + 3] in ("", " "):
            return text[1:end], text[end + 2 :].strip()
        return None
    if text[:1] in ("[", "{"):
        return None
    m = re.match(r"^([^:#][^:]*?|[^:#]*?:[^ ][^:]*?)\s*:(?:\s+(.*))?$", text)
    if not m:
        return None
    return m.group(1), (m.group(2) or "").strip()


def _scalar(text: str):
    text = text.strip()
    if text == "":
        return None
    if text[0] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text[1:-1]
    if text[0] == "'":
        return text[1:-1].replace("''", "'")
    if text[0] in "[{":
        value, rest = _flow(text, 0)
        if text[rest:].strip():
            raise YamlError(f"trailing text after flow collection: {text!r}")
        return value
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("null", "~"):
        return None
    return text


def _flow(text: str, i: int):
    """Parse a flow collection starting at text[i]; return (value, index after it)."""
    opener = text[i]
    closer = "]" if opener == "[" else "}"
    items = []
    i += 1
    buf = ""
    depth = 0
    quote = None
    while i < len(text):
        ch = text[i]
        if quote:
            buf += ch
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            buf += ch
        elif ch in "[{":
            value, i = _flow(text, i)
            items.append(value)
            buf = None  # marker: item already taken
            continue
        elif ch == closer and depth == 0:
            if buf is not None and buf.strip():
                items.append(buf.strip())
            i += 1
            break
        elif ch == ",":
            if buf is not None and buf.strip():
                items.append(buf.strip())
            buf = ""
        else:
            if buf is None:
                buf = ""
            buf += ch
        i += 1
    else:
        raise YamlError(f"unterminated flow collection: {text!r}")
    if opener == "[":
        return [(_scalar(v) if isinstance(v, str) else v) for v in items], i
    result = {}
    for item in items:
        if not isinstance(item, str):
            raise YamlError(f"unsupported flow mapping entry in {text!r}")
        kv = _split_key(item)
        if kv is None:
            result[item] = None
        else:
            result[kv[0]] = _scalar(kv[1])
    return result, i


class _Parser:
    def __init__(self, text: str):
        self.lines = []  # [indent, content, raw]
        for raw in text.splitlines():
            stripped = raw.strip()
            if stripped.startswith("---") and not self.lines:
                rest = stripped[3:].strip()
                if rest:
                    self.lines.append([len(raw) - len(raw.lstrip()), rest, raw])
                continue
            if stripped.startswith("---") or stripped == "...":
                if self.lines:
                    break
                continue
            self.lines.append([len(raw) - len(raw.lstrip(" ")), raw.strip(), raw])
        self.i = 0

    def _skip_blank(self):
        while self.i < len(self.lines):
            content = _strip_comment(self.lines[self.i][1])
            if content:
                return
            self.i += 1

    def parse(self):
        self._skip_blank()
        if self.i >= len(self.lines):
            return None
        return self._block(self.lines[self.i][0])

    def _is_seq(self, content: str) -> bool:
        return content == "-" or content.startswith("- ")

    def _block(self, indent: int):
        self._skip_blank()
        content = _strip_comment(self.lines[self.i][1])
        if self._is_seq(content):
            return self._seq(indent)
        if _split_key(content) is None:
            self.i += 1
            return _scalar(content)
        return self._map(indent)

    def _child(self, parent_indent: int, allow_same_indent_seq: bool):
        """The value of a key/item whose inline part was empty."""
        self._skip_blank()
        if self.i >= len(self.lines):
            return None
        indent = self.lines[self.i][0]
        content = _strip_comment(self.lines[self.i][1])
        if indent > parent_indent:
            return self._block(indent)
        if allow_same_indent_seq and indent == parent_indent and self._is_seq(content):
            return self._seq(indent)
        return None

    def _block_scalar(self, header: str, parent_indent: int) -> str:
        folded = header.startswith(">")
        keep = "+" in header
        strip = "-" in header
        out = []
        block_indent = None
        while self.i < len(self.lines):
            indent, _content, raw = self.lines[self.i]
            if raw.strip() == "":
                out.append("")
                self.i += 1
                continue
            if indent <= parent_indent:
                break
            if block_indent is None:
                block_indent = indent
            if indent < block_indent:
                break
            out.append(raw[block_indent:])
            self.i += 1
        while out and out[-1] == "" and not keep:
            out.pop()
        text = (" " if folded else "\n").join(out)
        if not strip:
            text += "\n"
        return text

    def _value(self, rest: str, indent: int, allow_same_indent_seq: bool):
        rest = _strip_comment(rest)
        if rest == "":
            return self._child(indent, allow_same_indent_seq)
        if rest[:1] in ("|", ">"):
            return self._block_scalar(rest, indent)
        return _scalar(rest)

    def _map(self, indent: int):
        result = {}
        while True:
            self._skip_blank()
            if self.i >= len(self.lines):
                break
            line_indent, content = self.lines[self.i][0], _strip_comment(self.lines[self.i][1])
            if line_indent < indent:
                break
            if line_indent > indent:
                raise YamlError(f"bad indentation at line: {self.lines[self.i][2]!r}")
            if self._is_seq(content):
                break
            kv = _split_key(content)
            if kv is None:
                raise YamlError(f"expected 'key: value' at line: {self.lines[self.i][2]!r}")
            self.i += 1
            result[kv[0]] = self._value(kv[1], indent, True)
        return result

    def _seq(self, indent: int):
        result = []
        while True:
            self._skip_blank()
            if self.i >= len(self.lines):
                break
            line_indent, content = self.lines[self.i][0], _strip_comment(self.lines[self.i][1])
            if line_indent != indent or not self._is_seq(content):
                break
            rest = content[1:]
            inner = rest.lstrip(" ")
            if inner == "":
                self.i += 1
                result.append(self._child(indent, False))
                continue
            item_indent = indent + 1 + (len(rest) - len(inner))
            if inner[:1] not in ("'", '"', "[", "{") and _split_key(inner) is not None or self._is_seq(inner):
                # "- key: value" starts a mapping (or "- - x" a sequence) at the item's column
                self.lines[self.i] = [item_indent, inner, self.lines[self.i][2]]
                result.append(self._block(item_indent))
            else:
                self.i += 1
                if inner[:1] in ("|", ">"):
                    result.append(self._block_scalar(inner, indent))
                else:
                    result.append(_scalar(inner))
        return result


def loads(text: str):
    """Parse the first YAML document of ``text`` (subset; see the module docstring)."""
    return _Parser(text).parse()


_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_./@+-][A-Za-z0-9_./@+ :-]*$")


def _dump_scalar(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if (
        _PLAIN_SAFE.match(text)
        and not text.endswith(" ")
        and ": " not in text
        and text.lower() not in ("true", "false", "yes", "no", "on", "off", "null", "~")
        and not re.match(r"^[-+]?(\d|\.\d)", text)
    ):
        return text
    return json.dumps(text, ensure_ascii=False)


def _dump(value, indent: int, out: list) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            out.append(pad + "{}")
        for key, item in value.items():
            k = _dump_scalar(str(key))
            if isinstance(item, dict) and item:
                out.append(f"{pad}{k}:")
                _dump(item, indent + 2, out)
            elif isinstance(item, list) and item:
                out.append(f"{pad}{k}:")
                _dump(item, indent, out)
            else:
                out.append(f"{pad}{k}: {_inline(item)}")
    elif isinstance(value, list):
        if not value:
            out.append(pad + "[]")
        for item in value:
            if isinstance(item, (dict, list)) and item:
                sub = []
                _dump(item, indent + 2, sub)
                first = sub[0][indent + 2 :]
                out.append(f"{pad}- {first}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_inline(item)}")
    else:
        out.append(pad + _dump_scalar(value))


def _inline(value) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _dump_scalar(value)


def dumps(value) -> str:
    """Block-style YAML for dicts/lists/scalars (what ``helm ... -o yaml`` looks like)."""
    out: list = []
    _dump(value, 0, out)
    return "\n".join(out) + "\n"
