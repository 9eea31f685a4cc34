"""Where iamgate's answer is Terraform's answer, and where it cannot be.

Terraform computes with Go: strings are NFC-normalised Unicode (cty normalises every string it
makes), case mapping and whitespace are Go's `unicode` tables, string length counts grapheme
clusters, regular expressions are RE2, numbers are arbitrary-precision decimals printed without an
exponent. Python differs on each. Where the evaluator cannot reproduce a result exactly it raises
`Inexact`: the value becomes unknown (an Allow's Action then is an `unresolved-grant`), never a guess.

EXACTNESS lists every function the evaluator implements and when its result is Terraform's.
"""
from __future__ import annotations

import unicodedata

import regex

from .hcl import EvalError

REGEX_SECONDS = 0.2  # far beyond any name or policy a real configuration computes


class Inexact(EvalError):
    """A result iamgate cannot reproduce exactly: unknown, and never an error `try()` or `can()` may skip."""


EXACT = "exact"
EXACTNESS = {
    # strings
    "lower": "exact for ASCII text; Unicode case mapping (Go's simple mapping: lower(\"İ\") is \"i\") is unknown",
    "upper": "exact for ASCII text; Unicode case mapping is unknown",
    "title": "exact for ASCII text, with Go's word rule (only the first letter of a word changes)",
    "trimspace": "exact (Go's unicode.IsSpace set)",
    "chomp": EXACT, "trim": EXACT, "trimprefix": EXACT, "trimsuffix": EXACT, "startswith": EXACT,
    "endswith": EXACT, "split": EXACT, "join": EXACT,
    "length": "exact for lists and maps, and for ASCII strings (CR LF is one grapheme); other strings unknown",
    "substr": "exact for ASCII strings without CR LF and offsets inside the string; else unknown",
    "replace": "exact for a plain substring; a /regex/ is exact when it is in the RE2 subset `go_regex` "
               "translates (ASCII classes, `$` end of text), replacement expanded as Go's Regexp.Expand "
               "(`$1t` is the group named `1t`); else unknown",
    "format": "exact for %s, %d (whole numbers), %% and %q of plain ASCII; flags, widths and other verbs unknown",
    "formatlist": "as format",
    "tostring": "exact; a fractional number is unknown (Terraform prints decimals, not floats)",
    "tonumber": "exact for decimal text; fractional results unknown when printed",
    "tobool": EXACT,
    # collections
    "concat": EXACT, "merge": EXACT, "flatten": EXACT, "compact": EXACT, "tolist": EXACT, "tomap": EXACT,
    "keys": EXACT, "values": EXACT, "lookup": EXACT, "coalesce": EXACT, "coalescelist": EXACT, "zipmap": EXACT,
    "reverse": EXACT, "one": EXACT, "alltrue": EXACT, "anytrue": EXACT,
    "distinct": EXACT, "toset": "exact (sets of strings in Terraform's lexical order)",
    "setunion": EXACT, "setintersection": EXACT, "setsubtract": EXACT, "sort": "exact (byte order = code point order)",
    "contains": "exact (strings compared after NFC normalisation)", "index": "as contains",
    "element": "exact for a non-negative index; a negative index is unknown",
    "slice": "exact inside the list's bounds; else unknown",
    "range": "exact for whole numbers; else unknown",
    "min": EXACT, "max": EXACT,
    # encoding, files, meta
    "jsonencode": "exact: keys sorted, <, >, & escaped as Go does", "jsondecode": EXACT,
    "file": "exact inside the repository", "fileexists": "as file", "templatefile": "as file",
    "basename": "exact (Go's filepath.Base)", "dirname": "exact for clean paths (Go's filepath.Dir cleans); else unknown",
    "abspath": "unknown: the absolute path on the machine that runs Terraform",
    "try": EXACT, "can": EXACT, "sensitive": EXACT, "nonsensitive": EXACT,
    "uuid": "unknown", "timestamp": "unknown",
    # operators
    "==": "exact (strings compared after NFC normalisation; fractional numbers unknown)", "!=": "as ==",
    "+ - * /": "exact for whole numbers; with a fractional operand unknown",
    "%": "exact for non-negative whole numbers; a negative or fractional operand is unknown",
    "string templates": "exact; results NFC-normalised; a fractional number in text is unknown",
}


