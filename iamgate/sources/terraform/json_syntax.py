"""Terraform's JSON syntax (`.tf.json`, `.tofu.json`, `*.tfvars.json`) read into the same blocks and
expression trees as native HCL, so one evaluator reads both.

The rules, from Terraform's "JSON Configuration Syntax" page
(https://developer.hashicorp.com/terraform/language/syntax/json) and HCL's JSON specification:
- the root object's properties are the top-level block types; each label of a block is one more
  level of nested object (`resource` -> type -> name -> body), and at any of these levels an array
  of objects stands for several blocks;
- in a block body, a property is an argument, or a nested block type where the schema says so;
  iamgate has no provider schemas, so it takes the nested block types of the blocks it reads
  (`_NESTED_BLOCKS`) as blocks and everything else as arguments;
- in an expression, a JSON string is a string template (`"${var.x}"` is the variable's value,
  `"$${"` a literal `${`), an object's property names are templates too, numbers, bools, null and
  arrays are themselves;
- exceptions: a variable's `type` is an expression written as a string, its `default` (and every
  value of a `.tfvars.json` file) is a literal value, never a template; a module's `source` and
  `version` are literal; a property named `//` is a comment and ignored.

The file is written out as native HCL (one argument per line) and parsed by the HCL grammar, then
every line is mapped back to the JSON file's line. The written text is checked to hold exactly the
arguments and blocks of the JSON, so no string can smuggle in an argument of its own.
"""
from __future__ import annotations

import re

from lark import Token, Tree

from ..loaders import LDict, LoadError, load_json
from .hcl import Body, parse_hcl, read_body
from .strings import matching_brace

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_LABELS = {"resource": 2, "data": 2, "module": 1, "variable": 1, "output": 1, "provider": 1, "locals": 0}
# nested block types of the blocks iamgate reads (aws_iam_policy_document, aws_iam_role, variable, meta)
_NESTED_BLOCKS = {"statement", "condition", "principals", "not_principals", "inline_policy", "content",
                  "lifecycle", "provisioner", "connection", "timeouts", "validation", "precondition",
                  "postcondition", "dynamic"}
_LITERAL = {("variable", "default"), ("module", "source"), ("module", "version"), ("variable", "description"),
            ("output", "description")}


def _quote(text: str, template: bool) -> str:
    """A JSON string as an HCL quoted template: literal text escaped, `${...}`/`%{...}` kept when a template."""
    out, i, n = ['"'], 0, len(text)
    while i < n:
        if template and text.startswith(("$${", "%%{"), i):
            out.append(text[i:i + 3])
            i += 3
            continue
        if template and text.startswith(("${", "%{"), i):
            end = matching_brace(text, i + 2)
            if end > 0:
                inner = text[i + 2:end].replace("\r", " ").replace("\n", " ")
                out.append(text[i:i + 2] + inner + "}")
                i = end + 1
                continue
        c = text[i]
        if not template and text.startswith(("${", "%{"), i):
            out.append(c + c)  # `$${`: a literal `${`
        elif c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
        i += 1
    out.append('"')
    return "".join(out)


def expression(value, template: bool = True) -> str:
    """A JSON value as the text of an equivalent HCL expression, on one line."""
    if isinstance(value, str):
        return _quote(value, template)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and value not in (float("inf"), float("-inf")) else "null"
    if isinstance(value, list):
        return "[" + ", ".join(expression(v, template) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_quote(str(k), template)} = {expression(v, template)}"
                               for k, v in value.items() if k != "//") + "}"
    raise LoadError(f"unexpected JSON value {type(value).__name__}")


