"""The pipeline: sources -> usage -> evaluate -> checks -> report."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Mapping

from .checks._allowlist import apply_allowlist
from .checks.resource_scope import resource_notes
from .config import Config
from .judge.evidence import judge
from .judge.verdicts import Observability
from .model import (
    TOO_RECENT,
    UNOBSERVABLE,
    UNUSED,
    USED,
    Deployment,
    Evidence,
    Finding,
    GrantHistory,
    Principal,
    PrincipalResult,
    ScanError,
    Skipped,
    Unresolved,
    severity_rank,
)
from .reference import support as support_mod
from .reference.catalog import Catalog, load_catalog
from .reference.managed_policies import bundle_use
from .sources import ScanOptions, Workspace, scan
from .usage import UsageResult, UsageSource
from .usage.baseline_files import BaselineFiles
from .usage.deployments import Gathered, gather
from .usage.matching import Matcher


@dataclass(frozen=True)
class Report:
    catalog: dict
    results: tuple[PrincipalResult, ...]
    findings: tuple[Finding, ...]
    errors: tuple[ScanError, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    fail_on: str = "high"
    matched_by: dict = field(default_factory=dict, hash=False)  # principal id -> how its baseline matched
    unmatched_baselines: tuple[str, ...] = ()
    suppressed: tuple[Finding, ...] = ()
    new_keys: frozenset | None = None  # set in diff mode: the finding keys absent on the base
    notes: tuple[str, ...] = ()  # what usage sources said (unmapped events, skipped files)
    comparison: object | None = field(default=None, hash=False, compare=False)  # iamgate.diff.BaseComparison
    skipped: tuple[Skipped, ...] = ()  # files under the scanned paths not read, with the reason
    require_usage_data: bool = False  # fail the gate when no principal has a usage baseline
    roots: tuple[str, ...] = ()  # real paths iamgate may read and `fix --write` may write under
    support_data: dict = field(default_factory=dict, hash=False)  # the AWS support table judged with (date, origin)
    managed_bundle: dict = field(default_factory=dict, hash=False)  # AWS managed policies read from the bundle
    history_notes: tuple[str, ...] = ()  # where grant history is unknown (a shallow clone, no git), and why
    # issue 21: baselines that fit two principals, principals that fit several baselines in one account,
    # named deployments without a baseline ((principal id, deployment name, account)), grants that differ
    shared_baselines: tuple[str, ...] = ()
    ambiguous_baselines: tuple[str, ...] = ()
    missing_deployments: tuple[tuple[str, str, str | None], ...] = ()
    require_all_deployments: bool = False  # `require-usage-data: all-deployments`
    grant_differs: dict = field(default_factory=dict, hash=False)  # principal id -> ((deployment, (what...)), ...)

    @property
    def matching_notes(self) -> tuple[str, ...]:
        """What every format says about matching: shared and ambiguous baselines."""
        return self.shared_baselines + self.ambiguous_baselines

    def provenance(self) -> list[str]:
        """The data the verdicts rest on, for every format to name."""
        out = []
        d = self.support_data
        if d:
            out.append(f"AWS support data of {d.get('date') or 'unknown date'} ({d.get('origin')})")
        m = self.managed_bundle
        if m:
            n = len(m["policies"])
            out.append(f"{n} AWS managed polic{'y' if n == 1 else 'ies'} read from iamgate's bundled copy of "
                       f"{m['date']} (not in the managed-policy cache; `iamgate managed-policies fetch` refreshes "
                       f"it): {', '.join(p.rsplit('/', 1)[-1] for p in m['policies'])}")
        return out + list(self.history_notes)

    @cached_property
    def stable_ids(self) -> dict[str, str]:
        """Principal id -> file#id. Ids are qualified with their file only while another file uses
        the same one; keys compared across runs (diff mode, SARIF fingerprints) use this form, so a
        PR adding a second template with a `LambdaRole` leaves the first one's keys alone."""
        out = {}
        for r in self.results:
            p = r.principal
            file = p.location.file if p.location else ""
            raw = p.id[len(file) + 1:] if file and p.id.startswith(file + "#") else p.id
            out[p.id] = f"{file}#{raw}"
        return out

    def stable_keys(self, f: Finding) -> list[tuple]:
        ids = self.stable_ids
        return [(ids.get(k[0], k[0]), *k[1:]) for k in f.keys()]

    def is_new(self, f: Finding) -> bool:
        return self.new_keys is None or any(k in self.new_keys for k in f.keys())

    @cached_property  # asked for by every format several times; 36,000 findings on 1,000 roles
    def failing(self) -> tuple[Finding, ...]:
        if self.fail_on == "never":
            return ()
        return tuple(f for f in self.findings if severity_rank(f.severity) >= severity_rank(self.fail_on)
                     and self.is_new(f))

    @property
    def unreadable(self) -> int:
        """Inputs (files, usage sources) with at least one error."""
        return len({e.file for e in self.errors})

    @property
    def judged(self) -> int:
        """How many principals a usage baseline judged any granted action of. One whose every source
        failed, or whose unused-access analyzer has not analysed it yet, leaves it all no-usage-data."""
        return sum(1 for r in self.results if r.baseline is not None
                   and (r.baseline.working_sources or not r.baseline.sources)
                   and any(v in r.groups for v in (USED, UNUSED, UNOBSERVABLE, TOO_RECENT)))

    @property
    def nothing_judged(self) -> bool:
        return bool(self.results) and not self.judged

    @property
    def usage_required_unmet(self) -> bool:
        return (self.require_usage_data and self.nothing_judged) or \
            (self.require_all_deployments and bool(self.missing_deployments))

    def usage_required_reason(self) -> str:
        if self.require_all_deployments and self.missing_deployments:
            names = sorted({f"{name} ({account})" if account else name for _, name, account in self.missing_deployments})
            return ("usage data is required for every deployment (require-usage-data: all-deployments), and "
                    + ", ".join(names) + (" have" if len(names) > 1 else " has") + " no baseline")
        return "usage data is required (require-usage-data) and no principal has a usage baseline"

    @property
    def passed(self) -> bool:
        return not self.failing and not self.usage_required_unmet

    @property
    def decided(self) -> bool:
        """False when an input could not be read and no finding failed: the gate cannot say "pass"
        (nor "nothing judged": the unreadable input may be the usage)."""
        return bool(self.failing) or not self.errors

    @property
    def result(self) -> str:
        """pass | fail | error (could not decide: inputs unreadable)."""
        return "error" if not self.decided else "pass" if self.passed else "fail"

    @property
    def exit_code(self) -> int:
        return {"fail": 1, "error": 2, "pass": 0}[self.result]


