"""Values shared by the Terraform sources (HCL and plan JSON).

Plain Python values (str, int, float, bool, None, list, dict) plus:
- `Unknown` (from iamgate.sources.policy_document) for what is known only at apply time;
- `Ref` / `RefUnknown`: a value read from another resource's attribute, remembering its address,
  so that attachments can be linked to the resource they name;
- `Encoded`: the result of `jsonencode()` or a policy document's `.json`, kept structured;
- `Text`: a string with the file and line it was read from (heredocs, `file()`).
"""
from __future__ import annotations

import json

from ..loaders import LDict, LList
from ..policy_document import Unknown


class Ref(str):
    """A known string read from a resource attribute (`aws_iam_role.x.name`)."""
    __slots__ = ("origin",)

    def __new__(cls, value: str, origin: str):
        obj = super().__new__(cls, value)
        obj.origin = origin
        return obj


class RefUnknown(Unknown):
    """An apply-time value read from a resource attribute (`aws_iam_policy.p.arn`)."""
    __slots__ = ("origin",)

    def __init__(self, reason: str, origin: str, text: str | None = None, line: int | None = None):
        super().__init__(reason, text, line)
        self.origin = origin


class Partial(Unknown):
    """A string template with apply-time parts: the known text around them is kept."""
    __slots__ = ("parts", "file")

    def __init__(self, parts: list, line: int | None = None, file: str | None = None):
        unknowns = [p for p in parts if isinstance(p, Unknown)]
        super().__init__(unknowns[0].reason, "".join(p.text if isinstance(p, Unknown) else p for p in parts),
                         line or unknowns[0].line)
        self.parts = parts
        self.file = file


class Encoded:
    """A JSON string Terraform would build; the structure is kept (with its lines)."""
    __slots__ = ("value", "file")

    def __init__(self, value, file: str | None = None):
        self.value = value
        self.file = file

    def __str__(self) -> str:
        """As Terraform's jsonencode writes it: keys sorted, no ASCII escaping, `<`, `>`, `&`, U+2028 and
        U+2029 escaped (Go's encoding/json)."""
        text = json.dumps(plain(self.value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        for c, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                       ("\u2029", "\\u2029")):
            text = text.replace(c, esc)
        return text

    def __eq__(self, other) -> bool:
        return isinstance(other, Encoded) and plain(self.value) == plain(other.value)

    __hash__ = None  # type: ignore[assignment]


class Text(str):
    """A string with the place it was read from."""
    __slots__ = ("file", "line")

    def __new__(cls, value: str, file: str | None, line: int | None):
        obj = super().__new__(cls, value)
        obj.file = file
        obj.line = line
        return obj


def origin_of(value) -> str | None:
    return getattr(value, "origin", None)


def plain(value):
    """The JSON-able form: unknown parts become their `${...}` text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Unknown):
        return value.text
    if isinstance(value, Encoded):
        return str(value)
    if isinstance(value, str):
        return str.__str__(value)
    return value


def has_unknown(value) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_unknown(v) for v in value)
    return False


def with_lines(value, line: int | None):
    """Plain JSON data as LDict/LList carrying `line`, for located statements."""
    if isinstance(value, dict) and not isinstance(value, LDict):
        return LDict({k: with_lines(v, line) for k, v in value.items()}, line=line)
    if isinstance(value, list) and not isinstance(value, LList):
        return LList([with_lines(v, line) for v in value], line=line)
    return value


class SDict(LDict):
    """A statement mapping that remembers its file (documents can merge statements from several files)."""
    __slots__ = ("file",)

    def __init__(self, *args, line: int | None = None, file: str | None = None, **kw):
        super().__init__(*args, line=line, **kw)
        self.file = file
