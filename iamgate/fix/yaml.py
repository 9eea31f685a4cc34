"""Rewrite statements in YAML (CloudFormation, SAM, Serverless) as text, at the statement's lines.

The file is composed (not constructed) by PyYAML, so short-form tags such as `!Sub` are just node
tags and every node has its exact position. Only the action list's characters change (or the
statement's lines go); tags, comments and formatting elsewhere stay byte-identical.
"""
from __future__ import annotations

import re

import yaml

from .edits import Edit, Item, Lines, StatementNotFound, check_items, file_edits, item_edits, new_texts, newline
from .plan import Problem, StatementFix

STR_TAG = "tag:yaml.org,2002:str"
MAX_FLOW_WIDTH = 120  # a longer flow list is written as a block list (or wrapped, inside a flow collection)
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_\-.*?]*$")


class _Composer(yaml.SafeLoader):
    """Pure-Python composer: marks are character offsets of the text."""


def _walk(node, parent=None, seen=None, out=None):
    """(node, parent) pairs; `seen` counts how often each node is reached (an alias reaches it again)."""
    seen = {} if seen is None else seen
    out = [] if out is None else out
    seen[id(node)] = seen.get(id(node), 0) + 1
    if seen[id(node)] > 1:
        return out
    out.append((node, parent))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _walk(k, node, seen, out)
            _walk(v, node, seen, out)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _walk(v, node, seen, out)
    return out


def _key(mapping: yaml.MappingNode, name: str):
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == name:
            return k, v
    return None, None


def _items(node) -> list[str] | None:
    """The literal strings of an action value, or None when it is computed (a tag, not strings)."""
    if isinstance(node, yaml.ScalarNode):
        return [node.value] if node.tag == STR_TAG else None
    if isinstance(node, yaml.SequenceNode) and not node.tag.startswith("!") and all(
            isinstance(i, yaml.ScalarNode) and i.tag == STR_TAG for i in node.value):
        return [i.value for i in node.value]
    return None