def nfc(text: str) -> str:
    """Terraform's string: NFC. A code point Python's Unicode tables do not know could normalise
    differently in Terraform's: unknown."""
    if text.isascii():
        return text
    if any(unicodedata.category(c) == "Cn" for c in text):
        raise Inexact("a character this Python's Unicode tables do not know (Terraform normalises strings to NFC)")
    return unicodedata.normalize("NFC", text)


def ascii_only(text: str, what: str) -> str:
    if not text.isascii():
        raise Inexact(f"{what} of non-ASCII text follows Go's Unicode rules, which iamgate does not reproduce")
    return text


def go_title(text: str) -> str:
    """Go's strings.Title on ASCII: a letter after a non-word character is upper-cased, nothing lowered."""
    ascii_only(text, "title()")
    out, prev = [], " "
    for c in text:
        out.append(c.upper() if not (prev.isalnum() or prev == "_") else c)
        prev = c
    return "".join(out)


GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
           "\u2028\u2029\u202f\u205f\u3000"


def grapheme_length(text: str) -> int:
    ascii_only(text, "length()")
    return len(text) - text.count("\r\n")


def number_text(value) -> str:
    """A number as Terraform prints it: whole numbers exactly; a fraction is unknown (decimal, not float)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2 ** 53:
            return str(int(value))
        raise Inexact("a fractional or very large number printed as text (Terraform prints exact decimals)")
    return str(value)


# -- RE2 -----------------------------------------------------------------------

_CLASS_ESC = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_PUNCT = set("\\.+*?()|[]{}^$-/#&~!@%,:;<=>'\"`")


def _cls_escape(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def _class(p: str, i: int) -> tuple[str, int]:
    """An RE2 character class at p[i] == '[' -> (Python class, index after it)."""
    i += 1
    out = ["["]
    if p[i:i + 1] == "^":
        out.append("^")
        i += 1
    first = True
    while i < len(p):
        c = p[i]
        if c == "]" and not first:
            return "".join(out) + "]", i + 1
        first = False
        if c == "[" and p[i:i + 2] == "[:":
            raise Inexact("POSIX classes in a regular expression")
        if c == "\\":
            e = p[i + 1:i + 2]
            if e in _CLASS_ESC:
                out.append(_CLASS_ESC[e])
                i += 2
                continue
            if e and e in _PUNCT:
                lit = e
                i += 2
            elif e in ("n", "t", "r", "f", "v"):
                out.append("\\" + e)
                i += 2
                continue
            else:
                raise Inexact(f"the escape \\{e} in a regular expression class")
        else:
            lit = c
            i += 1
        if p[i:i + 1] == "-" and p[i + 1:i + 2] not in ("]", ""):
            hi = p[i + 1]
            if hi == "\\":
                raise Inexact("an escaped range end in a regular expression class")
            out.append(_cls_escape(lit) + "-" + _cls_escape(hi))
            i += 2
        else:
            out.append(_cls_escape(lit))
    raise EvalError("missing ] in a regular expression")


def go_regex(p: str) -> tuple[str, bool]:
    """An RE2 pattern in the subset iamgate reproduces -> (Python `regex` pattern, needs ASCII input).
    Anything outside the subset is Inexact."""
    out, i, ascii_input = [], 0, False
    last_quant = False
    while i < len(p):
        c = p[i]
        quant = False
        if c == "\\":
            e = p[i + 1:i + 2]
            if e in ("d", "w", "s"):
                out.append("[" + _CLASS_ESC[e] + "]")
            elif e in ("D", "W", "S"):
                out.append("[^" + _CLASS_ESC[e.lower()] + "]")
            elif e in ("b", "B"):
                out.append("\\" + e)
                ascii_input = True  # RE2's word boundary is ASCII; Python's is Unicode
            elif e == "A":
                out.append("\\A")
            elif e == "z":
                out.append("\\Z")  # Python's \Z is RE2's \z: the very end of the text
            elif e in ("n", "t", "r", "f", "v"):
                out.append("\\" + e)
            elif e and e in _PUNCT:
                out.append(regex.escape(e))
            else:
                raise Inexact(f"the escape \\{e} in a regular expression")
            i += 2
        elif c == "[":
            text, i = _class(p, i)
            out.append(text)
        elif c == "(":
            if p.startswith("(?:", i):
                out.append("(?:")
                i += 3
            elif p.startswith(("(?P<", "(?<"), i):
                start = i + (4 if p.startswith("(?P<", i) else 3)
                end = p.find(">", start)
                name = p[start:end] if end > 0 else ""
                if not name or not (name.replace("_", "a").isalnum() and name.isascii()) or name[0].isdigit():
                    raise Inexact("a regular expression group name Python cannot use")
                out.append(f"(?P<{name}>")
                i = end + 1
            elif p.startswith("(?", i):
                raise Inexact("flags in a regular expression")
            else:
                out.append("(")
                i += 1
        elif c in "*+?":
            if last_quant:
                if c == "?" and p[i - 1] != "?":
                    out.append("?")  # lazy
                    i += 1
                    last_quant = False
                    continue
                raise Inexact("a repeated repetition operator in a regular expression")
            out.append(c)
            quant = True
            i += 1
        elif c == "{":
            m = regex.match(r"\{(\d+)(,(\d*))?\}", p[i:])
            if m is None:
                out.append("\\{")
                i += 1
            else:
                if last_quant or max(int(m.group(1)), int(m.group(3) or 0)) > 1000:
                    raise Inexact("a repetition RE2 rejects")
                out.append(m.group(0))
                quant = True
                i += len(m.group(0))
        elif c == "$":
            out.append("\\Z")  # RE2: end of text, not before a final newline
            i += 1
        elif c in "^.|)":
            out.append(c)
            i += 1
        else:
            out.append(regex.escape(c))
            i += 1
        last_quant = quant
    return "".join(out), ascii_input


def _extract(t: str):
    """Go's regexp `extract`: ($)name or ${name} -> (name, number or -1, rest) or None."""
    brace = t.startswith("{")
    s = t[1:] if brace else t
    i = 0
    while i < len(s) and (s[i].isalpha() or s[i].isdecimal() or s[i] == "_"):
        i += 1
    if i == 0:
        return None
    name = s[:i]
    if brace:
        if i >= len(s) or s[i] != "}":
            return None
        i += 1
    num = int(name) if name.isascii() and name.isdigit() and len(name) < 9 else -1
    if name[0] == "0" and len(name) > 1:
        num = -1
    return name, num, s[i:]


