"""Splitting a statement whose actions need different resources (issue 23): one statement per set of used ARNs,
and one that keeps the Resource as written for the actions without resource data, in the file's own syntax
(CloudFormation YAML and JSON, Terraform `jsonencode` objects and `aws_iam_policy_document` statement blocks).
Each renderer returns (start, end, new text) of the statement, or None where it cannot split it safely."""
from __future__ import annotations

import json
import re

from .resources import JSON_STR, ResourceFix, cfn_item, tf_item

# a Terraform statement's Resource as written: a string or a list on one line, kept for the actions left over
_TF_ORIGINAL = re.compile(rf'\b(?:Resource|resources)\s*=\s*(?P<value>{JSON_STR}|\[[^\]\n]*\])')


def _parts(f: ResourceFix) -> list[tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """(actions, ARNs or None for the original Resource) per new statement."""
    return [(acts, arns) for acts, arns in f.groups] + ([(f.rest, None)] if f.rest else [])


def safe(f: ResourceFix) -> bool:
    """A split rewrites the whole statement: only one whose Resource is one `*`, or one wildcard ARN covering
    each group's ARNs (the actions left over keep it as written), so no statement grants what it did not."""
    from ..checks.resource_scope import covers
    if len(f.statement.resources) != 1:
        return False
    (res,) = f.statement.resources
    return res == "*" or all(covers(res, a) for _, arns in f.groups for a in arns)


def _hcl(value: str) -> str:
    """A string literal in HCL: JSON's escapes, and no template sequence (`${`, `%{`) from the scanned file."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _sid(f: ResourceFix, i: int) -> str | None:
    """The statement's `Sid` goes to the first new statement only (a policy's Sids are unique)."""
    return f.statement.sid if i == 0 and isinstance(f.statement.sid, str) else None


def _matching(text: str, i: int) -> int | None:
    """Offset just past the brace matching the one at `i` (strings skipped)."""
    from ..sources.terraform.strings import matching_brace
    j = matching_brace(text, i + 1)
    return j + 1 if j >= 0 else None


def _line_start(text: str, line: int) -> int:
    pos = 0
    for _ in range(line - 1):
        pos = text.find("\n", pos) + 1
        if pos == 0:
            return len(text)
    return pos


def split_yaml(text: str, f: ResourceFix, ctx):
    import yaml

    from .yaml import YamlFile, content_end
    defined, uses_pseudo = ctx
    doc = YamlFile(text)
    for node, parent in doc.nodes:
        if (isinstance(node, yaml.MappingNode) and node.start_mark.line + 1 == f.location.line
                and isinstance(parent, yaml.SequenceNode) and not parent.flow_style
                and any(isinstance(k, yaml.ScalarNode) and k.value == "Effect" for k, _ in node.value)):
            col = doc.lines.column(node.start_mark.index)
            first = doc.lines.start(doc.lines.line_of(node.start_mark.index))
            if text[first:node.start_mark.index].strip() != "-" or col < 2:
                return None
            last = doc.lines.end(doc.lines.line_of(content_end(node) - 1))
            pad, nl = " " * col, doc.nl
            original = _yaml_items(text, next((v for k, v in node.value if getattr(k, "value", None) == "Resource"),
                                              None))
            if original is None:
                return None
            out = []
            for i, (acts, arns) in enumerate(_parts(f)):
                res = original if arns is None else [cfn_item(a, defined, uses_pseudo, False, f.accounts, f.regional)
                                                     for a in arns]
                sid = _sid(f, i)
                head = f"- Sid: {json.dumps(sid)}" + nl + pad + "Effect: Allow" if sid else "- Effect: Allow"
                out.append(" " * (col - 2) + head + nl + pad + "Action:" + "".join(
                    nl + pad + "  - " + a for a in acts) + nl + pad + "Resource:" + "".join(
                    nl + pad + "  - " + r for r in res) + nl)
            return first, last, "".join(out)
    return None


def _yaml_items(text: str, node) -> list[str] | None:
    """The Resource's items as written, one line each (`"*"`, `!Sub "arn:…"`), or None."""
    import yaml
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node] if isinstance(node, yaml.ScalarNode) else []
    out = [text[n.start_mark.index:n.end_mark.index] for n in nodes if isinstance(n, yaml.ScalarNode)]
    if not out or len(out) != len(nodes) or any("\n" in t or not t.strip() for t in out):
        return None
    return out


def split_json(text: str, f: ResourceFix, ctx):
    defined, uses_pseudo = ctx
    start = text.find("{", _line_start(text, f.location.line or 1))
    end = _matching(text, start) if start >= 0 else None
    if end is None:
        return None
    try:
        original = json.loads(text[start:end])["Resource"]
    except (ValueError, KeyError, TypeError):
        return None
    col = start - (text.rfind("\n", 0, start) + 1)
    pad = " " * col
    objs = []
    for i, (acts, arns) in enumerate(_parts(f)):
        res = original if arns is None else [cfn_item(a, defined, uses_pseudo, True, f.accounts, f.regional)
                                             for a in arns]
        sid = {"Sid": _sid(f, i)} if _sid(f, i) else {}
        body = json.dumps({**sid, "Effect": "Allow", "Action": list(acts), "Resource": res}, indent=2)
        objs.append(body.replace("\n", "\n" + pad))
    return start, end, (",\n" + pad).join(objs)


def split_tf(text: str, f: ResourceFix, ctx):
    defined, caller, region = ctx
    line0 = _line_start(text, f.location.line or 1)
    start = text.find("{", line0)
    if start < 0:
        return None
    block = re.match(r"[ \t]*statement[ \t]*$", text[line0:start])
    end = _matching(text, start)
    if end is None or re.search(r'"(?:Effect|Action|Resource)"\s*:', text[start:end]):
        return None  # JSON in a heredoc: not split here
    col = (line0 if block else start) - (text.rfind("\n", 0, line0 if block else start) + 1)
    if block:
        col = len(text[line0:start]) - len(text[line0:start].lstrip())
    pad = " " * col
    m = _TF_ORIGINAL.search(text, start, end)
    if m is None:
        return None
    original = m.group("value") if m.group("value").startswith("[") else f"[{m.group('value')}]"
    out = []
    for i, (acts, arns) in enumerate(_parts(f)):
        res = original if arns is None else "[" + ", ".join(tf_item(a, defined, caller, region, f.accounts, f.regional)
                                                            for a in arns) + "]"
        names = "[" + ", ".join(f'"{a}"' for a in acts) + "]"
        sid = _sid(f, i)
        if block:
            head = f"\n{pad}  sid       = {_hcl(sid)}" if sid else ""
            out.append(f'statement {{{head}\n{pad}  effect    = "Allow"\n{pad}  actions   = {names}\n'
                       f'{pad}  resources = {res}\n{pad}}}')
        else:
            head = f"\n{pad}  Sid      = {_hcl(sid)}" if sid else ""
            out.append(f'{{{head}\n{pad}  Effect   = "Allow"\n{pad}  Action   = {names}\n{pad}  Resource = {res}\n'
                       f'{pad}}}')
    if block:
        return line0 + col, end, ("\n" + pad).join(out)
    return start, end, (",\n" + pad).join(out)