def content_end(node) -> int:
    """Offset just past a node's own text (block collections' end marks run on to the next token)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return node.end_mark.index
    children = ([c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode) else node.value)
    return max((content_end(c) for c in children), default=node.start_mark.index)


def scalar(item: str, style: str | None) -> str:
    if style == '"':
        return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if style == "'" or not _PLAIN_SAFE.match(item):
        return "'" + item.replace("'", "''") + "'"
    return item


class YamlFile:
    def __init__(self, text: str):
        self.text = text
        self.lines = Lines(text)
        self.nl = newline(text)
        self.nodes: list = []
        self.counts: dict = {}
        for doc in yaml.compose_all(text, Loader=_Composer):
            if doc is not None:
                self.nodes += _walk(doc, None, self.counts)
        self.parents = {id(node): parent for node, parent in self.nodes}
        self.mappings: dict | None = None  # start line -> [(mapping node, parent)]

    def statement(self, fix: StatementFix):
        """The statement's mapping node, its parent and its action key and value."""
        if self.mappings is None:  # by line, indexed once: many fixes in one file are not a search each
            self.mappings = {}
            for node, parent in self.nodes:
                if isinstance(node, yaml.MappingNode):
                    self.mappings.setdefault(node.start_mark.line + 1, []).append((node, parent))
        for node, parent in self.mappings.get(fix.location.line, []):
            k, v = _key(node, "NotAction" if fix.statement.not_actions else "Action")
            if k is None or _key(node, "Effect")[0] is None:
                continue
            check_items(_items(v), fix)
            if self.counts.get(id(node), 0) > 1 or self.counts.get(id(v), 0) > 1:
                raise StatementNotFound("it is a YAML alias used in more than one place; edit it by hand")
            if v.start_mark.index < k.end_mark.index:
                raise StatementNotFound("its action list is a YAML alias; edit it by hand")
            return node, parent, k, v
        raise StatementNotFound("no statement with an action list starts at this line (generated or computed)")

    def edits(self, fix: StatementFix) -> list[Edit]:
        node, parent, key, value = self.statement(fix)
        if fix.removes_statement:
            return [self.removal(fix, node, parent)]
        edits = self.rewrite(fix, node, key, value)
        return edits if isinstance(edits, list) else [edits]

    def is_condition(self, seq) -> bool:
        """A `!If [cond, then, else]`, or the sequence that is the value of a long-form `Fn::If:` key."""
        if not isinstance(seq, yaml.SequenceNode):
            return False
        if seq.tag == "!If":
            return True
        mapping = self.parents.get(id(seq))
        return isinstance(mapping, yaml.MappingNode) and any(
            v is seq and isinstance(k, yaml.ScalarNode) and k.value == "Fn::If" for k, v in mapping.value)

    def removal(self, fix: StatementFix, node, parent) -> Edit:
        if self.is_condition(parent) and any(v is node for v in parent.value[1:]):
            # a branch of a condition: it becomes "no value" rather than disappearing from the !If
            return Edit(node.start_mark.index, content_end(node), "!Ref AWS::NoValue", fix.location)
        if not isinstance(parent, yaml.SequenceNode) or parent.flow_style:
            raise StatementNotFound("the statement is not an item of a block list; remove it by hand")
        first = self.lines.line_of(node.start_mark.index)
        last = self.lines.line_of(content_end(node) - 1)
        before = self.text[self.lines.start(first):node.start_mark.index].strip()
        if before not in ("-", ""):
            raise StatementNotFound("the statement shares its first line; remove it by hand")
        return Edit(self.lines.start(first), self.lines.end(last), "", fix.location)

    def wrapped_flow(self, texts: list[str], column: int) -> str:
        """A flow list over several lines, continuation lines aligned after its `[` (valid inside `{...}`)."""
        pad = " " * (column + 1)
        rows, row = [], []
        for item in texts:
            if row and column + 1 + len(", ".join(row + [item])) + 2 > MAX_FLOW_WIDTH:
                rows.append(", ".join(row))
                row = []
            row.append(item)
        rows.append(", ".join(row))
        return "[" + ("," + self.nl + pad).join(rows) + "]"

    def rewrite(self, fix: StatementFix, node, key, value) -> Edit | list[Edit]:
        nodes = value.value if isinstance(value, yaml.SequenceNode) else [value]
        items = [Item(n.start_mark.index, n.end_mark.index) for n in nodes]
        style = nodes[0].style if nodes else None

        def render(action: str, i: int) -> str:  # a new item is quoted like the one it replaces
            return scalar(action, nodes[i].style if i < len(nodes) else style)

        start = key.start_mark.index if fix.statement.not_actions else value.start_mark.index
        prefix = ("Action" + self.text[key.end_mark.index:value.start_mark.index]) if fix.statement.not_actions \
            else ""
        end = content_end(value)
        if isinstance(value, yaml.SequenceNode) and not value.flow_style:
            by_item = item_edits(self.lines, fix, items, render, dash=True)
            if by_item is not None:
                return by_item
        texts = new_texts(fix, items, self.text, render)
        flow = "[" + ", ".join(texts) + "]"
        too_long = self.lines.column(value.start_mark.index) + len(flow) > MAX_FLOW_WIDTH
        if node.flow_style and (len(texts) != 1 or isinstance(value, yaml.SequenceNode)):
            # inside a flow collection only flow syntax is valid: never a block list
            column = self.lines.column(value.start_mark.index) if "\n" in prefix else \
                self.lines.column(start) + len(prefix)
            text = self.wrapped_flow(texts, column) if too_long else flow
        elif isinstance(value, yaml.SequenceNode) and value.flow_style and not too_long:
            text = flow
        elif isinstance(value, yaml.SequenceNode) and not value.flow_style:
            pad = " " * self.lines.column(value.start_mark.index)
            text = (self.nl + pad).join("- " + t for t in texts)
        elif len(texts) == 1 and isinstance(value, yaml.ScalarNode):
            text = texts[0]
        else:  # one scalar becomes a block list under the key
            pad = " " * (self.lines.column(key.start_mark.index) + 2)
            start, prefix = key.end_mark.index, ""
            if fix.statement.not_actions:
                start, prefix = key.start_mark.index, "Action"
            text = prefix + ":" + "".join(self.nl + pad + "- " + t for t in texts)
            return Edit(start, end, text, fix.location)
        return Edit(start, end, prefix + text, fix.location)


def edits(text: str, fixes: list[StatementFix]) -> tuple[list[Edit], list[Problem]]:
    return file_edits(lambda: YamlFile(text), fixes, (yaml.YAMLError,))
