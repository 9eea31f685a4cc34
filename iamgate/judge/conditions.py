"""Conditions that are always true, and whether a condition really restricts `iam:PassRole`.

An Allow whose condition holds for every request grants as much as one without it (issue 19): the
admin-wildcard and passrole-wildcard checks read such a condition as absent. A Deny keeps its condition
(read as "may not apply"), the cautious direction: an entry this table misjudges can only leave more granted.

Each row of ALWAYS_TRUE names an operator family, the values that make it hold, and the AWS documentation
that says so. Sources:
  [ops]   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
          (`...IfExists`: "If the policy key is present in the context of the request, process the key as
          specified in the policy. If the key is not present, evaluate the condition element as true.";
          `Null`: "false" means the key exists and its value is not null)
  [multi] https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
          (`ForAllValues`: "returns true if ... the context key in the request is not present")
  [keys]  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html
          (each key below: "Availability – This key is always included in the request context.")
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Mapping

# Global keys AWS documents as present in every request context [keys] (lowercase).
ALWAYS_PRESENT = frozenset({
    "aws:currenttime", "aws:epochtime", "aws:principalarn", "aws:principalaccount", "aws:principaltype",
    "aws:userid", "aws:securetransport", "aws:viaawsservice", "aws:requestedregion", "aws:principalisawsservice",
})

# (operator family, when it always holds, source). `*` matches every string in the *Like operators.
ALWAYS_TRUE: tuple[tuple[str, str, str], ...] = (
    ("StringLikeIfExists / ArnLikeIfExists", "a value is `*` (matches any present value; absent key: true)", "[ops]"),
    ("StringLike / ArnLike", "a value is `*` and the key is always present", "[ops] [keys]"),
    ("ForAllValues:StringLike / ForAllValues:ArnLike (and IfExists)", "a value is `*` (every value matches; "
     "absent key: true)", "[multi]"),
    ("Null", "`false` on a key that is always present", "[ops] [keys]"),
    ("IpAddressIfExists", "both `0.0.0.0/0` and `::/0` (every address; absent key: true)", "[ops]"),
    ("DateGreaterThan(Equals)[IfExists]", "`aws:CurrentTime` after a time already past (every request that can "
     "still be made is later)", "[ops] [keys]"),
    ("NumericGreaterThan(Equals)[IfExists]", "`aws:EpochTime` above a time already past", "[ops] [keys]"),
    ("DateLessThan(Equals)[IfExists] / NumericLessThan(Equals)[IfExists]", "`aws:CurrentTime`/`aws:EpochTime` "
     "before a time still to come: it holds for every request until then, so the grant stands as it is now",
     "[ops] [keys]"),
)

_ANY_STRING = re.compile(r"^\*+$")
_LIKE = {"stringlike", "arnlike"}


def _values(v) -> list[str]:
    return [str(x) for x in (v if isinstance(v, list) else [v])]


def _split(op: str) -> tuple[str, str, bool]:
    """(set qualifier, base operator, IfExists) from `ForAllValues:StringLikeIfExists`."""
    low = op.lower()
    qual, _, base = low.rpartition(":")
    if_exists = base.endswith("ifexists")
    return qual, base[: -len("ifexists")] if if_exists else base, if_exists


def _epoch_of(value: str) -> float | None:
    import datetime as dt
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def entry_always_true(op: str, key: str, value) -> bool:
    """Does `{op: {key: value}}` hold for every request? False when unsure (it then restricts)."""
    qual, base, if_exists = _split(str(op))
    key = str(key).lower()
    values = _values(value)
    if "${" in "".join(values):  # a policy variable or an unresolved part: not a constant
        return False
    present = key in ALWAYS_PRESENT
    if base in _LIKE and any(_ANY_STRING.match(v) for v in values):
        if qual == "forallvalues":
            return True
        if qual == "foranyvalue":
            return False  # false when the key is absent
        return if_exists or present
    if base == "null" and not qual:
        return present and all(v.lower() == "false" for v in values)
    if base == "ipaddress" and not qual and if_exists:  # aws:SourceIp is absent for calls via a service
        nets = []
        for v in values:
            try:
                nets.append(ipaddress.ip_network(v, strict=False))
            except ValueError:
                return False
        return any(n.prefixlen == 0 and n.version == 4 for n in nets) and any(
            n.prefixlen == 0 and n.version == 6 for n in nets)
    if base in ("dategreaterthan", "dategreaterthanequals", "numericgreaterthan", "numericgreaterthanequals") \
            and not qual and key in ("aws:currenttime", "aws:epochtime"):
        import time
        now = time.time()
        return any(x is not None and x < now for x in (_epoch_of(v) for v in values))
    if base in ("datelessthan", "datelessthanequals", "numericlessthan", "numericlessthanequals") \
            and not qual and key in ("aws:currenttime", "aws:epochtime"):
        import time
        now = time.time()
        return all(x is not None and x > now for x in (_epoch_of(v) for v in values))
    return False


def effective(condition: Mapping[str, Any] | None) -> dict:
    """The condition without its always-true entries: `{}` means it holds for every request."""
    out: dict = {}
    for op, block in (condition or {}).items():
        if not isinstance(block, Mapping):
            out[op] = block
            continue
        kept = {k: v for k, v in block.items() if not entry_always_true(op, k, v)}
        if kept:
            out[op] = kept
    return out


# -- iam:PassRole -----------------------------------------------------------------------------------
_POSITIVE = {"stringequals", "stringequalsignorecase", "stringlike"}
_NEGATIVE = {"stringnotequals", "stringnotequalsignorecase", "stringnotlike"}


def _names_a_service(value: str) -> bool:
    """`ec2.amazonaws.com` names one service; `*`, `*.amazonaws.com`, `ec2*` or a placeholder take in any."""
    label = value.split(".", 1)[0]
    return bool(label) and not any(c in label for c in "*?$")


def _restricts(condition, positive: set) -> bool:
    for op, block in (condition or {}).items():
        if not isinstance(block, Mapping):
            continue
        qual, base, _ = _split(str(op))
        if base not in positive or qual == "forallvalues":
            continue
        for key, value in block.items():
            if str(key).lower() == "iam:passedtoservice" and all(_names_a_service(v) for v in _values(value)):
                return True
    return False


def allow_restricts_passrole(condition) -> bool:
    """An Allow's condition limits PassRole to named services: a positive operator on
    `iam:PassedToService` whose every value names one service (not `*`, not `*.amazonaws.com`)."""
    return _restricts(effective(condition), _POSITIVE)


def deny_restricts_passrole(condition) -> bool:
    """A Deny's condition leaves PassRole only to named services: `StringNotEquals`/`StringNotLike`
    on `iam:PassedToService` whose every value names one service."""
    return _restricts(condition, _NEGATIVE)
