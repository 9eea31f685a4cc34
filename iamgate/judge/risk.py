"""Risk data (iamgate/data/risk.json) and the risk ranking of one principal's grants.

Ranking rule: every unused action, and every new one (granted by this change, so judged by its risk
alone), is reported once, by the most severe check that applies to it: an escalation combination it
completes (critical), credential or resource exposure (high), a data-exfiltration read on `Resource: *`
(medium), else its access level (`unused-actions`, or `new-grants` for a new action). One rule for both:
`secretsmanager:GetSecretValue` on `*` is data exfiltration whether it is new or old. A disabled check
passes its actions on to the next one.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources

from ..model import PrincipalResult, Statement
from ..reference.catalog import Catalog, glob_match, less
from .conditions import allow_restricts_passrole, deny_restricts_passrole
from .grants import on_every_resource, on_every_role

PRIVILEGE_ESCALATION = "privilege-escalation"
CREDENTIAL_EXPOSURE = "credential-exposure"
RESOURCE_EXPOSURE = "resource-exposure"
DATA_EXFILTRATION = "data-exfiltration"
UNUSED_ACTIONS = "unused-actions"
NEW_GRANTS = "new-grants"
PASSROLE = "iam:passrole"

# The ranking of per-action checks, most severe first (the escalation check claims before all of them).
LIST_CHECKS = ((CREDENTIAL_EXPOSURE, "credentials_exposure"), (RESOURCE_EXPOSURE, "resource_exposure"),
               (DATA_EXFILTRATION, "data_exfiltration"))

COMPLETED_BY_UNUSED = "completed by an unused action"
COMPLETED_BY_NEW = "completed by a new action"
IN_USE = "every action used, unobservable or allowlisted"
NOT_JUDGED = "no usage data to judge it by"

_ACTION_RX = re.compile(r"^[a-z0-9-]+:[a-z0-9_-]+$")


class RiskDataError(Exception):
    pass


@dataclass(frozen=True)
class Combination:
    id: str
    actions: frozenset[str]
    description: str
    sources: tuple[str, ...]

    @cached_property
    def sorted_actions(self) -> tuple[str, ...]:
        return tuple(sorted(self.actions))


@dataclass(frozen=True)
class ActionList:
    key: str  # its key in risk.json
    actions: frozenset[str]
    source: str
    rule: str = ""


@dataclass(frozen=True)
class RiskData:
    description: str
    sources: dict = field(hash=False)  # source key -> citation
    combinations: tuple[Combination, ...]
    lists: dict = field(hash=False)  # risk.json key -> ActionList


def _require(cond, message: str) -> None:
    if not cond:
        raise RiskDataError(f"risk.json: {message}")


def parse(data) -> RiskData:
    """Check the shape of risk.json and build the data; problems raise RiskDataError."""
    _require(isinstance(data, dict), "not a JSON object")
    sources = data.get("sources")
    _require(isinstance(sources, dict) and sources, "`sources` must map source keys to citations")
    combos, ids, action_sets = [], set(), {}
    for i, entry in enumerate(data.get("privilege_escalation") or ()):
        where = f"privilege_escalation[{i}]"
        _require(isinstance(entry, dict), f"{where} is not an object")
        cid, acts = entry.get("id"), entry.get("actions")
        _require(isinstance(cid, str) and cid, f"{where}.id is missing")
        _require(cid not in ids, f"{where}: duplicate id {cid}")
        _require(isinstance(acts, list) and acts, f"{where} ({cid}): `actions` must be a non-empty list")
        for a in acts:
            _require(isinstance(a, str) and _ACTION_RX.match(a), f"{where} ({cid}): {a!r} is not a lowercase action")
        key = frozenset(acts)
        _require(key not in action_sets, f"{where} ({cid}): same actions as {action_sets.get(key)}")
        srcs = entry.get("sources") or []
        _require(srcs and all(s in sources for s in srcs), f"{where} ({cid}): sources {srcs} not all cited")
        ids.add(cid)
        action_sets[key] = cid
        combos.append(Combination(cid, key, str(entry.get("description", "")), tuple(srcs)))
    _require(combos, "`privilege_escalation` is empty")
    lists = {}
    for _, key in LIST_CHECKS:
        entry = data.get(key)
        _require(isinstance(entry, dict) and isinstance(entry.get("actions"), list), f"`{key}.actions` is missing")
        _require(entry.get("source") in sources, f"`{key}.source` is not a cited source")
        for a in entry["actions"]:
            _require(isinstance(a, str) and _ACTION_RX.match(a), f"{key}: {a!r} is not a lowercase action")
        lists[key] = ActionList(key, frozenset(entry["actions"]), entry["source"], str(entry.get("rule", "")))
    return RiskData(str(data.get("description", "")), dict(sources), tuple(combos), lists)


@lru_cache(maxsize=1)
def load() -> RiskData:
    return parse(json.loads(resources.files("iamgate").joinpath("data/risk.json").read_text(encoding="utf-8")))


def missing_from_catalog(data: RiskData, catalog: Catalog) -> list[str]:
    """Every action in the risk data that the catalog does not know (should be none)."""
    out = [f"{c.id}: {a}" for c in data.combinations for a in sorted(c.actions) if a not in catalog]
    out += [f"{k}: {a}" for k, lst in data.lists.items() for a in sorted(lst.actions) if a not in catalog]
    return out


# -- one principal ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Escalation:
    combination: Combination
    severity: str  # critical | info
    reason: str
    completing: tuple[str, ...]  # the unused or new actions that complete it (empty unless critical)
    also: tuple[Combination, ...] = ()  # supersets of the same severity, folded into this one


@dataclass(frozen=True)
class Assessment:
    escalations: tuple[Escalation, ...]
    claimed: dict = field(hash=False)  # check id -> the unused and new actions it reports
    new: frozenset = frozenset()  # the principal's new actions: a check reports them apart from the unused ones
    unranked_new: frozenset = frozenset()  # new actions left to `new-grants`
    unused: frozenset = frozenset()  # every unused action, ranked or not
    taken: frozenset = frozenset()  # the unused and new actions a risk check reports (few)

    @cached_property
    def unranked(self) -> frozenset:
        """Unused actions left to `unused-actions` (`unused` less `taken`; that check takes them out as it
        groups them, without this copy of a NotAction grant's ~20,000)."""
        return less(self.unused, self.taken)

    def any_unranked(self) -> bool:
        return len(self.unused) > len(self.taken) or not self.unused <= self.taken


def principal_names(result: PrincipalResult) -> tuple[str, ...]:
    """Every name an allowlist entry may match this principal by."""
    p = result.principal
    return (p.id, p.name or "", p.arn or "", result.baseline.principal_arn if result.baseline else "", *p.aliases)


def unused_set(result: PrincipalResult) -> frozenset:
    parts = list(result.groups.get("unused", {}).values())
    return parts[0] if len(parts) == 1 else frozenset().union(*parts)  # one reason: no copy


def new_set(result: PrincipalResult) -> frozenset:
    """Actions granted by this change: nothing can have used them, so their risk alone judges them."""
    return frozenset().union(*result.groups.get("new", {}).values())


def ranked_set(result: PrincipalResult) -> frozenset:
    """What the risk ranking reports: the unused actions and the new ones (never used, too_recent, ...)."""
    return unused_set(result) | new_set(result)


def escalations(result: PrincipalResult, combos, unused: frozenset, accepted: frozenset = frozenset(),
                new: frozenset = frozenset()):
    """The combinations granted across all the principal's policies, supersets folded into subsets.
    Completed by an unused action, or by a new one (this change grants the last step)."""
    granted = result.granted
    fired = []
    for c in combos:
        if c.actions <= granted:  # the few actions of a combination looked up, no copy of a large grant
            hit = tuple(sorted(a for a in c.actions if (a in unused or a in new) and a not in accepted))
            if hit:
                fired.append((c, "critical", COMPLETED_BY_UNUSED if set(hit) - new else COMPLETED_BY_NEW, hit))
            else:
                fired.append((c, "info", NOT_JUDGED if result.baseline is None else IN_USE, ()))
    fired.sort(key=lambda f: (len(f[0].actions), f[0].id))
    roots: list[list] = []  # [combination, severity, reason, completing, also]
    for c, sev, reason, hit in fired:
        root = next((r for r in roots if r[1] == sev and r[0].actions < c.actions), None)
        if root is not None:
            root[4].append(c)
        else:
            roots.append([c, sev, reason, hit, []])
    return tuple(Escalation(c, sev, reason, hit, tuple(also)) for c, sev, reason, hit, also in roots)


def assess(result: PrincipalResult, data: RiskData, disabled=(), accepted: frozenset = frozenset()) -> Assessment:
    unused, new = unused_set(result), new_set(result)
    esc = (escalations(result, data.combinations, unused, accepted, new) if PRIVILEGE_ESCALATION not in disabled
           else ())
    # the claims are small (risk lists, combinations); the ranked set may be a NotAction grant's ~20,000
    # actions: it is not copied here (`Assessment.unranked`)
    taken = frozenset().union(*(e.completing for e in esc))
    claimed = {}
    for check, key in LIST_CHECKS:
        if check in disabled:
            continue
        hit = _ranked_in(data.lists[key].actions, unused, new, taken)
        if hit and check == DATA_EXFILTRATION:
            hit = _on_every_resource(result, hit)
        if hit:
            claimed[check] = hit
            taken |= hit
    return Assessment(esc, claimed, new, new - taken if taken else new, unused, taken)


def _ranked_in(listed: frozenset, unused: frozenset, new: frozenset, taken: frozenset) -> frozenset:
    """The unused and new actions in a risk list, not yet taken: walks whichever side is smaller."""
    if len(listed) < len(unused) + len(new):
        return frozenset(a for a in listed if (a in unused or a in new) and a not in taken)
    return frozenset(a for part in (unused, new) for a in part if a in listed and a not in taken)


def _on_every_resource(result: PrincipalResult, actions: frozenset) -> frozenset:
    """The actions some Allow grants on every resource (`Resource: *`, or a `NotResource`), without building
    the union of those grants."""
    wide = [acts for st, acts in result.allows if on_every_resource(st)]
    return frozenset(a for a in actions if any(a in acts for acts in wide))


def assessment(analysis, result: PrincipalResult) -> Assessment:
    """The ranking for one principal, computed once per analysis and shared by the checks."""
    cache = analysis.memo.setdefault("risk.assessment", {})
    hit = cache.get(id(result))
    if hit is None:
        cfg = analysis.config
        accepted = (allowlisted(result, cfg.allowlist, analysis.today, analysis.catalog) if cfg.allowlist
                    else frozenset())
        hit = cache[id(result)] = assess(result, load(), tuple(cfg.disable), accepted)
    return hit


def allowlisted(result: PrincipalResult, allowlist, today, catalog: Catalog) -> frozenset:
    """The principal's unused and new actions that an active allowlist entry covers."""
    unused = ranked_set(result)
    names = [n for n in principal_names(result) if n]
    out: set = set()
    for e in allowlist:
        if not e.expired(today) and any(glob_match(e.principal, n) for n in names):
            out |= catalog.expand(e.action).actions & unused
    return frozenset(out)


# -- iam:PassRole ---------------------------------------------------------------------------------
def _names_passrole(st: Statement) -> bool:
    if st.not_actions:
        return not any(glob_match(p, PASSROLE) for p in st.not_actions)
    return any(glob_match(p, PASSROLE) for p in st.actions)


def names_any_role(st: Statement) -> bool:
    return on_every_role(st)


def unrestricted_passrole(result: PrincipalResult) -> tuple[Statement, ...]:
    """Allows that grant iam:PassRole on every role with no condition restricting iam:PassedToService to
    named services (and no Deny of PassRole that leaves it only to named services). An always-true
    condition, or a `*`/`*.amazonaws.com` value, does not restrict (`iamgate.judge.conditions`)."""
    guarded = any(not st.is_allow and deny_restricts_passrole(st.condition) and _names_passrole(st)
                  and on_every_role(st) for policy in result.principal.policies for st in policy.statements)
    if guarded:
        return ()
    return tuple(st for st, acts in result.allows
                 if PASSROLE in acts and names_any_role(st) and not allow_restricts_passrole(st.condition))