def _unique_ids(principals: tuple[Principal, ...], unresolved: tuple[Unresolved, ...]):
    """Qualify ids that more than one file uses (two templates' `LambdaRole`) with the file."""
    files_by_id: dict[str, set] = {}
    for p in principals:
        files_by_id.setdefault(p.id, set()).add(p.location.file if p.location else "")
    clashing = {pid for pid, files in files_by_id.items() if len(files) > 1}
    if not clashing:
        return principals, unresolved

    def qualify(pid, file):
        return f"{file}#{pid}" if pid in clashing else pid

    new_p = tuple(replace(p, id=qualify(p.id, p.location.file if p.location else ""), aliases=p.aliases + (p.id,))
                  if p.id in clashing else p for p in principals)
    new_u = tuple(replace(u, principal_id=qualify(u.principal_id, u.location.file)) if u.principal_id else u
                  for u in unresolved)
    return new_p, new_u


def run_checks(results, unresolved, catalog: Catalog, config: Config, today: dt.date | None = None):
    from iamgate.checks import CHECKS, Analysis
    today = today or dt.date.today()
    analysis = Analysis(tuple(results), tuple(unresolved), catalog, config, today)
    findings: list[Finding] = []
    for name, cls in sorted(CHECKS.all().items()):
        if name in config.disable:
            continue
        for f in cls().run(analysis):
            if name in config.severity:
                f = replace(f, severity=config.severity[name])
            if f.check == "allowlist-expired" and config.path:
                f = replace(f, location=f.location or _config_location(config))
            findings.append(f)
    kept, suppressed = apply_allowlist(findings, results, config, today)
    kept.sort(key=lambda f: (-severity_rank(f.severity), f.principal, f.check, f.actions))
    return kept, suppressed


def _config_location(config: Config):
    from .model import Location
    return Location(config.path, None)


def collect_usage(baseline_paths: list[str], usage: list[UsageSource] | None = None) -> UsageResult:
    """Every usage source, read once: stored baselines plus any others (CloudTrail, ...)."""
    baselines, errors, notes = [], [], []
    for src in ([BaselineFiles(baseline_paths)] if baseline_paths else []) + list(usage or []):
        got = src.collect()
        baselines.extend(got.baselines)
        errors.extend(got.errors)
        notes.extend(got.notes)
    return UsageResult(tuple(baselines), tuple(errors), tuple(notes))


def evidence(principal: Principal, deployed: tuple[Deployment, ...], history: GrantHistory | None,
             config: Config) -> Evidence:
    """What the judge sees for one principal (design.md), with the config's time rules."""
    return Evidence(principal, deployed, history, config.min_observation_days, config.max_idle_days)


