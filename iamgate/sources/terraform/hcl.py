"""HCL parsing (python-hcl2's Lark grammar) and a static evaluator for Terraform expressions.

Nothing from the scanned repository is executed: expressions are evaluated by walking the
parse tree, and anything that depends on apply time becomes an `Unknown`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput

from hcl2.api import parses_to_tree
from hcl2.utils import process_escape_sequences

from ..loaders import LDict, LList, LoadError, load_json
from ..policy_document import Unknown
from .values import Encoded, Partial, Text, has_unknown, plain

_HEREDOC_OPEN = re.compile(r"<<-?([A-Za-z][A-Za-z0-9._-]*)[ \t]*\r?\n")


class EvalError(Exception):
    """An expression Terraform itself would reject (or one this evaluator cannot follow)."""


# -- parsing -----------------------------------------------------------------

def fix_heredoc_markers(text: str) -> str:
    """Strip trailing blanks after heredoc closing markers (`POLICY  `): Terraform accepts them,
    the grammar does not. Line numbers are unchanged."""
    markers = set(_HEREDOC_OPEN.findall(text))
    if not markers:
        return text
    pattern = re.compile(r"^([ \t]*(?:" + "|".join(re.escape(m) for m in markers) + r"))[ \t]+(\r?)$", re.M)
    return pattern.sub(r"\1\2", text)


def parse_hcl(text: str) -> Tree:
    """The Lark tree of an HCL file; a LoadError with a line when it cannot be parsed."""
    try:
        return parses_to_tree(fix_heredoc_markers(text))
    except UnexpectedInput as e:
        detail = str(e).strip().splitlines()[0]
        token = getattr(e, "token", None)
        if token is not None:
            detail = ("unexpected end of file (a block, string or heredoc is not closed)" if token.type == "$END"
                      else f"unexpected {str(token)[:40]!r}")
        if isinstance(e, UnexpectedCharacters):
            detail = f"unexpected character {text[e.pos_in_stream:e.pos_in_stream + 1]!r}" \
                if 0 <= e.pos_in_stream < len(text) else "unexpected character"
        raise LoadError(f"invalid HCL: {detail}", getattr(e, "line", None) or None) from None
    except (LarkError, RecursionError) as e:
        raise LoadError(f"invalid HCL: {type(e).__name__}") from None


@lru_cache(maxsize=4096)
def parse_expression(text: str) -> Tree:
    tree = parse_hcl(f"x = {text}\n")
    attr = next(c for c in _trees(tree.children[0]) if c.data == "attribute")
    return _trees(attr)[-1]


def _trees(node) -> list[Tree]:
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def node_line(node) -> int | None:
    if isinstance(node, Token):
        return node.line
    meta = getattr(node, "meta", None)
    return getattr(meta, "line", None) if meta is not None and not meta.empty else None


@dataclass
class Block:
    type: str
    labels: tuple[str, ...]
    body: "Body"
    line: int | None
    file: str
    src: str


@dataclass
class Body:
    attrs: dict = field(default_factory=dict)  # name -> expression node
    attr_lines: dict = field(default_factory=dict)
    blocks: list = field(default_factory=list)

    def blocks_of(self, type_: str) -> list[Block]:
        return [b for b in self.blocks if b.type == type_]


def _name(node) -> str:
    if isinstance(node, Token):
        return str(node)
    if node.data == "string":
        return "".join(_string_chars(p) for p in _trees(node))
    return "".join(str(t) for t in node.scan_values(lambda v: isinstance(v, Token)))


def _string_chars(part: Tree) -> str:
    tok = part.children[0]
    return process_escape_sequences(str(tok)) if isinstance(tok, Token) else ""


def read_body(tree: Tree, file: str, src: str) -> Body:
    body = Body()
    for item in _trees(tree):
        if item.data == "attribute":
            parts = _trees(item)
            name = _name(parts[0])
            body.attrs[name] = parts[-1]
            body.attr_lines[name] = node_line(item)
        elif item.data == "block":
            parts = _trees(item)
            inner = parts[-1]
            labels = tuple(_name(p) for p in parts[1:-1])
            body.blocks.append(Block(_name(parts[0]), labels, read_body(inner, file, src), node_line(item), file, src))
    return body


def read_file(text: str, file: str) -> Body:
    tree = parse_hcl(text)
    src = fix_heredoc_markers(text)
    return read_body(tree.children[0], file, src)


# -- evaluation --------------------------------------------------------------

class Obj:
    """A lazily evaluated object (a resource instance, a module's outputs)."""

    def get(self, name: str, line: int | None):
        raise EvalError(f"unsupported attribute {name!r}")


@dataclass
class Scope:
    ctx: object  # the module instance: var/local/resources/module/path/file lookups
    file: str
    src: str
    bindings: dict = field(default_factory=dict)

    def bind(self, **names) -> "Scope":
        return Scope(self.ctx, self.file, self.src, {**self.bindings, **names})

    def text_of(self, node) -> str:
        meta = getattr(node, "meta", None)
        if meta is None or meta.empty:
            return "?"
        return self.src[meta.start_pos:meta.end_pos].strip()


def unknown_at(scope: Scope, node, reason: str) -> Unknown:
    return Unknown(reason, "${" + scope.text_of(node) + "}", node_line(node))


class Evaluator:
    """Evaluate expression nodes in a Scope. Apply-time values come back as Unknown."""

    def __init__(self, functions: dict):
        self.functions = functions

    def evaluate(self, node, scope: Scope):
        method = getattr(self, "_" + node.data, None)
        if method is None:
            raise EvalError(f"unsupported expression {node.data}")
        return method(node, scope)

    def safe(self, node, scope: Scope):
        """eval, with Terraform errors turned into Unknown values."""
        try:
            return self.evaluate(node, scope)
        except EvalError as e:
            return unknown_at(scope, node, f"cannot evaluate: {e}")
        except RecursionError:
            return unknown_at(scope, node, "cannot evaluate: nested too deeply")
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            return unknown_at(scope, node, f"cannot evaluate: {type(e).__name__}")

    # literals
    def _expr_term(self, node, scope):
        return self.evaluate(_trees(node)[0], scope)

    def _int_lit(self, node, scope):
        return int(str(node.children[0]))

    def _float_lit(self, node, scope):
        return float(str(node.children[0]))

    def _literal_value(self, node, scope):
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _string(self, node, scope):
        parts: list = []
        for part in _trees(node):
            tok = part.children[0]
            if isinstance(tok, Token):
                if tok.type == "ESCAPED_INTERPOLATION":
                    parts.append(str(tok)[1:])
                elif tok.type == "ESCAPED_DIRECTIVE":
                    parts.append(str(tok)[1:])
                else:
                    parts.append(process_escape_sequences(str(tok)))
            elif tok.data == "interpolation":
                parts.append(self.evaluate(_trees(tok)[0], scope))
            else:
                return unknown_at(scope, node, "template directives (%{...}) are not evaluated")
        return join_parts(parts, node_line(node))

    def _template_string(self, node, scope):
        return process_escape_sequences(str(node.children[0])[2:-2])

    def _heredoc_template(self, node, scope, trim=False):
        raw = str(node.children[0])
        first_nl = raw.index("\n")
        lines = raw[first_nl + 1:].split("\n")
        # drop the closing marker line (and the empty string after its newline)
        while lines and not lines[-1].strip():
            lines.pop()
        lines = lines[:-1]
        if trim:
            indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()]
            cut = min(indents) if indents else 0
            lines = [ln[cut:] for ln in lines]
        body = "\n".join(lines) + ("\n" if lines else "")
        line = (node_line(node) or 1) + 1
        return render_template(self, body, scope, scope.file, line)

    def _heredoc_template_trim(self, node, scope):
        return self._heredoc_template(node, scope, trim=True)

    def _tuple(self, node, scope):
        return LList([self.evaluate(c, scope) for c in _trees(node)], line=node_line(node))

    def _object(self, node, scope):
        out = LDict(line=node_line(node))
        for elem in _trees(node):
            key_node, value_node = _trees(elem)[0], _trees(elem)[-1]
            key = self._object_key(key_node, scope)
            if isinstance(key, Unknown):
                return unknown_at(scope, node, key.reason)
            out[key] = self.evaluate(value_node, scope)
            out.key_lines[key] = node_line(elem)
        return out

    def _object_key(self, key_node, scope):
        inner = _trees(key_node)
        if not inner:  # a keyword used as a key
            return str(key_node.children[0])
        expr = inner[0]
        # a bare identifier is the key itself, not a variable
        if expr.data == "expr_term" and _trees(expr) and _trees(expr)[0].data == "identifier":
            return str(_trees(expr)[0].children[0])
        if expr.data == "keyword":
            return str(expr.children[0])
        key = self.evaluate(expr, scope)
        if isinstance(key, Unknown):
            return key
        if isinstance(key, (str, int, float)) and not isinstance(key, bool):
            return str(key)
        raise EvalError("object keys must be strings")

    def _keyword(self, node, scope):
        raise EvalError(f"unexpected keyword {node.children[0]}")

    # references
    def _identifier(self, node, scope):
        return self._traversal(node, scope)

    def _get_attr_expr_term(self, node, scope):
        return self._traversal(node, scope)

    def _index_expr_term(self, node, scope):
        return self._traversal(node, scope)

    def _attr_splat_expr_term(self, node, scope):
        return self._traversal(node, scope)

    def _full_splat_expr_term(self, node, scope):
        return self._traversal(node, scope)

    def _traversal(self, node, scope):
        root, steps = flatten_traversal(node)
        if root is None:  # a traversal on an arbitrary expression: (expr).attr
            value = self.evaluate(steps[0][1], scope)
            steps = steps[1:]
        else:
            name = str(root.children[0])
            if name in scope.bindings:
                value = scope.bindings[name]
            else:
                value, steps = scope.ctx.reference(name, steps, scope, node)
        return self.apply_steps(value, steps, scope, node)

    def apply_steps(self, value, steps, scope, node):
        for i, (kind, arg) in enumerate(steps):
            if isinstance(value, Unknown):
                return self._unknown_from(value, scope, node)
            if kind == "attr":
                value = get_attr(value, arg, node_line(node))
            elif kind == "index":
                key = self.evaluate(arg, scope)
                if isinstance(key, Unknown):
                    return unknown_at(scope, node, key.reason)
                value = get_index(value, key)
            elif kind == "splat":
                items = value if isinstance(value, list) else ([] if value is None else [value])
                rest = arg
                value = LList([self.apply_steps(v, rest, scope, node) for v in items])
                return value
        return value

    def _unknown_from(self, value: Unknown, scope, node):
        cls = type(value)
        if hasattr(value, "origin"):
            return cls(value.reason, value.origin, "${" + scope.text_of(node) + "}", node_line(node))
        return Unknown(value.reason, "${" + scope.text_of(node) + "}", node_line(node))

    # operators
    def _conditional(self, node, scope):
        cond, yes, no = _trees(node)
        c = self.evaluate(cond, scope)
        if isinstance(c, Unknown):
            return unknown_at(scope, node, c.reason)
        return self.evaluate(yes if truthy(c) else no, scope)

    def _binary_op(self, node, scope):
        left_node, term = _trees(node)[:2]
        op_node, right_node = _trees(term)
        op = str(op_node.children[0])
        left = self.evaluate(left_node, scope)
        if op == "&&" and left is False:
            return False
        if op == "||" and left is True:
            return True
        right = self.evaluate(right_node, scope)
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            u = left if isinstance(left, Unknown) else right
            return unknown_at(scope, node, u.reason)
        return binary(op, left, right)

    def _unary_op(self, node, scope):
        op = str(node.children[0])
        value = self.evaluate(_trees(node)[0], scope)
        if isinstance(value, Unknown):
            return unknown_at(scope, node, value.reason)
        if op == "!":
            return not truthy(value)
        return -number(value)

    def _for_tuple_expr(self, node, scope):
        intro, body, *_ = _trees(node)
        out = LList(line=node_line(node))
        for s in self._for_iter(node, scope):
            if isinstance(s, Unknown):
                return s
            out.append(self.evaluate(body, s))
        return out

    def _for_object_expr(self, node, scope):
        intro, key_node, value_node, *_ = _trees(node)
        grouping = any(isinstance(t, Token) and t.type == "ELLIPSIS" for t in node.children)
        out = LDict(line=node_line(node))
        for s in self._for_iter(node, scope):
            if isinstance(s, Unknown):
                return s
            key = self.evaluate(key_node, s)
            if isinstance(key, Unknown):
                return unknown_at(scope, node, key.reason)
            value = self.evaluate(value_node, s)
            if grouping:
                out.setdefault(str(key), LList()).append(value)
            else:
                out[str(key)] = value
        return out

    def _for_iter(self, node, scope):
        """The scope of each element a for expression keeps (its `if` holds); Unknown if that is apply-time."""
        intro, *rest = _trees(node)
        cond = rest[-1] if rest and rest[-1].data == "for_cond" else None
        names = [str(c.children[0]) for c in _trees(intro) if c.data == "identifier"]
        coll = self.evaluate(_trees(intro)[-1], scope)
        if isinstance(coll, Unknown):
            yield unknown_at(scope, node, coll.reason)
            return
        for k, v in iterate(coll):
            s = scope.bind(**({names[0]: k, names[1]: v} if len(names) == 2 else {names[0]: v}))
            c = self.evaluate(_trees(cond)[0], s) if cond is not None else True
            if isinstance(c, Unknown):
                yield unknown_at(scope, node, c.reason)
                return
            if truthy(c):
                yield s

    def _function_call(self, node, scope):
        parts = _trees(node)
        names = [str(p.children[0]) for p in parts if p.data == "identifier"]
        name = "::".join(names)
        args_node = next((p for p in parts if p.data == "arguments"), None)
        arg_nodes = _trees(args_node) if args_node is not None else []
        expand = args_node is not None and any(isinstance(t, Token) and t.type == "ELLIPSIS"
                                               for t in args_node.children)
        fn = self.functions.get(name)
        if fn is None:
            return unknown_at(scope, node, f"function {name}() is not evaluated statically")
        if getattr(fn, "lazy", False):
            return fn(self, arg_nodes, scope, node)
        args = [self.evaluate(a, scope) for a in arg_nodes]
        if expand and args:
            last = args.pop()
            if isinstance(last, Unknown):
                return unknown_at(scope, node, last.reason)
            args.extend(list(last) if isinstance(last, (list, tuple)) else [last])
        if not getattr(fn, "accepts_unknown", False):
            for a in args:
                if isinstance(a, Unknown):
                    return unknown_at(scope, node, a.reason)
        try:
            return fn(*args, scope=scope, node=node)
        except EvalError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            raise EvalError(f"{name}(): {e}") from None


