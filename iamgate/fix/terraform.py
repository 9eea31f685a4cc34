"""Rewrite statements in Terraform HCL as text: `aws_iam_policy_document` statement blocks,
`jsonencode({...})` statement objects, and JSON policies in heredocs (`<<POLICY`, `<<-EOT`).

The file is parsed with python-hcl2's grammar (the same parse the Terraform source uses), whose
tree carries every node's line and column; only the action list's characters change (or the
statement's lines go). A heredoc's JSON is edited in place by the JSON editor, so its indentation
stays. (Policies loaded with `file()` are located in their own .json file and edited there.) Action
lists built from variables, functions or `for` expressions are left for a person, with the reason.
"""
from __future__ import annotations

import json

from hcl2.utils import process_escape_sequences
from lark import Token, Tree

from ..sources.loaders import LoadError
from ..sources.terraform.hcl import parse_hcl, trees
from .edits import (
    Edit,
    Item,
    Lines,
    StatementNotFound,
    check_items,
    file_edits,
    item_edits,
    new_texts,
    newline,
    quoted,
    whole_lines,
)
from .json import JsonFile
from .plan import Problem, StatementFix

MAX_FLOW_WIDTH = 120  # a longer one-line list is written one item per line


def _name(node) -> str | None:
    """An identifier or a literal string key."""
    while isinstance(node, Tree) and node.data in ("expr_term", "object_elem_key") and trees(node):
        node = trees(node)[0]
    if isinstance(node, Tree) and node.data == "identifier":
        return str(node.children[0])
    return _string(node)


def _string(node) -> str | None:
    """A string literal without interpolation, else None."""
    while isinstance(node, Tree) and node.data == "expr_term" and len(trees(node)) == 1:
        node = trees(node)[0]
    if not (isinstance(node, Tree) and node.data == "string"):
        return None
    out = []
    for part in trees(node):
        tok = part.children[0] if part.children else None
        if part.data != "string_part" or not isinstance(tok, Token) or tok.type != "STRING_CHARS":
            return None
        out.append(process_escape_sequences(str(tok)))  # as the Terraform source reads it
    return "".join(out)


def _unwrap(node):
    while isinstance(node, Tree) and node.data == "expr_term" and len(trees(node)) == 1:
        node = trees(node)[0]
    return node


def _items(value) -> list[str] | None:
    node = _unwrap(value)
    single = _string(node)
    if single is not None:
        return [single]
    if isinstance(node, Tree) and node.data == "tuple":
        items = [_string(c) for c in trees(node)]
        return None if any(i is None for i in items) else items
    return None


def _all(tree):
    for node in tree.iter_subtrees_topdown():
        yield node


