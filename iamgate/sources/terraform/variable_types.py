"""Terraform type constraints (`type = list(string)`, `object({...})`) and converting a value to one.
"""
from __future__ import annotations

from ..loaders import LDict, LList
from ..policy_document import Unknown
from .hcl import trees


def type_of(node):
    """A variable's type constraint as nested tuples: ("any",), ("object", {attr: (type, optional, default)}),
    ("map"|"list"|"set", element type), ("tuple", [types])."""
    if node is None:
        return ("any",)
    inner = trees(node)
    if node.data in ("expr_term", "foreign_expr") and inner:
        return type_of(inner[0])
    if node.data == "function_call":
        parts = trees(node)
        name = str(parts[0].children[0])
        args_node = next((p for p in parts if p.data == "arguments"), None)
        args = trees(args_node) if args_node is not None else []
        if name in ("map", "list", "set") and args:
            return (name, type_of(args[0]))
        if name == "object" and args:
            obj = trees(args[0])[0] if args[0].data == "expr_term" else args[0]
            attrs = {}
            for elem in trees(obj) if obj.data == "object" else []:
                key_node, value_node = trees(elem)[0], trees(elem)[-1]
                key = "".join(str(t) for t in key_node.scan_values(lambda v: hasattr(v, "type"))).strip('"')
                attrs[key] = _attr_type(value_node)
            return ("object", attrs)
        if name == "tuple" and args:
            tup = trees(args[0])[0] if args[0].data == "expr_term" else args[0]
            return ("tuple", [type_of(t) for t in trees(tup)])
    return ("any",)


def _attr_type(node):
    call = trees(node)[0] if node.data == "expr_term" and trees(node) else node
    if call.data == "function_call" and str(trees(call)[0].children[0]) == "optional":
        args_node = next((p for p in trees(call) if p.data == "arguments"), None)
        args = trees(args_node) if args_node is not None else []
        return (type_of(args[0]) if args else ("any",), True, args[1] if len(args) > 1 else None)
    return (type_of(node), False, None)


def convert(value, t, ev, scope):
    """Apply a type constraint the way Terraform does for optional object attributes and their defaults."""
    kind = t[0]
    if value is None or isinstance(value, Unknown) or kind == "any":
        return value
    if kind == "object" and isinstance(value, dict):
        out = LDict(value, line=getattr(value, "line", None))
        for attr, (at, optional, default) in t[1].items():
            if attr in value and value[attr] is not None:
                out[attr] = convert(value[attr], at, ev, scope)
            elif optional:
                out[attr] = convert(ev.safe(default, scope), at, ev, scope) if default is not None else None
            else:
                out.setdefault(attr, None)
        return out
    if kind == "map" and isinstance(value, dict):
        return LDict({k: convert(v, t[1], ev, scope) for k, v in value.items()}, line=getattr(value, "line", None))
    if kind in ("list", "set") and isinstance(value, list):
        return LList([convert(v, t[1], ev, scope) for v in value], line=getattr(value, "line", None))
    if kind == "tuple" and isinstance(value, list):
        return LList([convert(v, et, ev, scope) for v, et in zip(value, t[1])] + value[len(t[1]):])
    return value