def flatten_traversal(node):
    """(root identifier or None, [(kind, arg)]) for a chain of .attr, [index] and splats."""
    steps: list = []
    while True:
        if node.data == "expr_term":
            inner = _trees(node)
            if len(inner) == 1 and inner[0].data in ("identifier", "get_attr_expr_term", "index_expr_term",
                                                      "attr_splat_expr_term", "full_splat_expr_term"):
                node = inner[0]
                continue
            return None, [("expr", node)] + steps
        if node.data == "identifier":
            return node, steps
        base, op = _trees(node)
        if node.data == "get_attr_expr_term":
            steps.insert(0, ("attr", _name(_trees(op)[0])))
        elif node.data == "index_expr_term":
            steps.insert(0, _index_step(op))
        else:  # splats: the rest of the chain applies to each element
            inner_steps = [("attr", _name(_trees(s)[0])) if s.data == "get_attr" else _index_step(s)
                           for s in _trees(op)]
            steps = [("splat", inner_steps + steps)]
        node = base


def _index_step(op):
    if op.data == "short_index":
        return ("index", Tree("int_lit", [Token("INT_LITERAL", str(op.children[-1]))]))
    return ("index", _trees(op)[0])


def get_attr(value, name: str, line=None):
    if isinstance(value, Obj):
        return value.get(name, line)
    if isinstance(value, dict):
        if name in value:
            return value[name]
        raise EvalError(f"no attribute {name!r}")
    if value is None:
        raise EvalError(f"attribute {name!r} of null")
    raise EvalError(f"cannot read attribute {name!r} of a {type(value).__name__}")


