"""resource-scope: a statement grants an action on `*` (or a wildcard ARN) where the principal's baselines
say which resources it was used on (issue 23)."""
from __future__ import annotations

import re

from iamgate.model import Finding, PrincipalResult, Statement
from iamgate.reference.catalog import glob_match
from iamgate.reference.resources import resource_condition_keys, star_only

from . import CHECKS, Analysis, Check

# Condition keys that pick resources whatever the action (besides each action's own resource-type keys).
_GLOBAL_KEYS = ("aws:resourcetag/*", "aws:resourceaccount", "aws:resourceorgid", "aws:resourceorgpaths",
                "*:resourcetag/*", "s3:prefix", "dynamodb:leadingkeys", "secretsmanager:secretid",
                "ssm:resourcetag/*", "kms:resourcealiases", "kms:requestalias")
_LEVEL_SEVERITY = {"Permissions management": "high", "Write": "medium"}  # else low
_VAR = re.compile(r"\$\{[^}]*\}")
# the principal's own account in a Resource (CloudFormation, Terraform)
_OWN_ACCOUNT = re.compile(r"\$\{(?:AWS::AccountId|data\.aws_caller_identity\.[\w-]+\.account_id)\}")
# an IAM policy variable (`${aws:username}`, `${s3:prefix}`, `${*}`): one value per request, never narrowed
_POLICY_VAR = re.compile(r"\$\{(?:[*?$]|[A-Za-z0-9-]+:(?!:)[^}]*)\}")


def baselines_of(r: PrincipalResult) -> tuple:
    """Every baseline of the principal: the deployments' where the judge has them, else its one. None at all
    when a named deployment has no baseline: what it used is unknown, so no resource set can be vouched for."""
    deployments = getattr(r, "deployments", None) or ()
    if any(d.baseline is None for d in deployments):
        return ()
    found = tuple(d.baseline for d in deployments)
    return found or ((r.baseline,) if r.baseline is not None else ())


def used_resources(baselines, action: str) -> tuple[tuple[str, ...], int] | None:
    """(the used ARNs, how many more past the bound) over every baseline that saw the action; None when
    one of them has no resource data for it, or none saw it."""
    arns: set = set()
    more = 0
    seen = False
    for b in baselines:
        u = b.used.get(action)
        if u is None:
            continue
        seen = True
        if not (u.resources or u.resources_more):
            return None
        arns.update(u.resources)
        more += u.resources_more
    return (tuple(sorted(arns)), more) if seen else None


def needed_resources(baselines, action: str) -> tuple[str, ...] | None:
    """What a narrowed grant must still cover: the used ARNs, or, for a baseline that saw more than it lists,
    their common prefix as a wildcard (`…table/t-0*`): the unlisted ones were used too. None as
    `used_resources`, and for a bounded list without a prefix."""
    out: set = set()
    for b in baselines:
        u = b.used.get(action)
        if u is None:
            continue
        if not (u.resources or u.resources_more):
            return None
        if u.resources_more:
            if not u.resources_prefix:
                return None
            out.add(u.resources_prefix + "*")
        else:
            out.update(u.resources)
    return tuple(sorted(out)) if out else None


def restricts_resources(st: Statement, action: str) -> bool:
    """A Condition that already picks among the resources (tags, account, the action's resource keys)."""
    keys = {k.lower() for ops in (st.condition or {}).values() if isinstance(ops, dict) for k in ops}
    if not keys:
        return False
    own = tuple(_VAR.sub("*", k) for k in resource_condition_keys(action)) + _GLOBAL_KEYS
    return any(glob_match(p, k) for k in keys for p in own)


