"""Values to text and back: string templates, their parts, and JSON strings with unknown parts.
"""
from __future__ import annotations

import json
import re

from ..loaders import LDict, LList, LoadError, load_json
from ..policy_document import Unknown
from .exact import nfc, number_text
from .hcl import EvalError
from .values import Encoded, Partial, has_unknown, plain


def to_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, Encoded):
        return str(value)
    if value is None:
        raise EvalError("cannot interpolate null")
    raise EvalError(f"cannot use a {type(value).__name__} in a string template")


def join_parts(parts: list, line: int | None):
    """The value of a string template: a single part keeps its type, unknown parts make a Partial."""
    if len(parts) == 1 and not isinstance(parts[0], str):
        return parts[0]
    flat: list = []
    for p in [x for part in parts for x in (encode_parts(part.value) if isinstance(part, Encoded)
                                            and has_unknown(part.value) else [part])]:
        if isinstance(p, Partial):
            flat.extend(p.parts)
        elif isinstance(p, Unknown):
            flat.append(p)
        else:
            text = to_text(p)
            if flat and isinstance(flat[-1], str):
                flat[-1] += text
            else:
                flat.append(text)
    if any(isinstance(p, Unknown) for p in flat):
        return Partial(flat, line)
    return nfc("".join(flat))  # cty normalises every string it makes


def encode_parts(value) -> list:
    """JSON text of a value with apply-time leaves left as Unknown parts (for string templates)."""
    if isinstance(value, Partial):
        return ['"'] + [json.dumps(p)[1:-1] if isinstance(p, str) else p for p in value.parts] + ['"']
    if isinstance(value, Unknown):
        return [value]
    if isinstance(value, dict):
        out: list = ["{"]
        for i, (k, v) in enumerate(value.items()):
            out += ([","] if i else []) + [json.dumps(str(k)) + ":"] + encode_parts(v)
        return out + ["}"]
    if isinstance(value, (list, tuple)):
        out = ["["]
        for i, v in enumerate(value):
            out += ([","] if i else []) + encode_parts(v)
        return out + ["]"]
    return [json.dumps(plain(value))]


# -- string templates (heredocs, templatefile) -------------------------------

def split_template(text: str) -> list:
    """Literal text and ('interp'|'directive', source) pieces of a template."""
    pieces: list = []
    buf = []
    i, n = 0, len(text)
    while i < n:
        two = text[i:i + 2]
        if text[i:i + 3] in ("$${", "%%{"):
            buf.append(text[i + 1:i + 3])
            i += 3
            continue
        if two in ("${", "%{"):
            end = matching_brace(text, i + 2)
            if end < 0:
                buf.append(text[i:])
                break
            if buf:
                pieces.append("".join(buf))
                buf = []
            inner = text[i + 2:end].strip()
            pieces.append(("interp" if two == "${" else "directive", inner.strip("~").strip()))
            i = end + 1
            continue
        buf.append(text[i])
        i += 1
    if buf:
        pieces.append("".join(buf))
    return pieces


def matching_brace(text: str, start: int) -> int:
    depth, i, n = 0, start, len(text)
    quote = False
    while i < n:
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                quote = False
        elif c == '"':
            quote = True
        elif c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


# -- JSON strings -> documents -----------------------------------------------

_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RX = re.compile("\ue000(\\d+)\ue001")


def decode_json(value, file: str | None = None, line: int | None = None):
    """A JSON string (plain, Text, Partial with apply-time parts, Encoded) -> data with lines.

    Apply-time parts stay Unknown where they sit; a document that is not JSON raises LoadError.
    """
    if isinstance(value, Encoded):
        return value.value
    if isinstance(value, Partial):
        unknowns: list[Unknown] = []
        out = []
        in_string = False
        for p in value.parts:
            if isinstance(p, Unknown):
                unknowns.append(p)
                mark = _SENTINEL.format(len(unknowns) - 1)
                out.append(mark if in_string else json.dumps(mark))
            else:
                in_string = _ends_in_string(p, in_string)
                out.append(p)
        data = _load_json_at("".join(out), value.line or line)
        return _restore(data, unknowns)
    if isinstance(value, Unknown):
        return value
    if isinstance(value, str):
        return _load_json_at(str.__str__(value), getattr(value, "line", None) or line)
    raise LoadError(f"expected a JSON string, not {type(value).__name__}")


def _ends_in_string(text: str, in_string: bool) -> bool:
    i = 0
    while i < len(text):
        c = text[i]
        if in_string and c == "\\":
            i += 2
            continue
        if c == '"':
            in_string = not in_string
        i += 1
    return in_string


def _load_json_at(text: str, line: int | None):
    pad = "\n" * max((line or 1) - 1, 0)
    return load_json(pad + text)


def _restore(value, unknowns: list[Unknown]):
    if isinstance(value, LDict):
        out = LDict({k: _restore(v, unknowns) for k, v in value.items()}, line=value.line)
        out.key_lines = value.key_lines
        return out
    if isinstance(value, LList):
        return LList([_restore(v, unknowns) for v in value], line=value.line)
    if isinstance(value, str) and "\ue000" in value:
        parts: list = []
        pos = 0
        for m in _SENTINEL_RX.finditer(value):
            if m.start() > pos:
                parts.append(value[pos:m.start()])
            parts.append(unknowns[int(m.group(1))])
            pos = m.end()
        if pos < len(value):
            parts.append(value[pos:])
        return parts[0] if len(parts) == 1 else Partial(parts)
    return value
