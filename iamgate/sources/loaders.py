"""JSON and YAML loading that remembers the line of every mapping, list and key.

Mappings come back as `LDict` (a dict with `.line` and `.key_lines`), lists as `LList`
(a list with `.line`). CloudFormation's short-form tags (`!Sub`, `!GetAtt`, ...) become
their long form (`{"Fn::Sub": ...}`) with the tag's line kept.
"""
from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
from bisect import bisect_right

import yaml


class LDict(dict):
    __slots__ = ("line", "key_lines")

    def __init__(self, *args, line: int | None = None, **kw):
        super().__init__(*args, **kw)
        self.line = line
        self.key_lines: dict = {}

    def line_of(self, key) -> int | None:
        return self.key_lines.get(key, self.line)


class LList(list):
    __slots__ = ("line",)

    def __init__(self, *args, line: int | None = None):
        super().__init__(*args)
        self.line = line


def line_of(value, default: int | None = None) -> int | None:
    return getattr(value, "line", None) or default


class LoadError(Exception):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


# -- JSON --------------------------------------------------------------------

class _LineJSONDecoder(json.JSONDecoder):
    """json's own decoder with object and array hooks that record line numbers."""

    def __init__(self, text: str):
        super().__init__()
        newlines = [m.start() for m in re.finditer("\n", text)]

        def line_at(pos: int) -> int:
            return bisect_right(newlines, pos - 1) + 1

        scanstring = json.decoder.scanstring
        ws = json.decoder.WHITESPACE.match

        def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None,
                         _w=ws):
            s, end = s_and_end
            obj = LDict(line=line_at(end - 1))
            nextchar = s[end:end + 1]
            if nextchar != '"':
                if nextchar in " \t\n\r":
                    end = _w(s, end).end()
                    nextchar = s[end:end + 1]
                if nextchar == "}":
                    return obj, end + 1
                if nextchar != '"':
                    raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, end)
            end += 1
            while True:
                key_line = line_at(end)
                key, end = scanstring(s, end, strict)
                if s[end:end + 1] != ":":
                    end = _w(s, end).end()
                    if s[end:end + 1] != ":":
                        raise json.JSONDecodeError("Expecting ':' delimiter", s, end)
                end += 1
                end = _w(s, end).end()
                try:
                    value, end = scan_once(s, end)
                except StopIteration as err:
                    raise json.JSONDecodeError("Expecting value", s, err.value) from None
                obj[key] = value
                obj.key_lines[key] = key_line
                end = _w(s, end).end()
                nextchar = s[end:end + 1]
                end += 1
                if nextchar == "}":
                    break
                if nextchar != ",":
                    raise json.JSONDecodeError("Expecting ',' delimiter", s, end - 1)
                end = _w(s, end).end()
                nextchar = s[end:end + 1]
                end += 1
                if nextchar != '"':
                    raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, end - 1)
            return obj, end

        def parse_array(s_and_end, scan_once, _w=ws):
            s, end = s_and_end
            values, end = json.decoder.JSONArray((s, end), scan_once, _w)
            return LList(values, line=line_at(s_and_end[1] - 1)), end

        self.parse_object = parse_object
        self.parse_array = parse_array
        self.scan_once = json.scanner.py_make_scanner(self)


def load_json(text: str):
    try:
        return _LineJSONDecoder(text).decode(text)
    except json.JSONDecodeError as e:
        raise LoadError(f"invalid JSON: {e.msg}", e.lineno) from None
    except RecursionError:
        raise LoadError("JSON nested too deeply to read") from None


# -- YAML --------------------------------------------------------------------

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CfnYamlLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe YAML with CloudFormation short-form tags and line numbers."""


# Keep dates such as `Version: 2012-10-17` as the strings IAM expects, and read booleans as
# YAML 1.2 does (only true/false): CloudFormation's `Yes`, `No`, `On`, `Off` are strings, as in
# the JSON form of the same templates.
CfnYamlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for k, v in _BaseLoader.yaml_implicit_resolvers.items()
}
CfnYamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


_STR = "tag:yaml.org,2002:str"


def _construct(loader, node):
    """A plain string as it is (what most of a template is); anything else by its constructor."""
    if node.__class__ is yaml.ScalarNode and node.tag == _STR:
        return node.value
    return loader.construct_object(node, deep=True)


def _construct_mapping(loader, node):
    obj = LDict(line=node.start_mark.line + 1)
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            merged = loader.construct_object(value_node, deep=True)
            for m in merged if isinstance(merged, list) else [merged]:
                if isinstance(m, dict):
                    for k, v in m.items():
                        obj.setdefault(k, v)
            continue
        key = _construct(loader, key_node)
        if isinstance(key, (list, dict)):
            raise LoadError("a mapping key must be a scalar", key_node.start_mark.line + 1)
        obj[key] = _construct(loader, value_node)
        obj.key_lines[key] = key_node.start_mark.line + 1
    return obj


def _construct_sequence(loader, node):
    return LList((_construct(loader, c) for c in node.value), line=node.start_mark.line + 1)


def _construct_tag(loader, tag_suffix, node):
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = _construct_sequence(loader, node)
    else:
        value = _construct_mapping(loader, node)
    if tag_suffix == "Ref":
        key = "Ref"
    elif tag_suffix == "Condition":
        key = "Condition"
    else:
        key = f"Fn::{tag_suffix}"
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = LList(value.split(".", 1), line=line)
    out = LDict({key: value}, line=line)
    out.key_lines[key] = line
    return out


CfnYamlLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
CfnYamlLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
CfnYamlLoader.add_multi_constructor("!", _construct_tag)


MAX_EXPANDED_NODES = 5_000_000


def expanded_size(doc, limit: int = MAX_EXPANDED_NODES) -> int:
    """Nodes in the document once YAML aliases are expanded, counted without expanding them."""
    memo: dict[int, int] = {}

    def size(node) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in memo:
            return memo[key]
        memo[key] = 1  # a cycle counts once
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        memo[key] = total
        return total

    return size(doc)


def load_yaml(text: str):
    try:
        doc = yaml.load(text, Loader=CfnYamlLoader)  # noqa: S506 - a SafeLoader subclass
        # an alias (`*name`) needs an anchor (`&name`): without both, nothing is shared to expand
        if "*" in text and "&" in text and expanded_size(doc) > MAX_EXPANDED_NODES:
            raise LoadError("YAML aliases expand to more than 5 million nodes (an alias bomb?); not read")
        return doc
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise LoadError(f"invalid YAML: {e.problem or e.context}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise LoadError(f"invalid YAML: {e}") from None
    except RecursionError:
        raise LoadError("YAML nested too deeply to read") from None


def load_document(text: str, suffix: str):
    """Parse JSON or YAML by file suffix; JSON-looking YAML files are read as JSON."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and stripped[:1] in "{["):
        return load_json(text.lstrip("\ufeff"))
    return load_yaml(text)