def go_expand(template: str, match) -> str:
    """Go's Regexp.Expand: `$1`, `${1}`, `$name`, `${name}`, `$$`; a name no group has is empty."""
    out = []
    while True:
        before, sep, after = template.partition("$")
        out.append(before)
        if not sep:
            break
        template = after
        if template.startswith("$"):
            out.append("$")
            template = template[1:]
            continue
        got = _extract(template)
        if got is None:
            out.append("$")
            continue
        name, num, template = got
        if num >= 0:
            if num <= (match.re.groups or 0):
                out.append(match.group(num) or "")
        elif name in match.re.groupindex:
            out.append(match.group(name) or "")
    return "".join(out)


def go_replace_all(pattern: str, s: str, repl: str) -> str:
    """Go's Regexp.ReplaceAllString, on a pattern `go_regex` accepts."""
    translated, ascii_input = go_regex(pattern)
    if ascii_input:
        ascii_only(s, "a regular expression with \\b")
    try:
        rx = regex.compile(translated)
    except regex.error as e:
        raise EvalError(f"invalid regular expression: {e}") from None
    out, last_end, pos = [], 0, 0
    try:
        while pos <= len(s):
            m = rx.search(s, pos, timeout=REGEX_SECONDS)
            if m is None:
                break
            a, b = m.span()
            out.append(s[last_end:a])
            if b > last_end or a == 0:  # no replacement for an empty match right after a match
                out.append(go_expand(repl, m))
            last_end = b
            pos = b if b > pos else pos + 1
    except TimeoutError:
        raise EvalError(f"replace(): the regular expression /{pattern}/ takes too long to evaluate") from None
    out.append(s[last_end:])
    return "".join(out)