def analyse(paths: list[str], baseline_paths: list[str], config: Config, catalog: Catalog | None = None,
            usage: list[UsageSource] | None = None, options: ScanOptions | None = None,
            fail_on: str | None = None, today: dt.date | None = None, base: str | None = None,
            collected: UsageResult | None = None, history=None) -> Report:
    """`base` is the folder file paths are shown relative to (default: the working directory).
    `collected` is usage already read (diff mode analyses two trees against the same usage).
    `history`: principal id -> GrantHistory, or a `history.HistoryRequest` run once the principals and their
    baselines are known; a principal without one is judged without grant history."""
    catalog = catalog or load_catalog()
    options = options or ScanOptions(parameters=config.parameters, managed_policy_dir=config.managed_policies,
                                     exclude=tuple(config.exclude), trusted_modules=config.trusted_modules)
    workspace = Workspace(paths, options, base=base)
    scanned = scan(workspace)
    principals, unresolved = _unique_ids(scanned.principals, scanned.unresolved)
    got = collected if collected is not None else collect_usage(baseline_paths, usage)
    errors = list(scanned.errors) + list(got.errors)
    baselines, notes = list(got.baselines), list(got.notes)
    matcher = Matcher(baselines, config.principals)

    per_deployment: list[tuple[str, tuple[Unresolved, ...]]] = []

    def rescan(d):
        """The code resolved for named deployment `d` (issue 21)."""
        opts = replace(options, parameters={**options.parameters, **d.parameters}, var_files=d.var_files,
                       terraform_workspace=d.name)
        got = scan(Workspace(paths, opts, base=base))
        found, notes_d = _unique_ids(got.principals, got.unresolved)
        per_deployment.append((d.name, notes_d))
        return found, got.errors

    gathered = gather(principals, matcher, config, rescan if config.deployments else None, errors)
    errors += gathered.errors
    if per_deployment:
        unresolved = _unresolved_in_deployments(unresolved, per_deployment)
    obs = Observability(catalog, config.unobservable, support_mod.load(config.data_dir))
    histories, history_notes = grant_histories(history, gathered.principals, gathered.deployments, options,
                                               catalog)
    results = [judge(evidence(p, gathered.deployments.get(p.id, ()), histories.get(p.id), config), catalog, obs)
               for p in gathered.principals]
    findings, suppressed = run_checks(results, unresolved, catalog, config, today)
    notes += resource_notes(results)
    m = gathered.matching
    return Report(catalog=catalog.info(), results=tuple(results), findings=tuple(findings), errors=tuple(errors),
                  unresolved=tuple(unresolved), fail_on=fail_on or config.fail_on, matched_by=m.matched_by(),
                  unmatched_baselines=m.unmatched, suppressed=tuple(suppressed), notes=tuple(notes),
                  skipped=scanned.skipped, require_usage_data=config.require_usage_data,
                  roots=tuple(str(r) for r in workspace.readable),
                  support_data=obs.support.describe(), managed_bundle=bundle_use(principals),
                  history_notes=history_notes,
                  shared_baselines=tuple(x.text() for x in m.shared),
                  ambiguous_baselines=tuple(x.text() for x in m.ambiguous),
                  missing_deployments=_missing(gathered, results), require_all_deployments=config.require_all_deployments,
                  grant_differs=dict(gathered.differs))


def _unresolved_in_deployments(default: tuple[Unresolved, ...], per_deployment) -> tuple[Unresolved, ...]:
    """With named deployments, what is unresolved is what some deployment's resolution leaves unresolved: a
    part that every deployment resolves (`${Env}`, `var.env`) is known wherever the code is deployed."""
    def key(u: Unresolved) -> tuple:
        return (u.location, u.message, u.principal_id)
    seen: dict[tuple, list[str]] = {}
    for name, notes in per_deployment:
        for u in notes:
            seen.setdefault(key(u), []).append(name)
    kept = [u for u in default if key(u) in seen]
    known = {key(u) for u in default}
    extra: dict[tuple, Unresolved] = {}
    for name, notes in per_deployment:
        for u in notes:
            if key(u) not in known and key(u) not in extra:
                names = seen[key(u)]
                where = "every deployment" if len(names) == len(per_deployment) else " and ".join(names)
                extra[key(u)] = replace(u, message=f"{u.message} (in {where})")
    return tuple(kept) + tuple(extra.values())


def _missing(gathered: Gathered, results) -> tuple[tuple[str, str, str | None], ...]:
    """Named deployments without a baseline, for principals that grant anything to judge."""
    granting = {r.principal.id for r in results if r.granted or r.unknown}
    return tuple((pid, d.name, d.account) for pid, d in gathered.missing() if pid in granting)



def grant_histories(history, principals, deployments: Mapping, options, catalog) -> tuple[dict, tuple[str, ...]]:
    """(principal id -> GrantHistory for the judge, the report's notes on history): as given, or read from git
    by a `history.HistoryRequest`; a gap of the whole repository is said once, in the report."""
    if history is None:
        return {}, ()
    if not callable(history):
        return dict(history), ()
    from .history import hoist
    judged_with = {p.id: tuple(d.baseline for d in deployments.get(p.id, ()) if d.baseline is not None)
                   for p in principals}
    return hoist(history(principals, judged_with, options, catalog))
