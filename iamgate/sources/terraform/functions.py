"""Terraform built-in functions that matter for IAM policies, evaluated without running anything.

Functions not listed here make an Unknown ("not evaluated statically"). `file()` and
`templatefile()` read only inside the scanned repository (the module context checks the path).
"""
from __future__ import annotations

import json
import posixpath

from ..loaders import LDict, LList, LoadError
from ..policy_document import Unknown
from .exact import GO_SPACE, Inexact, ascii_only, go_replace_all, go_title, grapheme_length, nfc
from .expressions import Scope, number, render_template, same, unknown_at
from .hcl import EvalError
from .strings import decode_json, to_text
from .values import Encoded, has_unknown

FUNCTIONS: dict = {}  # what each computes exactly, and what is unknown instead: exact.EXACTNESS


def fn(name: str, accepts_unknown: bool = False, lazy: bool = False):
    def deco(f):
        f.accepts_unknown = accepts_unknown
        f.lazy = lazy
        FUNCTIONS[name] = f
        return f
    return deco


def _list(value) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise EvalError(f"a list is required, not {type(value).__name__}")


def _str(value) -> str:
    return to_text(value)


@fn("jsonencode", accepts_unknown=True)
def _jsonencode(value, scope: Scope, node):
    return Encoded(value, scope.file)


@fn("jsondecode")
def _jsondecode(value, scope, node):
    try:
        return decode_json(value, scope.file)
    except LoadError as e:
        raise EvalError(e.message) from None


@fn("file")
def _file(path, scope: Scope, node):
    return scope.ctx.read_file(_str(path), scope, node)


@fn("fileexists")
def _fileexists(path, scope: Scope, node):
    return scope.ctx.file_exists(_str(path), scope, node)


@fn("templatefile", accepts_unknown=True)
def _templatefile(path, variables, scope: Scope, node):
    if isinstance(path, Unknown):
        return unknown_at(scope, node, path.reason)
    text = scope.ctx.read_file(_str(path), scope, node)
    if isinstance(text, Unknown):
        return text
    if isinstance(variables, Unknown):
        return unknown_at(scope, node, variables.reason)
    if not isinstance(variables, dict):
        raise EvalError("templatefile() takes a map of variables")
    tscope = Scope(_TemplateVars(variables), text.file or scope.file, "", {})
    return render_template(evaluator(), str(text), tscope, text.file, 1)


class _TemplateVars:
    """The only names a template file sees: its variables."""

    def __init__(self, variables: dict):
        self.variables = variables

    def reference(self, name, steps, scope, node):
        if name in self.variables:
            return self.variables[name], steps
        raise EvalError(f"template variable {name!r} is not given")

    def read_file(self, path, scope, node):
        raise EvalError("file() inside a template is not followed")

    file_exists = read_file


@fn("try", lazy=True)
def _try(ev, arg_nodes, scope, node):
    for a in arg_nodes:
        try:
            return ev.evaluate(a, scope)
        except Inexact as e:  # Terraform may well succeed here: unknown, not the next argument
            return unknown_at(scope, node, str(e))
        except EvalError:
            continue
    raise EvalError("no argument of try() could be evaluated")


@fn("can", lazy=True)
def _can(ev, arg_nodes, scope, node):
    try:
        value = ev.evaluate(arg_nodes[0], scope)
    except Inexact as e:
        return unknown_at(scope, node, str(e))
    except EvalError:
        return False
    return unknown_at(scope, node, value.reason) if isinstance(value, Unknown) else True


@fn("format")
def _format(fmt, *args, scope, node):
    out, i, n, argi = [], 0, len(fmt), 0
    while i < n:
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        if fmt[i + 1:i + 2] == "%":
            out.append("%")
            i += 2
            continue
        j = i + 1
        while j < n and not fmt[j].isalpha():
            j += 1
        verb = fmt[j:j + 1]
        if argi >= len(args):
            raise EvalError("format(): not enough arguments")
        arg = args[argi]
        argi += 1
        if j != i + 1 or verb not in ("s", "d", "q", "v") or isinstance(arg, (list, dict, Encoded)):
            raise Inexact(f"format() verb %{fmt[i + 1:j + 1]} with flags, width or of a collection")
        if verb == "q":
            text = _str(arg)
            if not text.isascii() or any(c in text for c in "<>&") or not text.isprintable():
                raise Inexact("format() %q of text Go quotes differently")
            out.append(json.dumps(text))
        elif verb == "d":
            value = number(arg)
            if isinstance(value, float) and not value.is_integer():
                raise Inexact("format() %d of a fractional number")
            out.append(str(int(value)))
        else:
            out.append(_str(arg))
        i = j + 1
    return "".join(out)


@fn("join")
def _join(sep, *lists, scope, node):
    return sep.join(_str(x) for lst in lists for x in _list(lst))


@fn("concat")
def _concat(*lists, scope, node):
    return LList([x for lst in lists for x in _list(lst)])


