"""The data that flows between pipeline stages. Everything here is frozen."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

SEVERITIES = ("info", "low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True, order=True)
class Location:
    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Statement:
    effect: str  # "Allow" or "Deny"
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    condition: Mapping[str, Any] = field(default_factory=dict, hash=False)
    sid: str | None = None
    location: Location | None = None
    not_action_unresolved: bool = False  # a NotAction whose entries are not all known: read as excluding less

    @property
    def is_allow(self) -> bool:
        return self.effect == "Allow"


@dataclass(frozen=True)
class Policy:
    name: str
    statements: tuple[Statement, ...] = ()
    location: Location | None = None
    managed_arn: str | None = None  # set when the policy is a managed policy reference
    managed_origin: str | None = None  # where its document came from: "cache" or "bundle" (iamgate's copy)


@dataclass(frozen=True)
class Principal:
    id: str  # logical id, Terraform address or file path: stable across line moves
    kind: str  # role | user | group | policy (a policy with no known principal)
    name: str | None = None  # deployed name where the code fixes it
    name_is_prefix: bool = False
    arn: str | None = None
    path: str = "/"
    location: Location | None = None
    policies: tuple[Policy, ...] = ()
    aliases: tuple[str, ...] = ()  # other names users may map it by (CDK path, ...)
    source: str = ""
    name_pattern: str | None = None  # a name with unknown parts, as a glob (`*stratus-role`)
    # The same code resolved once per deployment it is synthesized for (CDK stages, issue 21):
    # (deployment name, account or None, the principal as resolved there).
    stages: tuple[tuple[str, str | None, "Principal"], ...] = field(default=(), hash=False, compare=False, repr=False)

    @property
    def display_name(self) -> str:
        """The deployed name, else a construct path (CDK), else the id."""
        if self.name:
            return self.name
        paths = [a for a in self.aliases if "/" in a]
        return paths[0] if self.source == "cdk" and paths else self.id


@dataclass(frozen=True)
class Unresolved:
    """Something in the code that cannot be decided statically; never guessed."""
    location: Location
    message: str
    principal_id: str | None = None
    grant: bool = False  # the unknown part decides what is allowed (Action, NotAction, Effect): could grant anything


@dataclass(frozen=True)
class Skipped:
    """A file under the scanned paths that was not read, and why (does not parse, leaves the roots)."""
    file: str
    reason: str

    def as_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason}


@dataclass(frozen=True)
class ScanError:
    file: str
    line: int | None
    message: str

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class SourceResult:
    principals: tuple[Principal, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    errors: tuple[ScanError, ...] = ()
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class Interval:
    """A span of time, ISO-8601 UTC strings (`2026-08-24T00:00:00Z`); `end` is exclusive."""
    start: str
    end: str


@dataclass(frozen=True)
class SourceUse:
    """One usage source's own record of one action (baseline history, issue 22)."""
    count: int | None = None
    first_seen: str | None = None
    last_seen: str | None = None


@dataclass(frozen=True)
class UsedAction:
    count: int | None = None
    last_seen: str | None = None
    signals: tuple[str, ...] = ()
    first_seen: str | None = None
    by_source: Mapping[str, SourceUse] = field(default_factory=dict, hash=False)  # source kind -> its record
    # Resource ARNs the action was used on (CloudTrail only; issue 23). Bounded: past the bound, `resources`
    # keeps the first ones, `resources_more` counts the rest and `resources_prefix` is the common prefix of all.
    resources: tuple[str, ...] = ()
    resources_more: int = 0
    resources_prefix: str | None = None


UNUSED_ACCESS_KIND = "unused-access"  # the baseline source kind of `iamgate usage unused-access`


@dataclass(frozen=True)
class UnusedAccessEvidence:
    """What an IAM Access Analyzer unused-access analyzer reported for one principal (`usage unused-access`).

    A finding lists what is unused; what was used is the rest of the deployed grant it judged.
    Actions and services are lowercase; the mappings give `lastAccessed` (None: never)."""
    analyzer: str
    tracking_days: int
    analyzed_at: str | None  # None: not analysed (see `not_analysed`)
    not_analysed: str = ""  # why the analyzer has not judged this principal
    unused_role: bool = False
    unused_actions: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    unused_services: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    # the deployed policies the analyzer judged: {"name", "arn"?, "document", "created"?}
    deployed_policies: tuple[Mapping[str, Any], ...] | None = field(default=None, hash=False)
    recommendation: Mapping[str, Any] | None = field(default=None, hash=False)  # AWS's recommended policy
    findings: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)  # id, type, status, analyzed_at