def arn_fields(text: str) -> list[str]:
    """An ARN's six fields (the last keeps its colons), a colon inside `${…}` (`${AWS::Region}`) not splitting."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{" and text[i - 1:i] == "$":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif ch == ":" and not depth and len(out) < 5:
            out.append(text[start:i])
            start = i + 1
    return out + [text[start:]]


def covers(pattern: str, arn: str) -> bool:
    """Does the Resource `pattern` grant every ARN `arn` stands for (itself a glob, as an S3 prefix
    `…/exports/*` is)? An unresolved `${…}` partition, region or account of the pattern is read as `*` (it names
    one value, which the deployment knows); one in its service or resource part (`${BucketName}/*`) may name
    anything, so the pattern is not known to cover it. A `?` never stands for a wildcard of `arn`."""
    if _POLICY_VAR.search(pattern):
        return False
    if "${" in pattern:
        fields = arn_fields(pattern)
        if len(fields) < 6 or any("${" in fields[i] for i in (0, 2, 5)):
            return False
    pattern = _VAR.sub("*", pattern)
    if "?" in pattern and ("*" in arn or "?" in arn):
        return False
    return glob_match(pattern, arn)


def wide_patterns(st: Statement, used: tuple[str, ...], accounts=frozenset()) -> tuple[tuple[str, ...],
                                                                                       tuple[str, ...]]:
    """(the statement's resources wider than needed, the used ARNs they cover): `*`, or a wildcard ARN that
    covers some used ARNs and is strictly wider than each of them. A pattern that covers none is left
    alone: an absent resource is no proof that the grant is too wide on it. The principal's own account
    (`${AWS::AccountId}`, the caller identity) is one of `accounts` where they are known."""
    wide, covered = [], set()
    for res in st.resources:
        if res == "*":
            wide.append(res)
            covered.update(used)
        elif "*" in _VAR.sub("", res) or "?" in _VAR.sub("", res):  # `${AWS::Region}` alone names one value
            own = [_OWN_ACCOUNT.sub(a, res) for a in sorted(accounts)] if _OWN_ACCOUNT.search(res) else []
            hit = [u for u in used if any(covers(p, u) for p in own or [res])]
            if hit and not any(covers(u, res) for u in hit):
                wide.append(res)
                covered.update(hit)
    return tuple(wide), tuple(sorted(covered))


def _kind(arn: str) -> str:
    """The resource kind of an ARN for the message: `key`, `table`, `object prefix`, ..."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return "resource"
    if parts[2] == "s3":
        return "object prefix" if "/" in parts[5] else "bucket"
    rest = parts[5]
    head = re.split(r"[/:]", rest, 1)[0]
    return {"secret": "secret", "parameter": "parameter", "key": "key", "table": "table", "role": "role",
            "function": "function", "log-group": "log group", "stream": "stream", "repository": "repository",
            "stateMachine": "state machine", "event-bus": "event bus", "rule": "rule", "alias": "alias"}.get(
        head, "topic" if parts[2] == "sns" else "queue" if parts[2] == "sqs" else "resource")


def describe(used: tuple[str, ...], more: int) -> str:
    n = len(used) + more
    kinds = {_kind(a) for a in used}
    kind = kinds.pop() if len(kinds) == 1 else "resource"
    plural = kind + ("es" if kind.endswith("x") else "s") if n != 1 else kind
    shown = ", ".join(used[:5]) + (f" and {n - 5} more" if n > 5 else "")
    return f"used on {n} {plural}: {shown}"


@CHECKS.register
class ResourceScope(Check):
    name = "resource-scope"
    title = "Actions granted on `*` or a wildcard ARN but used on a known set of resources"
    severity = "medium"
    severity_rules = {
        "high": "a used Permissions management action granted on `*` (or a wider wildcard ARN) where usage names "
                "the resources it was used on",
        "medium": "the same for a Write action",
        "low": "the same for a Read, List or Tagging action",
    }
    docs = ("From CloudTrail, iamgate records the resources each used action was called on (`usage cloudtrail`). "
            "A statement that grants such an action on `*`, or on a wildcard ARN wider than those resources, is "
            "reported with the ARNs that were used, and `fix` narrows its Resource to them. Severity follows the "
            "access level: Permissions management high, Write medium, Read, List and Tagging low. Never reported: "
            "actions that AWS lets grant only on `*`; a statement whose Condition already selects resources; an "
            "action whose baselines hold no resource data (policy generation, last accessed, unused access, or a "
            "CloudTrail record that named none). An absent resource is no proof the grant is too wide on it: "
            "CloudTrail does not log cache-served reads or data events that were not enabled.")

    def run(self, analysis: Analysis):
        for r in analysis.results:
            baselines = baselines_of(r)
            if not baselines:
                continue
            seen = frozenset().union(*(b.used.keys() for b in baselines))  # only a used action has resources
            accounts = frozenset(b.account for b in baselines if b.account)
            for st, acts in r.allows:
                if not st.resources or st.not_resources:
                    continue
                groups: dict = {}
                for a in sorted(acts & seen):
                    got = used_resources(baselines, a)
                    if got is None or star_only(a) or restricts_resources(st, a):
                        continue
                    need = needed_resources(baselines, a)
                    wide, covered = wide_patterns(st, need or (), accounts)
                    if not wide:
                        continue
                    if wide != ("*",) and covered != need:  # part of the usage is granted elsewhere
                        got = (tuple(u for u in got[0] if any(covers(c, u) for c in covered)), 0)
                    level = analysis.catalog.access_level(a) or ""
                    sev = next((v for k, v in _LEVEL_SEVERITY.items() if k in level), "low")
                    groups.setdefault((got, wide, covered, sev), []).append(a)
                for ((used, more), wide, covered, sev), actions in sorted(groups.items(), key=lambda kv: kv[1][0]):
                    names = ", ".join(analysis.catalog.canonical(a) for a in actions)
                    on = " and ".join(wide)
                    yield Finding(self.name, sev, r.principal.id, tuple(actions), st.location,
                                  f"{names} on {on}, {describe(used or covered, more)}",
                                  reason="resources known from usage", resources=covered)


def resource_notes(results) -> list[str]:
    """The blind spot: for how many used actions the baselines hold the resources they were used on."""
    used = judged = 0
    for r in results:
        baselines = baselines_of(r)
        for a in {a for b in baselines for a in b.used}:
            if a not in r.granted or star_only(a):
                continue
            used += 1
            judged += used_resources(baselines, a) is not None
    if not used:
        return []
    rest = "" if judged == used else (" (the rest: no resource data in the baselines; policy generation, last "
                                      "accessed and unused access never give resources)")
    return [f"resources judged for {judged} of {used} used actions" + rest]
