"""Escaping text from the scanned repository before it reaches Markdown, HTML or annotations."""
from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")
ZWSP = "\u200b"


def md(text) -> str:
    """Inline Markdown: no formatting, links, HTML, table breaks or @mentions can come through."""
    s = html.escape(str(text), quote=False)  # quotes are harmless in Markdown text; `&#x27;` would show
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = s.replace("@", "@" + ZWSP).replace("\r", " ").replace("\n", " ")
    return s


def code(text) -> str:
    """Inline code span; backticks inside are neutralised (HTML entities do not work in code)."""
    s = str(text).replace("`", "'").replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return f"`{s}`" if s else ""


def html_text(text) -> str:
    return html.escape(str(text), quote=True).replace("@", "@" + ZWSP)


def workflow_data(text) -> str:
    """GitHub workflow command message (after `::`)."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text) -> str:
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")