@fn("merge", accepts_unknown=True)
def _merge(*maps, scope, node):
    out = LDict()
    for m in maps:
        if m is None:
            continue
        if isinstance(m, Unknown):
            return unknown_at(scope, node, m.reason)
        if not isinstance(m, dict):
            raise EvalError("merge() takes maps")
        out.update(m)
        if out.line is None:
            out.line = getattr(m, "line", None)
    return out


@fn("flatten")
def _flatten(value, scope, node):
    out = LList()

    def walk(v):
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        else:
            out.append(v)
    walk(_list(value))
    return out


def _dedupe(items):
    seen, out = [], LList()
    for x in items:
        key = json.dumps(x, sort_keys=True, default=str)
        if key not in seen:
            seen.append(key)
            out.append(x)
    return out


@fn("distinct")
def _distinct(value, scope, node):
    return _dedupe(_list(value))


@fn("toset")
def _toset(value, scope, node):
    if has_unknown(value):
        return unknown_at(scope, node, "a set with apply-time elements")
    items = _dedupe([nfc(x) if isinstance(x, str) else x for x in _list(value)])
    return LList(sorted(items)) if all(isinstance(x, str) for x in items) else items  # Terraform's set order


@fn("tolist")
def _tolist(value, scope, node):
    return LList(_list(value))


@fn("tomap")
def _tomap(value, scope, node):
    if not isinstance(value, dict):
        raise EvalError("tomap() takes a map")
    return value


@fn("compact")
def _compact(value, scope, node):
    return LList(x for x in _list(value) if x not in (None, ""))


for _n, _f in {"lower": lambda s: ascii_only(s, "lower()").lower(), "upper": lambda s: ascii_only(s, "upper()").upper(),
               "trimspace": lambda s: s.strip(GO_SPACE), "title": go_title,
               "chomp": lambda s: s.rstrip("\r\n")}.items():
    fn(_n)(lambda s, scope, node, _f=_f: _f(_str(s)))


@fn("tostring")
def _tostring(value, scope, node):
    return None if value is None else _str(value)


@fn("tonumber")
def _tonumber(value, scope, node):
    return None if value is None else number(value)


@fn("tobool")
def _tobool(value, scope, node):
    if value is None or isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise EvalError("tobool() takes a bool")


@fn("replace")
def _replace(s, old, new, scope, node):
    s, old, new = _str(s), _str(old), _str(new)
    if len(old) > 1 and old.startswith("/") and old.endswith("/"):
        return go_replace_all(old[1:-1], s, new)  # RE2 in linear time; here with a time limit
    return s.replace(old, new)


@fn("split")
def _split(sep, s, scope, node):
    return LList(_str(s).split(_str(sep)))


@fn("length")
def _length(value, scope, node):
    if isinstance(value, str):
        return grapheme_length(value)
    if isinstance(value, (list, tuple, dict)):
        return len(value)
    raise EvalError("length() takes a string, list or map")


@fn("lookup", accepts_unknown=True)
def _lookup(m, key, *default, scope, node):
    if isinstance(m, Unknown) or isinstance(key, Unknown):
        return unknown_at(scope, node, (m if isinstance(m, Unknown) else key).reason)
    if not isinstance(m, dict):
        raise EvalError("lookup() takes a map")
    if _str(key) in m:
        return m[_str(key)]
    if default:
        return default[0]
    raise EvalError(f"lookup(): no key {key!r}")


@fn("element")
def _element(lst, index, scope, node):
    items = _list(lst)
    if not items:
        raise EvalError("element() of an empty list")
    i = number(index)
    if i < 0 or i != int(i):
        raise Inexact("element() with a negative or fractional index")
    return items[int(i) % len(items)]


@fn("coalesce", accepts_unknown=True)
def _coalesce(*args, scope, node):
    for a in args:
        if isinstance(a, Unknown):
            return unknown_at(scope, node, a.reason)
        if a is not None and a != "":
            return a
    raise EvalError("coalesce(): no non-null argument")


@fn("coalescelist", accepts_unknown=True)
def _coalescelist(*args, scope, node):
    for a in args:
        if isinstance(a, Unknown):
            return unknown_at(scope, node, a.reason)
        if a:
            return a
    raise EvalError("coalescelist(): no non-empty list")


@fn("keys")
def _keys(m, scope, node):
    return LList(sorted(m)) if isinstance(m, dict) else _fail("keys() takes a map")


@fn("values")
def _values(m, scope, node):
    return LList(m[k] for k in sorted(m)) if isinstance(m, dict) else _fail("values() takes a map")


def _fail(msg):
    raise EvalError(msg)


@fn("contains")
def _contains(lst, value, scope, node):
    return any(same(x, value) for x in _list(lst))


@fn("trimprefix")
def _trimprefix(s, prefix, scope, node):
    s, prefix = _str(s), _str(prefix)
    return s[len(prefix):] if prefix and s.startswith(prefix) else s


