"""Helpers shared by sources: assembling principals and turning documents into policies."""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from ..model import Location, Policy, Principal, ScanError, SourceResult, Unresolved
from ..reference.managed_policies import ManagedPolicyCache, normalise_arn
from .budget import BudgetExceeded, budget
from .policy_document import Unknown, parse_policy

INTERNAL_ERROR = "internal error in iamgate (please report)"


@dataclass
class Draft:
    id: str
    kind: str
    name: str | None = None
    name_is_prefix: bool = False
    arn: str | None = None
    path: str = "/"
    location: Location | None = None
    policies: list[Policy] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    name_pattern: str | None = None

    def freeze(self, source: str) -> Principal:
        return Principal(id=self.id, kind=self.kind, name=self.name, name_is_prefix=self.name_is_prefix,
                         arn=self.arn, path=self.path or "/", location=self.location,
                         policies=tuple(self.policies), aliases=tuple(self.aliases), source=source,
                         name_pattern=self.name_pattern)


def name_pattern(value) -> str | None:
    """A name that is partly unknown (`${var.prefix}-role`) as a glob (`*-role`), if any text is known."""
    text = getattr(value, "text", None)
    if not isinstance(text, str):
        return None
    pattern = re.sub(r"\$\{[^{}]*\}", "*", text)
    pattern = re.sub(r"\*+", "*", pattern)
    return pattern if pattern.strip("*") and "$" not in pattern and "{" not in pattern else None


_ANY_PARTITION = re.compile(r"^arn:\$\{[^{}]*\}:iam::aws:policy/([^${}]+)$")


def aws_managed_in_any_partition(value) -> str | None:
    """`arn:${data.aws_partition.current.partition}:iam::aws:policy/X`: AWS managed policy X whatever the
    partition (aws, aws-cn, aws-us-gov publish it under the same name), read as `arn:aws:...` from the bundle."""
    text = getattr(value, "text", None)
    m = _ANY_PARTITION.match(text) if isinstance(value, Unknown) and isinstance(text, str) else None
    return f"arn:aws:iam::aws:policy/{m.group(1)}" if m else None


def _json_with_unknowns(doc):
    """A document given as a JSON string with unknown parts (`!Sub '{"Statement": … ${AWS::Region} …}'`)
    is still JSON: parsed, with each string that holds an unknown part kept Unknown, so only those
    parts stay unresolved instead of the whole document."""
    text = getattr(doc, "text", None)
    if not isinstance(doc, Unknown) or not isinstance(text, str) or not text.lstrip().startswith("{"):
        return doc
    try:
        data = json.loads(text)
    except ValueError:
        return doc

    def mark(value):
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        if isinstance(value, str) and "${" in value:
            return Unknown(doc.reason, value, doc.line)
        return value
    return mark(data)


class Collector:
    """Accumulates principals, unresolved notes and errors for one source run."""

    def __init__(self, source: str, managed_dir: str | None = None):
        self.source = source
        self.drafts: dict[str, Draft] = {}
        self.unresolved: list[Unresolved] = []
        self.errors: list[ScanError] = []
        self.managed = ManagedPolicyCache(managed_dir)

    def principal(self, pid: str, kind: str, **kw) -> Draft:
        d = self.drafts.get(pid)
        if d is None:
            d = self.drafts[pid] = Draft(pid, kind, **kw)
        return d

    @contextmanager
    def guard(self, file: str):
        """A bug must not end the scan: report it as this file's error and go on."""
        try:
            with budget():  # Fn::ForEach and other expansions: at most budget.ELEMENTS for this file
                yield
        except BudgetExceeded as e:
            self.drafts.clear()  # what was read before the budget ran out is not the whole grant
            self.error(file, e.line, str(e))
        except RecursionError:
            self.error(file, None, "nested too deeply to evaluate")
        except Exception as e:  # noqa: BLE001
            self.error(file, None, f"{INTERNAL_ERROR}: {type(e).__name__}: {e}")

    def error(self, file: str, line: int | None, message: str) -> None:
        self.errors.append(ScanError(file, line, message))

    def note(self, file: str, line: int | None, message: str, principal_id: str | None = None,
             grant: bool = False) -> None:
        self.unresolved.append(Unresolved(Location(file, line), message, principal_id, grant))

    def policy(self, name: str, doc, file: str, line: int | None, principal_id: str | None = None,
               managed_arn: str | None = None) -> Policy:
        """Parse a policy document; problems become located errors, unknown parts notes."""
        if isinstance(doc, str):  # CloudFormation also takes the document as a JSON string
            try:
                doc = json.loads(doc)
            except ValueError as e:
                self.error(file, line, f"policy {name}: the document is a string but not JSON: {e}")
                doc = None
        doc = _json_with_unknowns(doc)
        parsed = parse_policy(doc, file, line)
        for pline, msg in parsed.problems:
            self.error(file, pline, f"policy {name}: {msg}")
        for i, (pline, msg) in enumerate(parsed.unknowns):
            self.note(file, pline, f"policy {name}: {msg}", principal_id, grant=i in parsed.grant_unknowns)
        return Policy(name=name, statements=tuple(parsed.statements), location=Location(file, line),
                      managed_arn=managed_arn)

    def managed_policy(self, ref: str, file: str, line: int | None, principal_id: str | None) -> Policy | None:
        """A managed policy attached by ARN: its document from the cache or the bundle. One that cannot be
        resolved is an unresolved grant (issue 19): it could grant anything, `AdministratorAccess` included."""
        arn = normalise_arn(ref)
        if arn is None:
            why = ("is a dynamic reference, resolved at deploy time" if "{{resolve:" in ref
                   else "is not an ARN and cannot be looked up")
            self.note(file, line, f"managed policy {ref!r} {why}", principal_id, grant=True)
            return None
        found = self.managed.lookup(arn)
        if found is None:
            self.note(file, line, f"managed policy {arn} is not in the managed-policy cache "
                                  f"({self.managed.directory}); run `iamgate managed-policies fetch`", principal_id,
                      grant=True)
            return Policy(name=arn.rsplit("/", 1)[-1], location=Location(file, line), managed_arn=arn)
        return replace(self.policy(arn.rsplit("/", 1)[-1], found.document, file, line, principal_id, managed_arn=arn),
                       managed_origin=found.origin)

    def result(self) -> SourceResult:
        return SourceResult(tuple(d.freeze(self.source) for d in self.drafts.values()),
                            tuple(self.unresolved), tuple(self.errors))
