"""A static evaluator for Terraform expressions: walks the parse tree in a scope; anything that
depends on apply time becomes an `Unknown`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from hcl2.utils import process_escape_sequences
from lark import Token, Tree

from ..budget import charge, charge_text
from ..loaders import LDict, LList, LoadError
from ..policy_document import Unknown
from .exact import Inexact, nfc
from .hcl import EvalError, name_of, node_line, parse_expression, trees
from .strings import join_parts, split_template
from .values import Encoded, Partial, Text, plain

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z")  # cty's number syntax; no inf, nan, 0x

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
        src = self.src
        if isinstance(node, Tree) and node.data == "foreign_expr":  # merged from an override file
            node, src = node.children[0], str(node.children[2])
        meta = getattr(node, "meta", None)
        if meta is None or meta.empty:
            return "?"
        return src[meta.start_pos:meta.end_pos].strip()


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

    def _foreign_expr(self, node, scope):
        """An argument an override file merged into a block of another file: its own file and text."""
        inner, file, src = node.children
        return self.evaluate(inner, Scope(scope.ctx, str(file), str(src), scope.bindings))

    # literals
    def _expr_term(self, node, scope):
        return self.evaluate(trees(node)[0], scope)

    def _int_lit(self, node, scope):
        return int(str(node.children[0]))

    def _float_lit(self, node, scope):
        return float(str(node.children[0]))

    def _literal_value(self, node, scope):
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _string(self, node, scope):
        parts: list = []
        for part in trees(node):
            tok = part.children[0]
            if isinstance(tok, Token):
                if tok.type == "ESCAPED_INTERPOLATION":
                    parts.append(str(tok)[1:])
                elif tok.type == "ESCAPED_DIRECTIVE":
                    parts.append(str(tok)[1:])
                else:
                    parts.append(process_escape_sequences(str(tok)))
            elif tok.data == "interpolation":
                parts.append(self.evaluate(trees(tok)[0], scope))
            else:
                return unknown_at(scope, node, "template directives (%{...}) are not evaluated")
        result = join_parts(parts, node_line(node))
        if isinstance(result, str):
            charge_text(scope.file, result, "string templates", node_line(node))
        return result

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
        return LList([self.evaluate(c, scope) for c in trees(node)], line=node_line(node))

    def _object(self, node, scope):
        out = LDict(line=node_line(node))
        for elem in trees(node):
            key_node, value_node = trees(elem)[0], trees(elem)[-1]
            key = self._object_key(key_node, scope)
            if isinstance(key, Unknown):
                return unknown_at(scope, node, key.reason)
            out[key] = self.evaluate(value_node, scope)
            out.key_lines[key] = node_line(elem)
        return out

    def _object_key(self, key_node, scope):
        inner = trees(key_node)
        if not inner:  # a keyword used as a key
            return str(key_node.children[0])
        expr = inner[0]
        # a bare identifier is the key itself, not a variable
        if expr.data == "expr_term" and trees(expr) and trees(expr)[0].data == "identifier":
            return str(trees(expr)[0].children[0])
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
        cond, yes, no = trees(node)
        c = self.evaluate(cond, scope)
        if isinstance(c, Unknown):
            return unknown_at(scope, node, c.reason)
        return self.evaluate(yes if truthy(c) else no, scope)

    def _binary_op(self, node, scope):
        left_node, term = trees(node)[:2]
        op_node, right_node = trees(term)
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
        value = self.evaluate(trees(node)[0], scope)
        if isinstance(value, Unknown):
            return unknown_at(scope, node, value.reason)
        if op == "!":
            return not truthy(value)
        return -number(value)

    def _for_tuple_expr(self, node, scope):
        intro, body, *_ = trees(node)
        out = LList(line=node_line(node))
        for s in self._for_iter(node, scope):
            if isinstance(s, Unknown):
                return s
            out.append(self.evaluate(body, s))
        return out

    def _for_object_expr(self, node, scope):
        intro, key_node, value_node, *_ = trees(node)
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
        intro, *rest = trees(node)
        cond = rest[-1] if rest and rest[-1].data == "for_cond" else None
        names = [str(c.children[0]) for c in trees(intro) if c.data == "identifier"]
        coll = self.evaluate(trees(intro)[-1], scope)
        if isinstance(coll, Unknown):
            yield unknown_at(scope, node, coll.reason)
            return
        items = iterate(coll)
        charge(scope.file, len(items), "for expressions", node_line(node))
        for k, v in items:
            s = scope.bind(**({names[0]: k, names[1]: v} if len(names) == 2 else {names[0]: v}))
            c = self.evaluate(trees(cond)[0], s) if cond is not None else True
            if isinstance(c, Unknown):
                yield unknown_at(scope, node, c.reason)
                return
            if truthy(c):
                yield s

    def _function_call(self, node, scope):
        parts = trees(node)
        names = [str(p.children[0]) for p in parts if p.data == "identifier"]
        name = "::".join(names)
        args_node = next((p for p in parts if p.data == "arguments"), None)
        arg_nodes = trees(args_node) if args_node is not None else []
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
            result = fn(*args, scope=scope, node=node)
            if isinstance(result, (list, dict)):
                charge(scope.file, len(result), f"{name}()", node_line(node))
            elif isinstance(result, str):
                charge_text(scope.file, result, f"{name}()", node_line(node))
            return nfc(result) if type(result) is str else result  # Terraform's strings are NFC
        except EvalError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            raise EvalError(f"{name}(): {e}") from None


def flatten_traversal(node):
    """(root identifier or None, [(kind, arg)]) for a chain of .attr, [index] and splats."""
    steps: list = []
    while True:
        if node.data == "expr_term":
            inner = trees(node)
            if len(inner) == 1 and inner[0].data in ("identifier", "get_attr_expr_term", "index_expr_term",
                                                      "attr_splat_expr_term", "full_splat_expr_term"):
                node = inner[0]
                continue
            return None, [("expr", node)] + steps
        if node.data == "identifier":
            return node, steps
        base, op = trees(node)
        if node.data == "get_attr_expr_term":
            steps.insert(0, ("attr", name_of(trees(op)[0])))
        elif node.data == "index_expr_term":
            steps.insert(0, _index_step(op))
        else:  # splats: the rest of the chain applies to each element
            inner_steps = [("attr", name_of(trees(s)[0])) if s.data == "get_attr" else _index_step(s)
                           for s in trees(op)]
            steps = [("splat", inner_steps + steps)]
        node = base


def _index_step(op):
    if op.data == "short_index":
        return ("index", Tree("int_lit", [Token("INT_LITERAL", str(op.children[-1]))]))
    return ("index", trees(op)[0])


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
    if isinstance(value, str) and _DECIMAL.match(value):
        try:
            return int(value)
        except ValueError:
            return float(value)
    raise EvalError(f"a number is required, not {type(value).__name__}")


def _eq_form(value):
    if isinstance(value, Encoded):
        return str(value)
    if isinstance(value, str):
        return nfc(str.__str__(value))  # Terraform's strings are NFC-normalised
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise Inexact("a fractional number compared (Terraform's numbers are exact decimals)")
    return plain(value)


def same(left, right) -> bool:
    """Terraform's `==` of two known values."""
    return _eq_form(left) == _eq_form(right)


def binary(op: str, left, right):
    if op == "==":
        return same(left, right)
    if op == "!=":
        return not same(left, right)
    if op == "&&":
        return truthy(left) and truthy(right)
    if op == "||":
        return truthy(left) or truthy(right)
    a, b = number(left), number(right)
    if any(isinstance(x, float) and not x.is_integer() for x in (a, b)) and op in "+-*/%":
        raise Inexact(f"arithmetic ({op}) on a fractional number (Terraform's numbers are exact decimals)")
    if op == "%" and (a < 0 or b < 0):
        raise Inexact("% of a negative number")
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
