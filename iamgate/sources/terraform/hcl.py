"""HCL parsing with python-hcl2's Lark grammar: files into blocks and attributes, with their lines.

Nothing from the scanned repository is executed; `expressions` evaluates what is parsed here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from hcl2.api import parses_to_tree
from hcl2.utils import process_escape_sequences
from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput

from ..loaders import LoadError

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
    attr = next(c for c in trees(tree.children[0]) if c.data == "attribute")
    return trees(attr)[-1]


def trees(node) -> list[Tree]:
    """A node's child trees, without the newlines and comments between them."""
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


def name_of(node) -> str:
    """An identifier, a block label or a string key as text."""
    if isinstance(node, Token):
        return str(node)
    if node.data == "string":
        return "".join(_string_chars(p) for p in trees(node))
    return "".join(str(t) for t in node.scan_values(lambda v: isinstance(v, Token)))


def _string_chars(part: Tree) -> str:
    tok = part.children[0]
    return process_escape_sequences(str(tok)) if isinstance(tok, Token) else ""


def read_body(tree: Tree, file: str, src: str) -> Body:
    body = Body()
    for item in trees(tree):
        if item.data == "attribute":
            parts = trees(item)
            name = name_of(parts[0])
            body.attrs[name] = parts[-1]
            body.attr_lines[name] = node_line(item)
        elif item.data == "block":
            parts = trees(item)
            inner = parts[-1]
            labels = tuple(name_of(p) for p in parts[1:-1])
            body.blocks.append(Block(name_of(parts[0]), labels, read_body(inner, file, src), node_line(item),
                                     file, src))
    return body


def read_file(text: str, file: str) -> Body:
    tree = parse_hcl(text)
    src = fix_heredoc_markers(text)
    return read_body(tree.children[0], file, src)
