"""Escaping text from the scanned repository, one function per medium it goes into.

Every string the PR author controls (ids, names, file names, messages quoting them) goes through
the function for its medium: `md`/`code`/`html_text` for Markdown and HTML, `terminal` for the
text output, `plain` for SARIF and annotation messages, `workflow_data`/`workflow_property`
for GitHub workflow commands.
"""
from __future__ import annotations

import html
import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")
_LINK_SPECIAL = re.compile(r"[\[\]!`]")
ZWSP = "\u200b"
# C0 and C1 controls, DEL, and the Unicode bidirectional overrides (text that reads differently
# from how it is stored): a terminal acts on them, a reader cannot see them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


# GitHub's Markdown links bare URLs itself (GFM "autolinks (extension)": `http://`, `https://`, `www.`, and
# e-mail addresses; https://github.github.com/gfm/#autolinks-extension-). Repository text must not become a
# link: a zero-width space after the `:` of `://` and after `www` breaks the pattern while the text reads the
# same (e-mail addresses are broken by the one after `@`). Code spans are never autolinked.
_AUTOLINK = re.compile(r"(?i)(?<=:)(?=//)|(?<=www)(?<![a-z0-9]www)(?=\.)")


def no_autolink(text: str) -> str:
    return _AUTOLINK.sub(ZWSP, text)


def _visible(ch: str) -> str:
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def _one_line(text) -> str:
    return re.sub(r"[\r\n\u2028\u2029]+", " ", str(text))


def md(text) -> str:
    """Inline Markdown: no formatting, links, HTML, table breaks or @mentions can come through."""
    s = html.escape(_one_line(text), quote=False)  # quotes are harmless in Markdown text; `&#x27;` would show
    s = no_autolink(_MD_SPECIAL.sub(r"\\\1", s))
    return _CONTROL.sub(lambda m: _visible(m.group()), s.replace("@", "@" + ZWSP))


def code(text) -> str:
    """Inline code span; backticks inside are neutralised (HTML entities do not work in code)."""
    s = _CONTROL.sub(lambda m: _visible(m.group()), _one_line(text).replace("`", "'")).replace("|", "\\|")
    return f"`{s}`" if s else ""


def html_text(text) -> str:
    """Text inside an HTML block (`<details><summary>`): on one line, since a blank line ends the
    HTML block and whatever follows is read as Markdown (headings, images, links)."""
    s = html.escape(_one_line(text), quote=True).replace("@", "@" + ZWSP)
    s = _LINK_SPECIAL.sub(lambda m: f"&#{ord(m.group())};", s)  # no link or image, were the block to end
    s = no_autolink(s)
    return _CONTROL.sub(lambda m: _visible(m.group()), s)


def terminal(text) -> str:
    """Text for a terminal: control characters (ESC sequences, carriage returns, newlines) shown
    as `\\x1b`, never acted on."""
    return _CONTROL.sub(lambda m: _visible(m.group()), str(text))


def terminal_block(text) -> str:
    """Lines of repository text for a terminal (`iamgate fix`'s diff): line breaks and tabs kept, every other
    control character (ESC, BEL, a carriage return that would overwrite the line) shown as `\\x1b`."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in "\n\t" else _visible(m.group()), str(text))


def plain(text) -> str:
    """Plain-text messages (SARIF `message.text`, annotations): no Markdown escaping (it would
    show as backslashes); line breaks kept (the workflow-command encoding carries them safely),
    other control characters made visible."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in "\r\n" else _visible(m.group()), str(text))


def workflow_data(text) -> str:
    """GitHub workflow command message (after `::`)."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text) -> str:
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")


def clip(text: str, limit: int = 500) -> str:
    """At most `limit` characters of repository text, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[:limit] + "…"