@fn("trimsuffix")
def _trimsuffix(s, suffix, scope, node):
    s, suffix = _str(s), _str(suffix)
    return s[:-len(suffix)] if suffix and s.endswith(suffix) else s


@fn("trim")
def _trim(s, chars, scope, node):
    return _str(s).strip(_str(chars))


@fn("startswith")
def _startswith(s, prefix, scope, node):
    return _str(s).startswith(_str(prefix))


@fn("endswith")
def _endswith(s, suffix, scope, node):
    return _str(s).endswith(_str(suffix))


@fn("substr")
def _substr(s, offset, length, scope, node):
    s, offset, length = _str(s), number(offset), number(length)
    ascii_only(s, "substr()")
    if "\r\n" in s or offset != int(offset) or length != int(length) or not -len(s) <= offset <= len(s):
        raise Inexact("substr() over a CR LF grapheme or outside the string")
    offset, length = int(offset), int(length)
    if offset < 0:
        offset += len(s)
    return s[offset:] if length < 0 else s[offset:offset + length]


@fn("sort")
def _sort(lst, scope, node):
    return LList(sorted(_str(x) for x in _list(lst)))


@fn("reverse")
def _reverse(lst, scope, node):
    return LList(reversed(_list(lst)))


@fn("slice")
def _slice(lst, start, end, scope, node):
    items, start, end = _list(lst), number(start), number(end)
    if not (0 <= start <= end <= len(items)) or start != int(start) or end != int(end):
        raise Inexact("slice() outside the list's bounds")
    return LList(items[int(start):int(end)])


@fn("zipmap")
def _zipmap(ks, vs, scope, node):
    return LDict(zip((_str(k) for k in _list(ks)), _list(vs)))


@fn("range")
def _range(*args, scope, node):
    nums = [number(a) for a in args]
    start, end = (0, nums[0]) if len(nums) == 1 else (nums[0], nums[1])
    step = nums[2] if len(nums) > 2 else 1
    if any(n != int(n) for n in (start, end, step)):
        raise Inexact("range() of fractional numbers")
    if step == 0 or abs((end - start) / step) > 1024:  # Terraform's own limit
        raise EvalError("range() too long")
    return LList(range(int(start), int(end), int(step)))


@fn("one")
def _one(lst, scope, node):
    items = _list(lst)
    if len(items) > 1:
        raise EvalError("one() of a list with more than one element")
    return items[0] if items else None


@fn("index")
def _index(lst, value, scope, node):
    for i, x in enumerate(_list(lst)):
        if same(x, value):
            return i
    raise EvalError("index(): value not in list")


@fn("formatlist")
def _formatlist(fmt, *args, scope, node):
    lists = [a for a in args if isinstance(a, list)]
    n = len(lists[0]) if lists else 1
    return LList(_format(fmt, *[a[i] if isinstance(a, list) else a for a in args], scope=scope, node=node)
                 for i in range(n))


@fn("min")
def _min(*args, scope, node):
    return min(number(a) for a in args)


@fn("max")
def _max(*args, scope, node):
    return max(number(a) for a in args)


@fn("alltrue")
def _alltrue(lst, scope, node):
    return all(x is True or x == "true" for x in _list(lst))


@fn("anytrue")
def _anytrue(lst, scope, node):
    return any(x is True or x == "true" for x in _list(lst))


@fn("setunion")
def _setunion(*lists, scope, node):
    return _dedupe([x for lst in lists for x in _list(lst)])


@fn("setintersection")
def _setintersection(first, *rest, scope, node):
    return _dedupe([x for x in _list(first) if all(x in _list(r) for r in rest)])


@fn("setsubtract")
def _setsubtract(a, b, scope, node):
    return _dedupe([x for x in _list(a) if x not in _list(b)])


@fn("basename")
def _basename(path, scope, node):
    path = _str(path).rstrip("/")  # Go's filepath.Base: trailing slashes go; "" is "."
    return posixpath.basename(path) or ("/" if _str(path).startswith("/") else ".")


@fn("dirname")
def _dirname(path, scope, node):
    path = _str(path)
    if posixpath.normpath(path) != path:
        raise Inexact("dirname() of a path Go would clean first")
    return posixpath.dirname(path) or "."


@fn("abspath")
def _abspath(path, scope, node):
    return unknown_at(scope, node, "abspath() is a path on the machine that runs Terraform")


for _n in ("sensitive", "nonsensitive"):
    fn(_n, accepts_unknown=True)(lambda v, scope, node: v)


@fn("uuid")
def _uuid(scope, node):
    return unknown_at(scope, node, "uuid() changes on every run")


@fn("timestamp")
def _timestamp(scope, node):
    return unknown_at(scope, node, "timestamp() is known only at apply time")


# The one evaluator (its function table is this module's), built on first use.
EVALUATOR = None


def evaluator():
    global EVALUATOR
    if EVALUATOR is None:
        from .expressions import Evaluator
        EVALUATOR = Evaluator(FUNCTIONS)
    return EVALUATOR

