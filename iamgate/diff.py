"""Diff-only mode: the same analysis on the base commit's tree, read from git without network.

The base tree is written from `git ls-tree`/`git cat-file` into a temporary folder (no
checkout, so no filters, hooks or attributes run, and the clone's state is untouched). A
finding is new when its key is absent on the base. Grants the PR adds and has never been
seen used, and grants it removes although the baseline shows them in use, are listed too.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

from .errors import UsageError
from .model import Location, PrincipalResult, severity_rank
from .repo import repo_relative, repo_root

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_NO_LAZY_FETCH": "1", "GIT_OPTIONAL_LOCKS": "0"}
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class GrantChange:
    """Actions of one principal that a PR grants anew, or takes away although they are used."""
    principal: str
    actions: tuple[str, ...]
    severity: str  # the risk, by the rule that ranks findings (escalation, exposure, exfiltration, access level)
    location: Location | None  # where it is now (for a removal: the principal's location)
    base_location: Location | None = None
    justified: tuple[str, ...] = ()  # of the actions, those the baseline saw denied: the principal asked for them
    denied_calls: int = 0


@dataclass(frozen=True)
class ChangedLines:
    principal: str
    file: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.file}:{self.start}" + (f"-{self.end}" if self.end != self.start else "")


@dataclass(frozen=True)
class BaseComparison:
    rev: str  # as asked for
    commit: str  # the merge base the analysis ran on
    new_keys: frozenset
    new_grants: tuple[GrantChange, ...] = ()  # granted only by the PR, never observed
    removed_used: tuple[GrantChange, ...] = ()  # removed by the PR although the baseline shows them used
    changed: tuple[ChangedLines, ...] = ()  # policy lines the PR changed, per principal
    new_principals: tuple[str, ...] = field(default=())


# -- git ---------------------------------------------------------------------

def git(args: list[str], cwd: str | Path, check: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **GIT_ENV}
    try:
        return subprocess.run(["git", "--literal-pathspecs", *args], cwd=cwd, env=env, capture_output=True,
                              text=text, check=check)
    except FileNotFoundError:
        raise UsageError("--diff-base needs git on PATH") from None
    except subprocess.CalledProcessError as e:
        err = e.stderr if isinstance(e.stderr, str) else (e.stderr or b"").decode("utf-8", "replace")
        raise UsageError(f"git {' '.join(args[:2])}: {err.strip() or 'failed'}") from None


def resolve_commit(rev: str, root: Path) -> str:
    got = git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], root, check=False)
    if got.returncode != 0:
        raise UsageError(f"--diff-base {rev}: no such commit in this clone (a shallow clone lacks the base: "
                         "check out with fetch-depth: 0)")
    commit = got.stdout.strip()
    merge_base = git(["merge-base", commit, "HEAD"], root, check=False)
    return merge_base.stdout.strip() if merge_base.returncode == 0 and merge_base.stdout.strip() else commit


def materialise(root: Path, commit: str, pathspecs: list[str], dest: Path) -> int:
    """Write the regular files of `commit` under `pathspecs` into `dest`; returns how many."""
    listing = git(["ls-tree", "-r", "-z", "--full-tree", commit, "--", *pathspecs], root, text=False).stdout
    entries = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        mode, otype, oid = meta.split(b" ")
        if otype == b"blob" and mode in (b"100644", b"100755"):  # no symlinks or submodules
            entries.append((oid.decode(), name.decode("utf-8", "surrogateescape")))
    if not entries:
        return 0
    proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=root, env={**os.environ, **GIT_ENV},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def feed():
        try:
            proc.stdin.write("".join(oid + "\n" for oid, _ in entries).encode())
        finally:
            proc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    dest_resolved = dest.resolve()
    for _, name in entries:
        header = proc.stdout.readline().split()
        size = int(header[2])
        data = proc.stdout.read(size)
        proc.stdout.read(1)  # the newline after each object
        target = (dest / name).resolve()
        if dest_resolved not in target.parents:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    writer.join()
    proc.wait()
    return len(entries)


def _diff_path(text: str) -> str:
    """A path as `git diff` prints it: a tab after names with spaces, C-style quotes for odd bytes."""
    text = text.rstrip("\t")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        raw = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        return raw.encode("latin-1").decode("utf-8", "replace")
    return text


def changed_ranges(root: Path, commit: str, pathspecs: list[str]) -> dict[str, list[tuple[int, int]]]:
    """Line ranges of the working tree that differ from `commit`, per repo-relative file."""
    out = git(["-c", "core.quotePath=false", "diff", "-U0", "--no-color", "--no-ext-diff", "--no-textconv",
               "--no-renames", commit, "--", *pathspecs], root, check=False).stdout
    ranges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    current = None
    for line in out.splitlines():
        if line.startswith("+++ "):
            path = _diff_path(line[4:])
            current = path[2:] if path.startswith("b/") else None
        elif current and (m := _HUNK.match(line)):
            start, count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
            if count:
                ranges[current].append((start, start + count - 1))
    return dict(ranges)


# -- comparison ----------------------------------------------------------------

def compare_with_base(report, rev: str, paths: list[str], run_on: Callable, confined: bool = False) -> object:
    """`report` with `new_keys` and `comparison` set from the same analysis of `rev`'s tree.
    `confined`: the head run was confined to a workspace; the base's run is confined to its tree
    (`run_on(..., confine=DIR)`)."""
    root = repo_root()
    if root is None or git(["rev-parse", "--show-toplevel"], os.getcwd(), check=False).returncode != 0:
        raise UsageError("--diff-base needs a git repository")
    commit = resolve_commit(rev, root)
    cwd = Path(os.getcwd()).resolve()
    pathspecs, outside = [], []
    for p in paths:
        try:
            pathspecs.append(Path(os.path.normpath(cwd / p)).relative_to(root).as_posix() or ".")
        except ValueError:
            outside.append(p)  # outside the repository: the same on both sides
    with tempfile.TemporaryDirectory(prefix="iamgate-base-") as tmp:
        base_root = Path(tmp).resolve()
        materialise(root, commit, pathspecs, base_root)
        base_cwd = base_root / cwd.relative_to(root)
        base_cwd.mkdir(parents=True, exist_ok=True)
        base_paths = [str(base_root / s) for s in pathspecs if (base_root / s).exists()] + outside
        base_report = run_on(base_paths, base=str(base_cwd), **({"confine": str(base_root)} if confined else {}))
    comparison = compare_reports(report, base_report, rev, commit,
                                 changed_ranges(root, commit, pathspecs) if pathspecs else {}, root)
    return replace(report, new_keys=comparison.new_keys, comparison=comparison)


def compare_reports(head, base, rev: str, commit: str, ranges: Mapping[str, list[tuple[int, int]]],
                    root: Path | None = None) -> BaseComparison:
    from .judge.severity import by_access_level
    from .reference.catalog import load_catalog
    catalog = load_catalog()
    # one risk model: a new grant's severity is that of the head's finding about it (the rule that ranks
    # unused and new actions alike), else its access level (a grant no check reports, e.g. allowlisted)
    risk: dict[tuple[str, str], str] = {}
    for f in head.findings:
        for a in f.actions:
            key = (f.principal, a)
            if key not in risk or severity_rank(f.severity) > severity_rank(risk[key]):
                risk[key] = f.severity
    base_canon, head_canon = base.stable_ids, head.stable_ids
    base_keys = {k for f in base.findings + base.suppressed for k in base.stable_keys(f)}
    new_keys = frozenset(k for f in head.findings for k, stable in zip(f.keys(), head.stable_keys(f))
                         if stable not in base_keys)
    base_results = {base_canon.get(r.principal.id, r.principal.id): r for r in base.results}
    new_grants, removed = [], []
    for r in head.results:
        b = base_results.get(head_canon.get(r.principal.id, r.principal.id))
        denied = r.baseline.denied if r.baseline else {}
        fresh = r.granted - (b.granted if b else frozenset()) - set(r.actions("used"))
        for loc, acts in r.by_first_location(fresh).items():
            by_risk: dict[str, list[str]] = {}
            for a in catalog.sort(acts):
                by_risk.setdefault(risk.get((r.principal.id, a)) or by_access_level(catalog, a), []).append(a)
            for sev, actions in by_risk.items():
                justified = tuple(a for a in actions if a in denied)
                calls = sum(int(denied[a].get("count") or 0) for a in justified)
                new_grants.append(GrantChange(r.principal.id, tuple(actions), sev, loc or r.principal.location,
                                              justified=justified, denied_calls=calls))
        if b is not None:
            gone = set(b.actions("used")) - r.granted
            removed += [GrantChange(r.principal.id, tuple(a), "high", r.principal.location, loc)
                        for loc, a in b.by_first_location(gone).items()]
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    new_grants.sort(key=lambda g: (order[g.severity], g.principal, g.actions))
    return BaseComparison(rev=rev, commit=commit, new_keys=new_keys, new_grants=tuple(new_grants),
                          removed_used=tuple(sorted(removed, key=lambda g: (g.principal, g.actions))),
                          changed=attribute_changes(head.results, ranges, root),
                          new_principals=tuple(sorted(r.principal.id for r in head.results
                                                     if head_canon.get(r.principal.id, r.principal.id)
                                                     not in base_results)))


def attribute_changes(results: tuple[PrincipalResult, ...], ranges: Mapping[str, list[tuple[int, int]]],
                      root: Path | None = None) -> tuple[ChangedLines, ...]:
    """Give each changed range to the principal whose policy statement starts at or before it."""
    starts: dict[str, list[tuple[int, str]]] = defaultdict(list)  # repo-relative file -> (line, principal)
    shown: dict[str, str] = {}  # repo-relative file -> the file as the report shows it
    for r in results:
        locs = [r.principal.location] + [s.location for p in r.principal.policies for s in p.statements] + \
               [p.location for p in r.principal.policies]
        for loc in locs:
            if loc and loc.line:
                rel = repo_relative(loc.file, root)
                starts[rel].append((loc.line, r.principal.id))
                shown[rel] = loc.file
    out = []
    for file, spans in ranges.items():
        candidates = sorted(set(starts.get(file, ())))
        if not candidates:
            continue
        for start, end in spans:
            owners = [pid for line, pid in candidates if line <= end]
            if owners:
                out.append(ChangedLines(owners[-1], shown[file], start, end))
    return tuple(out)