class _Writer:
    def __init__(self):
        self.lines: list[str] = []
        self.line_map: list[int | None] = [None]  # generated line (1-based) -> JSON line
        self.shape: list = []  # the expected (kind, name) items, in order, nested for blocks

    def add(self, text: str, line: int | None) -> None:
        self.lines.append(text)
        self.line_map.append(line)

    def body(self, kind: str, obj, line: int | None, shape: list) -> None:
        if not isinstance(obj, dict):
            raise LoadError(f"a {kind} block must be a JSON object", line)
        key_lines = getattr(obj, "key_lines", {})
        for key, value in obj.items():
            kline = key_lines.get(key, line)
            if key == "//":
                continue
            if not _IDENT.match(key):
                raise LoadError(f"{key!r} is not a valid argument or block name", kline)
            if key in _NESTED_BLOCKS and _is_blocks(value):
                labels = 1 if key in ("dynamic", "provisioner") else 0
                self.blocks(key, value, labels, kline, shape, kind)
                continue
            if kind == "variable" and key == "type" and isinstance(value, str):
                text = value.replace("\n", " ")  # a type constraint written as a string
            else:
                text = expression(value, template=(kind, key) not in _LITERAL)
            self.add(f"{key} = {text}", kline)
            shape.append(("attr", key))

    def blocks(self, kind: str, value, labels: int, line: int | None, shape: list, parent: str = "",
               got: tuple = ()) -> None:
        """`value` holds blocks of `kind` with `labels` labels still to read; arrays are several blocks."""
        if isinstance(value, list):
            for item in value:
                self.blocks(kind, item, labels, getattr(item, "line", None) or line, shape, parent, got)
            return
        if not isinstance(value, dict):
            raise LoadError(f"a {kind} block must be a JSON object", line)
        if labels:
            key_lines = getattr(value, "key_lines", {})
            for label, inner in value.items():
                if label != "//":
                    self.blocks(kind, inner, labels - 1, key_lines.get(label, line), shape, parent, got + (label,))
            return
        header = " ".join([kind, *(_quote(lbl, template=False) for lbl in got)])
        self.add(header + " {", line)
        inner: list = []
        self.body(kind if not parent else parent + "." + kind, value, line, inner)
        self.add("}", line)
        shape.append(("block", kind, got, inner))


def _is_blocks(value) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and bool(value)
                                       and all(isinstance(v, dict) for v in value))


def _shape_of(body: Body) -> list:
    out: list = [("attr", name) for name in body.attrs]
    out += [("block", b.type, b.labels, _shape_of(b.body)) for b in body.blocks]
    return out


def _normal(shape: list) -> list:
    attrs = sorted(s for s in shape if s[0] == "attr")
    blocks = [("block", s[1], s[2], _normal(s[3])) for s in shape if s[0] == "block"]
    return attrs + blocks


def _remap(tree, line_map: list) -> None:
    """Lines of the written HCL -> lines of the JSON file."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            if node.line is not None and node.line < len(line_map):
                node.line = line_map[node.line] or node.line
            continue
        if isinstance(node, Tree):
            meta = node.meta
            if not meta.empty and getattr(meta, "line", None) and meta.line < len(line_map):
                meta.line = line_map[meta.line] or meta.line
            stack.extend(node.children)


def read_json_config(text: str, file: str) -> Body:
    """A `.tf.json`/`.tofu.json` file as a Body of blocks, with the JSON file's lines."""
    doc = load_json(text)
    if not isinstance(doc, dict):
        raise LoadError("a Terraform JSON configuration must be a JSON object", getattr(doc, "line", 1))
    w = _Writer()
    key_lines = getattr(doc, "key_lines", {})
    for kind, value in doc.items():
        if kind == "//" or kind not in _LABELS:
            continue  # terraform, provider-less blocks (moved, import, check) decide no grant
        line = key_lines.get(kind, 1)
        if kind == "locals":
            for item in value if isinstance(value, list) else [value]:
                w.blocks("locals", item, 0, line, w.shape)
            continue
        w.blocks(kind, value, _LABELS[kind], line, w.shape)
    hcl = "\n".join(w.lines) + "\n"
    try:
        tree = parse_hcl(hcl)
    except LoadError as e:
        where = w.line_map[e.line] if e.line and e.line < len(w.line_map) else None
        raise LoadError(f"invalid expression in the JSON configuration ({e.message})", where) from None
    _remap(tree, w.line_map)
    body = read_body(tree.children[0], file, hcl)
    if _normal(_shape_of(body)) != _normal(w.shape):
        raise LoadError("a string in this JSON configuration does not read as one expression")
    return body


def read_json_values(text: str, file: str) -> tuple[dict, dict]:
    """A `.tfvars.json` file: variable name -> literal value (never a template), and their lines."""
    doc = load_json(text)
    if not isinstance(doc, LDict):
        raise LoadError("a .tfvars.json file must be a JSON object", getattr(doc, "line", 1))
    values = {k: v for k, v in doc.items() if k != "//"}
    return values, dict(doc.key_lines)