@dataclass(frozen=True)
class Baseline:
    """Observed usage of one principal, in the single iamgate.baseline/v1 shape."""
    principal_arn: str
    window_start: str | None = None
    window_end: str | None = None
    sources: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    used: Mapping[str, UsedAction] = field(default_factory=dict, hash=False)
    service_level_only: frozenset[str] = frozenset()
    not_accessed_services: frozenset[str] = frozenset()
    data_events_observed: frozenset[str] = frozenset()
    denied: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    files: tuple[str, ...] = ()
    unused_access: UnusedAccessEvidence | None = field(default=None, hash=False)
    # Per source kind, the intervals it watched (issue 22). Empty: the window, for every source.
    coverage: Mapping[str, tuple[Interval, ...]] = field(default_factory=dict, hash=False)
    deployment: str | None = None  # the named deployment the scheduled job wrote it for (issue 21)

    @property
    def account(self) -> str | None:
        parts = self.principal_arn.split(":")
        return parts[4] if len(parts) > 5 and parts[4] else None

    @property
    def complete(self) -> bool:
        return all(s.get("complete", True) is not False for s in self.sources)

    @cached_property
    def source_kinds(self) -> frozenset[str]:
        """The kinds of the sources that reported: a failed one (`error`) saw nothing."""
        return frozenset(s.get("kind", "") for s in self.working_sources)

    @property
    def working_sources(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(s for s in self.sources if not s.get("error"))

    @property
    def failed_sources(self) -> tuple[Mapping[str, Any], ...]:
        """Sources whose step failed (the baseline job records `{"kind": "last-accessed", "error": …}`)."""
        return tuple(s for s in self.sources if s.get("error"))

    @property
    def role_name(self) -> str:
        return self.principal_arn.rsplit("/", 1)[-1]


# The verdicts: `iamgate.judge.verdicts` decides them, the stages after it read them.
USED, UNUSED, UNOBSERVABLE, UNKNOWN, NO_DATA = "used", "unused", "unobservable", "unknown", "no-usage-data"
NEW, TOO_RECENT = "new", "too_recent"  # design.md's verdict order: granted by this change; watched too briefly
VERDICTS = (USED, UNUSED, UNOBSERVABLE, UNKNOWN, NO_DATA, NEW, TOO_RECENT)
# Across deployments the most cautious verdict wins (design.md): first in this tuple is most cautious.
CAUTION = (USED, UNOBSERVABLE, TOO_RECENT, NO_DATA, UNUSED)


@dataclass(frozen=True)
class Deployment:
    """One place a principal's code is deployed, with the baseline observed there (issue 21).

    `baseline` None: a named deployment with no baseline (the gate cannot vouch for what it did not see).
    `principal`: the principal as resolved for this deployment, where its grant differs from the default."""
    name: str  # a named deployment, else the account id, else a CDK stage
    account: str | None = None
    baseline: Baseline | None = None
    matched_by: str = ""  # how the baseline was matched, for the report
    principal: Principal | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True)
class GrantHistory:
    """When the granted actions appeared, continuously, on the branch being judged (issue 20; from git).

    `known` False: no history (a shallow clone, no git, files from outside the repository); `note` says so
    with the word "history". `since` maps a UTC date to the actions granted continuously since then;
    `new` holds the actions granted at the head but not on the base being compared."""
    known: bool
    note: str = ""
    new: frozenset = frozenset()
    since: tuple[tuple[str, frozenset], ...] = field(default=(), hash=False)

    def granted_since(self, action: str) -> str | None:
        for day, actions in self.since:
            if action in actions:
                return day
        return None


@dataclass(frozen=True)
class Evidence:
    """What the judge sees for one principal (design.md): its deployments, grant history, and the rules."""
    principal: Principal
    deployments: tuple[Deployment, ...] = ()
    history: GrantHistory | None = None  # None: not asked for
    min_observation_days: int = 30
    max_idle_days: int = 90


@dataclass(frozen=True)
class Verdict:
    action: str
    verdict: str  # used | unused | unobservable | unknown | no-usage-data | new | too_recent
    reason: str = ""
    granted_by: tuple[Location, ...] = ()
    statements: tuple[Statement, ...] = field(default=(), hash=False, compare=False)
    note: str = ""