def get_index(value, key):
    if isinstance(value, dict):
        k = str(key) if not isinstance(key, bool) else str(key).lower()
        if k in value:
            return value[k]
        raise EvalError(f"no key {k!r}")
    if isinstance(value, (list, tuple)):
        try:
            return value[int(key)]
        except (IndexError, ValueError, TypeError):
            raise EvalError(f"index {key!r} out of range") from None
    if isinstance(value, Obj):
        return value.get(str(key), None)
    raise EvalError(f"cannot index a {type(value).__name__}")


def iterate(coll):
    if isinstance(coll, dict):
        return [(k, coll[k]) for k in sorted(coll)]
    if isinstance(coll, (list, tuple, set, frozenset)):
        return list(enumerate(coll))
    if coll is None:
        raise EvalError("cannot iterate over null")
    raise EvalError(f"cannot iterate over a {type(coll).__name__}")


def truthy(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise EvalError(f"a condition must be a bool, not {type(value).__name__}")


def number(value):
    if isinstance(value, bool):
        raise EvalError("a number is required")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                pass
    raise EvalError(f"a number is required, not {type(value).__name__}")


def _eq_form(value):
    if isinstance(value, Encoded):
        return str(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return plain(value)


def binary(op: str, left, right):
    if op == "==":
        return _eq_form(left) == _eq_form(right)
    if op == "!=":
        return _eq_form(left) != _eq_form(right)
    if op == "&&":
        return truthy(left) and truthy(right)
    if op == "||":
        return truthy(left) or truthy(right)
    a, b = number(left), number(right)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            raise EvalError("division by zero")
        r = a / b
        return int(r) if r.is_integer() else r
    if op == "%":
        return a % b
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def to_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
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
    return "".join(flat)


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
            end = _matching_brace(text, i + 2)
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


def _matching_brace(text: str, start: int) -> int:
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


def render_template(ev: Evaluator, text: str, scope: Scope, file: str | None, line: int | None):
    """Evaluate a template's interpolations; a Text (with its place) when fully known."""
    parts: list = []
    for piece in split_template(text):
        if isinstance(piece, str):
            parts.append(piece)
            continue
        kind, source = piece
        if kind == "directive":
            return Unknown("template directives (%{...}) are not evaluated", text, line)
        try:
            node = parse_expression(source)
        except LoadError as e:
            return Unknown(f"template expression ${{{source}}} cannot be parsed: {e.message}",
                           "${" + source + "}", line)
        sub = Scope(scope.ctx, scope.file, f"x = {source}\n", scope.bindings)
        value = ev.safe(node, sub)
        if isinstance(value, Unknown):
            value = Unknown(value.reason, value.text if value.text != "${?}" else "${" + source + "}", line)
        parts.append(value)
    result = join_parts(parts or [""], line)
    if isinstance(result, str):
        return Text(result, file, line)
    if isinstance(result, Partial):
        result.line, result.file = line, file
    return result


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