class HclFile:
    def __init__(self, text: str):
        self.text = text
        self.lines = Lines(text)
        self.tree = parse_hcl(text)
        self.parents: dict = {}
        for node in self.tree.iter_subtrees():
            for c in node.children:
                if isinstance(c, Tree):
                    self.parents[id(c)] = node
        self.heredocs: list[tuple[int, int, object]] = []  # (first, last body line, its JsonFile or problem)
        for node in self.tree.iter_subtrees():
            if node.data in ("heredoc_template", "heredoc_template_trim") and not node.meta.empty:
                lines = str(node.children[0]).rstrip("\r\n").split("\n")
                if len(lines) > 2:
                    self.heredocs.append((node.meta.line + 1, node.meta.line + len(lines) - 2, None))

    def heredoc_json(self, line: int) -> JsonFile | None:
        """The JSON inside the heredoc whose body holds `line`, parsed over this file's own offsets
        (everything else blanked), so that its edits apply to the file as they are."""
        for i, (first, last, parsed) in enumerate(self.heredocs):
            if not first <= line <= last:
                continue
            if parsed is None:
                start, end = self.lines.start(first), self.lines.end(last)
                blank = "".join(c if c in "\r\n" else " " for c in self.text)
                try:
                    parsed = JsonFile(blank[:start] + self.text[start:end] + blank[end:])
                except ValueError as e:  # interpolations or directives outside strings
                    where = f"{e.msg} at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else str(e)
                    parsed = StatementNotFound(f"the heredoc is not plain JSON ({where}); edit it by hand")
                self.heredocs[i] = (first, last, parsed)
            if isinstance(parsed, StatementNotFound):
                raise parsed
            return parsed
        return None

    def span(self, node) -> tuple[int, int]:
        m = node.meta
        return self.lines.offset(m.line, m.column), self.lines.offset(m.end_line, m.end_column)

    def statement(self, fix: StatementFix):
        """(kind, node, key node, value node): kind is 'block' or 'object'."""
        for node in _all(self.tree):
            if node.meta.empty or node.meta.line != fix.location.line:
                continue
            if node.data == "block" and _name(node.children[0]) == "statement":
                attrs = {_name(trees(a)[0]): a for a in trees(trees(node)[-1]) if a.data == "attribute"}
                want = "not_actions" if fix.statement.not_actions else "actions"
                if want in attrs:
                    attr = attrs[want]
                    check_items(_items(trees(attr)[-1]), fix)
                    return "block", node, trees(attr)[0], trees(attr)[-1]
            if node.data == "object":
                elems = {_name(trees(e)[0]): e for e in trees(node) if e.data == "object_elem"}
                want = "NotAction" if fix.statement.not_actions else "Action"
                if want in elems and "Effect" in elems:
                    elem = elems[want]
                    check_items(_items(trees(elem)[-1]), fix)
                    return "object", node, trees(elem)[0], trees(elem)[-1]
        raise StatementNotFound("no statement block or object with a literal action list starts at this line")

    def edits(self, fix: StatementFix) -> list[Edit]:
        heredoc = self.heredoc_json(fix.location.line)
        if heredoc is not None:
            return heredoc.edits(fix)
        kind, node, key, value = self.statement(fix)
        if fix.removes_statement:
            return [self.removal(fix, kind, node)]
        out = []
        if fix.statement.not_actions:
            ks, ke = self.span(key)
            out.append(Edit(ks, ke, "actions" if kind == "block" else "Action", fix.location))
        if not fix.statement.not_actions:
            kept = self.kept_lines(fix, value)
            if kept:
                return kept
        vs, ve = self.span(value)
        texts = new_texts(fix, self.items(value), self.text, quoted)
        out.append(Edit(vs, ve, self.render(texts, vs, ve, _unwrap(value)), fix.location))
        return out

    def render(self, texts, start: int, end: int, value) -> str:
        old = self.text[start:end]
        is_tuple = isinstance(value, Tree) and value.data == "tuple"
        if len(texts) == 1 and not is_tuple:
            return texts[0]
        flow = "[" + ", ".join(texts) + "]"
        if "\n" not in old and self.lines.column(start) + len(flow) <= MAX_FLOW_WIDTH:
            return flow
        elems = trees(value) if is_tuple else []
        if "\n" in old and elems:
            pad, close = self.lines.indent(self.span(elems[0])[0]), self.lines.indent(end - 1)
        else:
            close = self.lines.indent(start)
            pad = close + "  "
        nl = newline(self.text)
        return "[" + nl + "".join(pad + t + "," + nl for t in texts) + close + "]"

    def items(self, value) -> list[Item]:
        value = _unwrap(value)
        elems = trees(value) if isinstance(value, Tree) and value.data == "tuple" else [value]
        return [Item(*self.span(e)) for e in elems]

    def kept_lines(self, fix: StatementFix, value) -> list[Edit] | None:
        """A list of one item per line: only the items that change are edited (comments stay)."""
        value = _unwrap(value)
        if not (isinstance(value, Tree) and value.data == "tuple"):
            return None
        return item_edits(self.lines, fix, self.items(value), quoted, dash=False)

    def removal(self, fix: StatementFix, kind: str, node) -> Edit:
        start, end = self.span(node)
        if kind == "object":
            parent = _unwrap(self.parents.get(id(self.parents.get(id(node)))))
            if not (isinstance(parent, Tree) and parent.data == "tuple") or len(trees(parent)) < 2:
                raise StatementNotFound("it is the policy's only statement; delete the policy by hand")
            rest = self.text[end:]
            stripped = rest.lstrip(" \t")
            if stripped.startswith(","):
                end += len(rest) - len(stripped) + 1
        start, end = whole_lines(self.lines, start, end)
        first = self.lines.line_of(start)
        after = self.text[end:self.lines.end(self.lines.line_of(end))].strip() if end < len(self.text) else ""
        if first > 1 and not self.text[self.lines.start(first - 1):start].strip() and after in ("", "}", "]"):
            start = self.lines.start(first - 1)  # and the blank line that separated it
        return Edit(start, end, "", fix.location)


def edits(text: str, fixes: list[StatementFix]) -> tuple[list[Edit], list[Problem]]:
    return file_edits(lambda: HclFile(text), fixes, (LoadError,))