@dataclass(frozen=True)
class PrincipalResult:
    """Verdicts for every granted action, held as sets: a principal with `NotAction` has ~22,000."""
    principal: Principal
    baseline: Baseline | None
    groups: Mapping[str, Mapping[str, frozenset]] = field(default_factory=dict, hash=False)  # verdict -> reason -> actions
    allows: tuple[tuple[Statement, frozenset], ...] = field(default=(), hash=False)  # each Allow, what it grants
    unknown: Mapping[str, tuple[Statement, ...]] = field(default_factory=dict, hash=False)  # pattern -> statements
    action_notes: tuple[tuple[frozenset, str], ...] = field(default=(), hash=False)  # (actions, note)
    notes: tuple[str, ...] = ()
    granted_actions: frozenset | None = field(default=None, hash=False, repr=False)  # shared with the grants
    # Every deployment the principal was judged in (issue 21): `baseline` above is the first that has one.
    deployments: tuple[Deployment, ...] = field(default=(), hash=False)
    # Where each used action was used: deployment names -> the used actions seen in exactly those (set-based:
    # one entry per combination of deployments, not per action).
    used_in: Mapping[tuple[str, ...], frozenset] = field(default_factory=dict, hash=False)
    history: GrantHistory | None = field(default=None, hash=False)  # the grant history it was judged with

    @property
    def judged_in(self) -> tuple[Deployment, ...]:
        """The deployments that have a baseline: the ones that judged the grant."""
        return tuple(d for d in self.deployments if d.baseline is not None)

    def where_used(self, action: str) -> tuple[str, ...]:
        """The deployments whose baselines show the action used (empty: not used, or no deployments)."""
        return next((names for names, acts in self.used_in.items() if action in acts), ())

    @cached_property
    def by_verdict(self) -> dict[str, list[str]]:
        from .reference.catalog import sort_actions
        return {v: sort_actions(frozenset().union(*reasons.values())) for v, reasons in self.groups.items()}

    def actions(self, verdict: str) -> list[str]:
        return list(self.by_verdict.get(verdict, ()))

    @cached_property
    def judged(self):
        """How much of the grant could be judged, and why not the rest (`iamgate.judge.verdicts.Judged`)."""
        from .judge.verdicts import judged
        return judged(self)

    @cached_property
    def granted(self) -> frozenset:
        """Every granted catalog action (unknown patterns are not actions)."""
        if self.granted_actions is not None:
            return self.granted_actions
        return frozenset().union(*(acts for v, r in self.groups.items() if v != "unknown" for acts in r.values()))

    def statements(self, action: str) -> tuple[Statement, ...]:
        if action in self.unknown:
            return tuple(self.unknown[action])
        return tuple(st for st, acts in self.allows if action in acts)

    def locations(self, action: str) -> tuple[Location, ...]:
        return tuple(dict.fromkeys(st.location for st in self.statements(action) if st.location))

    def first_location(self, action: str) -> Location | None:
        locs = self.locations(action)
        return locs[0] if locs else None

    def by_first_location(self, actions) -> dict:
        """Group actions by the first statement that grants them (set operations, not a loop per action)."""
        from .reference.catalog import sort_actions  # large sets: filtered from the presorted catalog
        return {loc: sort_actions(acts) for loc, acts in self.first_location_sets(actions).items()}

    def first_location_sets(self, actions, without: frozenset = frozenset()) -> dict[Location | None, frozenset]:
        """`by_first_location` of `actions` less `without`, unsorted: location -> the actions first granted there.

        A large set (a NotAction grant's unused actions) is not copied to be whittled down: while only a few of
        it are placed, what remains is `actions` less those (`taken`), and the statement granting most of it
        gets `actions` less the few it does not grant, remembered as such (`catalog.less`) for sorting."""
        from .reference.catalog import LESS_FROM, difference, less
        actions = actions if isinstance(actions, frozenset) else frozenset(actions)
        if without and len(actions) < LESS_FROM:
            actions, without = actions - without, frozenset()
        out: dict = {}

        def place(loc, hit) -> None:
            had = out.get(loc)
            out[loc] = had | hit if had else hit

        taken: set = {a for a in without if a in actions}  # placed so far (or left out), while `remaining` is not built
        remaining: set | None = None if len(actions) >= LESS_FROM else set(actions)
        for pattern in list(actions & set(self.unknown) - taken if taken else actions & set(self.unknown)):
            place(self.first_location(pattern), frozenset({pattern}))
            taken.add(pattern)
        if remaining is not None:
            remaining -= taken
        for st, acts in self.allows:
            if remaining is None and len(acts) < LESS_FROM:  # a few of a large set, looked up one by one
                hit = frozenset(a for a in acts if a in actions and a not in taken)
                taken |= hit
            elif remaining is None:  # the large statement: all that remains but what it does not grant
                outside = difference(actions, acts)  # few
                hit = less(actions, taken | outside)
                remaining = set(outside) - taken
            else:
                if not remaining:
                    break
                hit = frozenset(remaining & acts)
                remaining -= hit
            if hit:
                place(st.location, hit)
        rest = frozenset(remaining) if remaining is not None else less(actions, taken)
        if rest:
            place(None, rest)
        return out

    @cached_property
    def verdicts(self) -> tuple[Verdict, ...]:
        """One object per action; slow for huge grants, so stages use the set accessors instead."""
        out = []
        for v, reasons in self.groups.items():
            for reason, acts in reasons.items():
                for action in acts:
                    note = "; ".join(n for acts_n, n in self.action_notes if action in acts_n)
                    out.append(Verdict(action, v, reason, self.locations(action), self.statements(action), note))
        return tuple(sorted(out, key=lambda v: v.action))


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    principal: str  # principal id
    actions: tuple[str, ...]
    location: Location | None
    message: str
    combination: bool = False  # the actions form one subject (e.g. an escalation path)
    subject: str | None = None  # for findings about something other than actions
    reason: str = ""
    resources: tuple[str, ...] = ()  # the resources the actions were used on (resource-scope, issue 23)

    def keys(self) -> list[tuple]:
        """The stable finding keys: (principal id, check id, subject)."""
        if self.subject is not None:
            return [(self.principal, self.check, self.subject)]
        if self.combination or not self.actions:
            return [(self.principal, self.check, tuple(sorted(self.actions)))]
        return [(self.principal, self.check, a) for a in self.actions]
