"""IAM policy documents (already free of IaC functions) -> Statement objects with lines."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Location, Statement
from .loaders import line_of


class Unknown:
    """A value the code does not fix statically (apply-time value, import, missing input)."""
    __slots__ = ("reason", "text", "line")

    def __init__(self, reason: str, text: str | None = None, line: int | None = None):
        self.reason = reason
        self.text = text if text is not None else "${" + reason + "}"
        self.line = line

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Unknown({self.reason!r})"


@dataclass
class ParsedPolicy:
    statements: list[Statement] = field(default_factory=list)
    problems: list[tuple[int | None, str]] = field(default_factory=list)  # not a policy
    unknowns: list[tuple[int | None, str]] = field(default_factory=list)  # unresolved parts
    grant_unknowns: set[int] = field(default_factory=set)  # indexes into unknowns that decide what is allowed


def looks_like_policy(doc) -> bool:
    return isinstance(doc, dict) and "Statement" in doc and (
        "Version" in doc or isinstance(doc.get("Statement"), (list, dict)))


def _strings(value, what: str, line, out: ParsedPolicy, keep_unknown_text=False, grant=False) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    result = []
    for item in items:
        if isinstance(item, Unknown):
            if keep_unknown_text:
                result.append(item.text)
            else:
                if grant:
                    out.grant_unknowns.add(len(out.unknowns))
                out.unknowns.append((item.line or line, f"{what} cannot be resolved: {item.reason}"))
        elif isinstance(item, (str, int, float)) and not isinstance(item, bool):
            result.append(item if isinstance(item, str) else str(item))  # a str keeps its marks (UnionStr)
        else:
            out.problems.append((line_of(item, line), f"{what} must be a string or a list of strings"))
    return tuple(result)


def _strs(values) -> tuple[str, ...]:
    return tuple(str.__str__(v) for v in values)


def _is_branch(value) -> bool:
    return type(value).__name__ in ("UnionStr", "UnionDict")


def _maybe_absent(st: dict) -> bool:
    for key in ("Action", "NotAction", "Resource", "NotResource"):
        value = st.get(key)
        if any(_is_branch(v) for v in (value if isinstance(value, list) else [value])):
            return True
    return False


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Unknown):
        return value.text
    if isinstance(value, str):
        return str(value)  # a plain str, not a resolver's subclass (`ResourceRef`)
    return value


def parse_policy(doc, file: str, line: int | None = None) -> ParsedPolicy:
    out = ParsedPolicy()
    if isinstance(doc, Unknown):
        out.grant_unknowns.add(0)
        out.unknowns.append((doc.line or line, f"policy document cannot be resolved: {doc.reason}"))
        return out
    if not isinstance(doc, dict):
        out.problems.append((line_of(doc, line), "a policy document must be a mapping with a Statement"))
        return out
    if "Statement" not in doc:
        out.problems.append((line_of(doc, line), "policy document has no Statement"))
        return out
    raw = doc["Statement"]
    if isinstance(raw, Unknown):
        out.grant_unknowns.add(len(out.unknowns))
        out.unknowns.append((raw.line or line_of(doc, line), f"Statement cannot be resolved: {raw.reason}"))
        return out
    stmts = raw if isinstance(raw, list) else [raw]
    for st in stmts:
        sline = line_of(st, line_of(raw, line_of(doc, line)))
        if isinstance(st, Unknown):
            out.grant_unknowns.add(len(out.unknowns))
            out.unknowns.append((st.line or sline, f"statement cannot be resolved: {st.reason}"))
            continue
        if not isinstance(st, dict):
            out.problems.append((sline, "a statement must be a mapping"))
            continue
        effect = st.get("Effect")
        if isinstance(effect, Unknown):
            out.grant_unknowns.add(len(out.unknowns))
            out.unknowns.append((sline, f"Effect cannot be resolved: {effect.reason}"))
            continue
        if effect not in ("Allow", "Deny"):
            out.problems.append((sline, f"Effect must be Allow or Deny, not {effect!r}"))
            continue
        if ("Action" in st) == ("NotAction" in st):
            out.problems.append((sline, "a statement needs exactly one of Action or NotAction"))
            continue
        allow = effect == "Allow"  # an unknown action in a Deny can only deny less than it says
        actions = _strings(st.get("Action"), "Action", sline, out, grant=allow)
        unknown_before = len(out.unknowns)
        not_actions = _strings(st.get("NotAction"), "NotAction", sline, out, grant=allow)
        # entries from one branch of an undecided CloudFormation Fn::If may not be there: a Deny built from
        # them may not apply, and an Allow's NotAction or NotResource excludes only what both branches exclude
        maybe = _maybe_absent(st)
        not_action_unresolved = len(out.unknowns) > unknown_before
        if allow and any(_is_branch(a) for a in not_actions):
            not_actions = tuple(a for a in not_actions if not _is_branch(a))
            not_action_unresolved = True
        if len(out.unknowns) > unknown_before:  # read the way that grants more: an Allow excludes only the known entries,
            how = ("read as excluding only the known entries, which grants more" if allow  # a Deny denies nothing
                   else "read as denying nothing, since it may exclude everything")
            out.unknowns[-1] = (out.unknowns[-1][0], f"{out.unknowns[-1][1]}; {how}")
        resources = _strings(st.get("Resource"), "Resource", sline, out, keep_unknown_text=True)
        not_resources = _strings(st.get("NotResource"), "NotResource", sline, out, keep_unknown_text=True)
        if allow and any(_is_branch(r) for r in not_resources):
            not_resources = tuple(r for r in not_resources if not _is_branch(r)) or ("${undecided Fn::If}",)
        condition = st.get("Condition") or {}
        if allow and isinstance(condition, dict):  # a condition from an undecided Fn::If branch may be absent
            condition = {} if _is_branch(condition) else {op: block for op, block in condition.items()
                                                           if not _is_branch(block)}
        if not allow and maybe and not isinstance(condition, Unknown) and isinstance(condition, dict):
            condition = {**condition, "Unresolved": {"iamgate:condition": "an undecided Fn::If branch"}}
        if isinstance(condition, Unknown):  # still a condition: never read it as unconditional
            out.unknowns.append((condition.line or sline, f"Condition cannot be resolved: {condition.reason}"))
            condition = {"Unresolved": {"iamgate:condition": condition.text}}
        elif not isinstance(condition, dict):
            out.problems.append((sline, "Condition must be a mapping"))
            condition = {}
        sid = st.get("Sid")
        out.statements.append(Statement(
            effect=effect, actions=_strs(actions), not_actions=_strs(not_actions), resources=_strs(resources),
            not_resources=_strs(not_resources), condition=_plain(condition),
            sid=str(sid) if sid is not None and not isinstance(sid, Unknown) else None,
            location=Location(file, sline), not_action_unresolved=not_action_unresolved))
    return out
