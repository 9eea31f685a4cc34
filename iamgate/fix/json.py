"""Rewrite statements in JSON (CloudFormation JSON, raw policy documents) as text.

The file is read by the standard library's JSON scanner with hooks that record where every
value starts and ends; only the action list's characters change (or the statement's object and
one neighbouring comma go), so the rest of the file stays byte-identical.
"""
from __future__ import annotations

import json
import json.decoder
import json.scanner

from .edits import Edit, Item, Lines, StatementNotFound, check_items, file_edits, item_edits, new_texts, newline, quoted
from .plan import Problem, StatementFix

_WS = json.decoder.WHITESPACE.match
MAX_FLOW_WIDTH = 120  # a longer one-line list is written one item per line


class JObject(dict):
    """A JSON object with the spans of itself, its keys and its values."""

    def __init__(self, start: int):
        super().__init__()
        self.start, self.end = start, start
        self.key_spans: dict = {}
        self.value_spans: dict = {}


class JArray(list):
    def __init__(self, start: int):
        super().__init__()
        self.start, self.end = start, start
        self.spans: list = []


class SpanDecoder(json.JSONDecoder):
    def __init__(self):
        super().__init__()
        self.nodes: list = []  # every object and array, with its parent
        scanstring = json.decoder.scanstring

        def parse_object(s_and_end, strict, scan_once, *args, **kw):
            s, end = s_and_end
            obj = JObject(end - 1)
            end = _WS(s, end).end()
            if s[end:end + 1] == "}":
                obj.end = end + 1
                return obj, end + 1
            while True:
                if s[end:end + 1] != '"':
                    raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, end)
                kstart = end
                key, end = scanstring(s, end + 1, strict)
                end = _WS(s, end).end()
                if s[end:end + 1] != ":":
                    raise json.JSONDecodeError("Expecting ':' delimiter", s, end)
                end = _WS(s, end + 1).end()
                vstart = end
                try:
                    value, end = scan_once(s, end)
                except StopIteration as err:
                    raise json.JSONDecodeError("Expecting value", s, err.value) from None
                obj[key] = value
                obj.key_spans[key] = (kstart, _string_end(s, kstart))
                obj.value_spans[key] = (vstart, end)
                self._adopt(value, obj)
                end = _WS(s, end).end()
                ch = s[end:end + 1]
                end += 1
                if ch == "}":
                    break
                if ch != ",":
                    raise json.JSONDecodeError("Expecting ',' delimiter", s, end - 1)
                end = _WS(s, end).end()
            obj.end = end
            self.nodes.append(obj)
            return obj, end

        def parse_array(s_and_end, scan_once, *args):
            s, end = s_and_end
            arr = JArray(end - 1)
            end = _WS(s, end).end()
            if s[end:end + 1] == "]":
                arr.end = end + 1
                self.nodes.append(arr)
                return arr, end + 1
            while True:
                vstart = end
                try:
                    value, end = scan_once(s, end)
                except StopIteration as err:
                    raise json.JSONDecodeError("Expecting value", s, err.value) from None
                arr.append(value)
                arr.spans.append((vstart, end))
                self._adopt(value, arr)
                end = _WS(s, end).end()
                ch = s[end:end + 1]
                end += 1
                if ch == "]":
                    break
                if ch != ",":
                    raise json.JSONDecodeError("Expecting ',' delimiter", s, end - 1)
                end = _WS(s, end).end()
            arr.end = end
            self.nodes.append(arr)
            return arr, end

        self.parents: dict = {}
        self.parse_object = parse_object
        self.parse_array = parse_array
        self.scan_once = json.scanner.py_make_scanner(self)

    def _adopt(self, value, parent) -> None:
        if isinstance(value, (JObject, JArray)):
            self.parents[id(value)] = parent


def _string_end(s: str, start: int) -> int:
    return json.decoder.scanstring(s, start + 1)[1]


def _items(value) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


class JsonFile:
    def __init__(self, text: str):
        self.text = text
        self.lines = Lines(text)
        self.decoder = SpanDecoder()
        self._by_line: dict[int, list[JObject]] | None = None
        body = text.lstrip("\ufeff")
        self.decoder.decode(body)
        if len(body) != len(text):
            raise StatementNotFound("a byte-order mark is not supported")

    def statement(self, fix: StatementFix) -> JObject:
        key = "NotAction" if fix.statement.not_actions else "Action"
        for node in self.statements_at(fix.location.line):
            if key in node:
                check_items(_items(node[key]), fix)
                return node
        raise StatementNotFound("no statement with an action list starts at this line (generated or computed)")

    def statements_at(self, line: int) -> list[JObject]:
        """The objects with an "Effect" that start at this line, in document order (indexed once: a file
        with a thousand statements to fix is not searched a thousand times)."""
        if self._by_line is None:
            self._by_line = {}
            for node in self.decoder.nodes:
                if isinstance(node, JObject) and "Effect" in node:
                    self._by_line.setdefault(self.lines.line_of(node.start), []).append(node)
        return self._by_line.get(line, [])

    def edits(self, fix: StatementFix) -> list[Edit]:
        node = self.statement(fix)
        if fix.removes_statement:
            return [self.removal(fix, node)]
        key = "NotAction" if fix.statement.not_actions else "Action"
        out = []
        if fix.statement.not_actions:
            ks, ke = node.key_spans[key]
            out.append(Edit(ks, ke, '"Action"', fix.location))
        vs, ve = node.value_spans[key]
        spans = getattr(node[key], "spans", [])
        items = [Item(s, e, self.comma_end(e)) for s, e in spans or [(vs, ve)]]
        by_item = item_edits(self.lines, fix, items, quoted, dash=False) if spans else None
        if by_item is not None:
            return out + by_item
        out.append(Edit(vs, ve, self.render(new_texts(fix, items, self.text, quoted), vs, ve, spans), fix.location))
        return out

    def comma_end(self, end: int) -> int | None:
        after = _WS(self.text, end).end()
        return after + 1 if self.text[after:after + 1] == "," else None

    def render(self, texts: list[str], start: int, end: int, spans) -> str:
        old = self.text[start:end]
        if len(texts) == 1 and not old.startswith("["):
            return texts[0]
        flow = "[" + ", ".join(texts) + "]"
        if "\n" not in old and self.lines.column(start) + len(flow) <= MAX_FLOW_WIDTH:
            return flow
        if "\n" in old and spans:
            pad, close = self.lines.indent(spans[0][0]), self.lines.indent(end - 1)
        else:
            close = self.lines.indent(start)
            pad = close + "  "
        nl = newline(self.text)
        return "[" + nl + ("," + nl).join(pad + t for t in texts) + nl + close + "]"

    def removal(self, fix: StatementFix, node: JObject) -> Edit:
        parent = self.decoder.parents.get(id(node))
        grandparent = self.decoder.parents.get(id(parent))
        if isinstance(grandparent, JObject) and grandparent.get("Fn::If") is parent:
            # a branch of a condition: it becomes "no value" rather than disappearing from the Fn::If
            return Edit(node.start, node.end, '{"Ref": "AWS::NoValue"}', fix.location)
        if not isinstance(parent, JArray):
            raise StatementNotFound("the statement is not an item of a Statement list; remove it by hand")
        i = next(n for n, v in enumerate(parent) if v is node)
        if i > 0:  # the comma after the previous item goes with it
            start, end = parent.spans[i - 1][1], node.end
        elif len(parent) > 1:
            start, end = node.start, parent.spans[1][0]
        else:
            raise StatementNotFound("it is the policy's only statement; delete the policy by hand")
        return Edit(start, end, "", fix.location)


def edits(text: str, fixes: list[StatementFix]) -> tuple[list[Edit], list[Problem]]:
    return file_edits(lambda: JsonFile(text), fixes, (ValueError, StatementNotFound))
