"""Grant history from git (issue 20): when each granted action of a principal appeared, continuously, on
the first-parent line of HEAD, and which of them the base being compared lacks.

"The grant as of revision R" is the same analysis as today's on R's files: the files a principal comes from
are written from `git ls-tree`/`git cat-file` into a temporary folder (as the diff mode does: no checkout,
no filters or hooks, regular files only, nothing written outside the folder) and scanned with today's
sources and options, confined to that folder.

Cost, bounded:
- one `git log --first-parent -M --name-status` for the whole repository, read only as far back as the
  oldest date that matters (a baseline's window start, less `deploy-lag`) and the diff base;
- a principal's *unit* is the files its grant is read from (a template; for Terraform, the scanned folder
  holding its module); principals of one unit share every evaluation;
- per unit, only the first-parent commits that touched its files count. From the head, probes go back 1, 2,
  4, 8, ... of them; an action missing at a probe is placed by bisecting between the last two probes. So a
  unit with k touching commits since that date costs O(log k) evaluations per change of its grant, and each
  (revision, unit) is evaluated once. A grant removed and re-added restarts its age where a probe sees the
  gap (bisection's limit: a removal undone between two probes is not seen).
- the grant before that date is evaluated once, at the last first-parent commit before it: what it
  grants is dated "at least since" that commit, which the judge treats as before the window.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

from .diff import GIT_ENV, git, materialise, resolve_commit
from .errors import UsageError
from .model import GrantHistory, Principal
from .repo import repo_relative

WHY_TO_FETCH = ("; each grant is judged as if granted before the baseline's window (check out with "
                "fetch-depth: 0 so iamgate can read when each action was granted)")
NOT_GIT = "grant history unknown: not inside a git repository" + WHY_TO_FETCH
SHALLOW = "grant history unknown: a shallow clone" + WHY_TO_FETCH
NO_COMMITS = "grant history unknown: the repository has no commits yet" + WHY_TO_FETCH
OUTSIDE = ("grant history unknown: {file} comes from outside the repository's history (a downloaded module, "
           "the managed-policy cache or an ignored file)" + WHY_TO_FETCH)
GIT_FAILED = "grant history unknown: git failed ({error})" + WHY_TO_FETCH
DIRECTORY_UNITS = {".tf", ".hcl", ".tfvars"}  # read with their folder: variables and modules live beside them


@dataclass
class Commit:
    sha: str
    ts: int  # committer time: when it landed on the first-parent line
    changed: frozenset = frozenset()  # repo paths it changed (both names of a rename)
    renames: Mapping[str, str] = field(default_factory=dict)  # new name -> old name


@dataclass(frozen=True)
class Unit:
    """Files (or folders) one or more principals are read from, as repo paths at the head."""
    paths: tuple[str, ...]
    folders: frozenset = frozenset()

    def touched_by(self, commit: Commit, names: Mapping[str, str]) -> bool:
        for p in self.paths:
            name = names.get(p, p)
            if p in self.folders:
                prefix = name.rstrip("/") + "/"
                if commit.changed and name == "." or any(c == name or c.startswith(prefix) for c in commit.changed):
                    return True
            elif name in commit.changed:
                return True
        return False


@dataclass
class Step:
    """One point of a unit's line: the grant after `commit` (None: the working tree), its file names then."""
    commit: str | None
    ts: int
    names: Mapping[str, str]  # head path -> path at that commit


def day_of(ts: int, lag_days: int) -> str:
    return (dt.datetime.fromtimestamp(ts, dt.timezone.utc) + dt.timedelta(days=lag_days)).date().isoformat()


def raw_id(p: Principal) -> str:
    """The principal's id without the `file#` qualification that clashing ids get."""
    file = p.location.file if p.location else ""
    return p.id[len(file) + 1:] if file and p.id.startswith(file + "#") else p.id


class History:
    """The first-parent line of HEAD in the repository at `root`, and the grant at its revisions."""

    def __init__(self, root: Path, cwd: Path, evaluate: Callable[[list[str], Path, Path], list[tuple]],
                 now: dt.datetime | None = None):
        self.root, self.cwd = root, cwd
        self.evaluate_tree = evaluate  # (paths, base folder, confine folder) -> [(Principal, granted actions)]
        self.now = int((now or dt.datetime.now(dt.timezone.utc)).timestamp())
        self.commits: list[Commit] = []  # newest first
        self.index: dict[str, int] = {}
        self._log: Iterable | None = None
        self._proc: subprocess.Popen | None = None
        self._cache: dict[tuple, dict] = {}
        self.evaluations = 0

    # -- the first-parent line, read lazily ---------------------------------------------------------
    def _stream(self):
        cmd = ["git", "--literal-pathspecs", "-c", "core.quotePath=false", "log", "--first-parent", "--root",
               "-M", "--diff-merges=first-parent", "--name-status", "-z", "--format=%x01%H %ct", "HEAD", "--"]
        self._proc = subprocess.Popen(cmd, cwd=self.root, env={**os.environ, **GIT_ENV}, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL)
        buf = b""
        while True:
            chunk = self._proc.stdout.read(65536)
            if not chunk:
                break
            buf += chunk
            *records, buf = buf.split(b"\x01")
            for rec in records:
                if rec:
                    yield self._parse(rec)
        if buf:
            yield self._parse(buf)
        self._proc.wait()

    @staticmethod
    def _parse(rec: bytes) -> Commit:
        head, _, rest = rec.partition(b"\0")
        sha, ts = head.decode().split()
        tokens = [t.decode("utf-8", "surrogateescape") for t in rest.lstrip(b"\n").split(b"\0")]
        changed, renames, i = set(), {}, 0
        while i < len(tokens):
            status = tokens[i].strip()
            if not status:
                i += 1
                continue
            if status[0] in "RC" and i + 2 < len(tokens):
                old, new = tokens[i + 1], tokens[i + 2]
                changed.update((old, new))
                if status[0] == "R":
                    renames[new] = old
                i += 3
            else:
                if i + 1 < len(tokens):
                    changed.add(tokens[i + 1])
                i += 2
        return Commit(sha, int(ts), frozenset(changed), renames)

    def read_until(self, ts: int | None = None, sha: str | None = None) -> None:
        """Read the line back to the first commit older than `ts` (None: all of it), or to `sha`."""
        if self._log is None:
            self._log = self._stream()

        def done() -> bool:
            if sha is not None:
                return sha in self.index
            return ts is not None and bool(self.commits) and self.commits[-1].ts < ts
        while not done():
            c = next(self._log, None)
            if c is None:
                self._log = iter(())
                return
            self.index[c.sha] = len(self.commits)
            self.commits.append(c)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    # -- a unit's line --------------------------------------------------------------------------------
    def line(self, unit: Unit, floor: int | None, dirty: bool) -> list[Step]:
        """Newest first: the working tree if it differs, then each commit that touched the unit after
        `floor`, then the last commit at or before `floor` (None: back to the unit's first commit)."""
        self.read_until(floor)
        names = {p: p for p in unit.paths}
        steps = [Step(None, self.now, dict(names))] if dirty else []
        for c in self.commits:
            if floor is not None and c.ts <= floor:
                steps.append(Step(c.sha, c.ts, dict(names)))
                break
            if unit.touched_by(c, names):
                steps.append(Step(c.sha, c.ts, dict(names)))
            for p in unit.paths:  # names before this commit
                if p not in unit.folders and names[p] in c.renames:
                    names[p] = c.renames[names[p]]
        return steps

    def names_at(self, unit: Unit, sha: str) -> dict[str, str]:
        """The unit's file names at `sha` (following renames where it is on the first-parent line)."""
        self.read_until(sha=sha)
        names = {p: p for p in unit.paths}
        for c in self.commits:
            if c.sha == sha:
                break
            for p in unit.paths:
                if p not in unit.folders and names[p] in c.renames:
                    names[p] = c.renames[names[p]]
        return names

    # -- the grant at a revision ----------------------------------------------------------------------
    def grant(self, unit: Unit, sha: str, names: Mapping[str, str]) -> dict[tuple, frozenset]:
        """(file at head, raw id) -> granted actions, for the principals of the unit's files at `sha`."""
        key = (sha, tuple(sorted(names.items())))
        if key in self._cache:
            return self._cache[key]
        self.evaluations += 1
        back = {v: k for k, v in names.items()}  # name at sha -> name at head
        out: dict[tuple, frozenset] = {}
        with tempfile.TemporaryDirectory(prefix="iamgate-history-") as tmp:
            tree = Path(tmp).resolve()
            (tree / ".git").mkdir()  # the repository's stand-in: local modules inside it may be read
            materialise(self.root, sha, sorted(set(names.values())), tree)
            try:
                base = tree / self.cwd.relative_to(self.root)
            except ValueError:
                base = tree
            base.mkdir(parents=True, exist_ok=True)
            paths = [str(tree / n) for n in sorted(set(names.values())) if (tree / n).exists()]
            if paths:
                for p, acts in self.evaluate_tree(paths, base, tree):
                    file = p.location.file if p.location else ""
                    rel = Path(os.path.normpath(base / file)).relative_to(tree).as_posix() if file else ""
                    head_file = _head_name(rel, back, unit.folders)
                    out[(head_file, _head_id(raw_id(p), file, head_file, base, self.cwd, self.root))] = acts
        self._cache[key] = out
        return out


def _head_name(rel: str, back: Mapping[str, str], folders) -> str:
    if rel in back:
        return back[rel]
    for old, new in back.items():
        if new in folders and rel.startswith(old.rstrip("/") + "/"):
            return new.rstrip("/") + "/" + rel[len(old.rstrip("/")) + 1:]
    return rel


def _head_id(pid: str, shown: str, head_file: str, base: Path, cwd: Path, root: Path) -> str:
    """An id that names its file (a policy document's) written with the file's name at the head."""
    if shown and pid == shown:
        return os.path.relpath(root / head_file, cwd) if head_file else pid
    return pid


def _key(p: Principal, root: Path) -> tuple[str, str]:
    return (repo_relative(p.location.file, root) if p.location else "", raw_id(p))


def principal_files(p: Principal) -> list[str]:
    locs = [p.location] + [pol.location for pol in p.policies] + [s.location for pol in p.policies
                                                                    for s in pol.statements]
    return list(dict.fromkeys(loc.file for loc in locs if loc is not None and loc.file))


def trace(history: History, unit: Unit, floor: int | None, dirty: bool, head: Mapping[tuple, frozenset],
          exact_after: int | None = None) -> dict[tuple, dict[int, frozenset]]:
    """Per principal key: granted-since time -> the actions granted continuously since then. Every change
    after `exact_after` is evaluated; before it, probes gallop and bisect."""
    steps = history.line(unit, floor, dirty)
    result: dict[tuple, dict[int, set]] = {k: {} for k in head}
    if not steps:  # nothing in history touched it and it is clean: it cannot be at the head
        return {k: {history.now: v} for k, v in head.items()}
    states: dict[int, dict] = {0: dict(head)}

    def state(i: int) -> dict:
        if i not in states:
            s = steps[i]
            states[i] = history.grant(unit, s.commit, s.names) if s.commit else dict(head)
        return states[i]

    def absent(i: int, key, actions: frozenset) -> frozenset:
        return actions - state(i).get(key, frozenset())

    def place(key, actions: frozenset, lo: int, hi: int) -> None:
        """`actions` are granted at step lo, not at step hi (older): bisect for the step that added them."""
        while actions:
            if hi - lo <= 1:
                result[key].setdefault(steps[lo].ts, set()).update(actions)
                return
            mid = (lo + hi) // 2
            gone = absent(mid, key, actions)
            if gone:
                place(key, gone, lo, mid)
            actions, lo = actions - gone, mid

    last = len(steps) - 1
    for key, granted in head.items():
        pending, lo, step = frozenset(granted), 0, 1
        while pending:
            if lo >= last:
                # granted at the oldest step: since it (the unit's first commit, or "at least since" the floor)
                result[key].setdefault(steps[last].ts, set()).update(pending)
                break
            i = lo + 1
            if exact_after is None or steps[i].ts <= exact_after:
                i, step = min(lo + step, last), step * 2
            gone = absent(i, key, pending)
            if gone:
                place(key, gone, lo, i)
            pending, lo = pending - gone, i
    return {k: {ts: frozenset(a) for ts, a in v.items()} for k, v in result.items()}


def _git_state(root: Path, pathspecs: list[str]) -> tuple[set[str], set[str]]:
    """(changed in the working tree or index, or untracked; ignored) repo paths under `pathspecs`."""
    status = git(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--", *pathspecs],
                 root, text=False).stdout
    changed = {e[3:].decode("utf-8", "surrogateescape") for e in status.split(b"\0") if len(e) > 3}
    listed = git(["ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--full-name", "--",
                  *pathspecs], root, text=False).stdout
    return changed, {p.decode("utf-8", "surrogateescape") for p in listed.split(b"\0") if p}


def _root_of(cwd: Path) -> tuple[Path | None, str]:
    """The repository's work tree, or None and why there is no history."""
    try:
        top = git(["rev-parse", "--show-toplevel"], cwd, check=False)
    except UsageError:
        return None, NOT_GIT
    if top.returncode != 0 or not top.stdout.strip():
        return None, NOT_GIT
    root = Path(top.stdout.strip()).resolve()
    if git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], root, check=False).returncode != 0:
        return None, NO_COMMITS
    if git(["rev-parse", "--is-shallow-repository"], root, check=False).stdout.strip() == "true":
        return None, SHALLOW
    return root, ""


def evaluator(options, catalog) -> Callable[[list[str], Path, Path], list[tuple]]:
    """Today's sources and options on a past tree (confined to it) -> [(principal, granted actions)]."""
    from .judge import grants as grants_mod
    from .sources import Workspace, scan

    def run(paths: list[str], base: Path, tree: Path) -> list[tuple]:
        got = scan(Workspace(paths, replace(options, workspace=str(tree)), base=str(base)))
        return [(p, grants_mod.compute(p, catalog).actions) for p in got.principals]
    return run


def _units(principals: list[Principal], root: Path, scanned: list[str]) -> tuple[dict, dict]:
    """principal id -> its Unit, or -> the first of its files outside the repository's history."""
    units, outside = {}, {}
    for p in principals:
        paths, folders = [], set()
        for file in principal_files(p):
            rel = repo_relative(file, root)
            if Path(rel).is_absolute() or rel.startswith("../") or ".terraform" in Path(rel).parts:
                outside[p.id] = file
                break
            if Path(rel).suffix in DIRECTORY_UNITS:
                above = [s for s in scanned if s == "." or rel == s or rel.startswith(s.rstrip("/") + "/")]
                folder = min(above, key=len) if above and min(above, key=len) != rel else str(Path(rel).parent)
                paths.append(folder)
                folders.add(folder)
            else:
                paths.append(rel)
        if p.id not in outside and paths:
            units[p.id] = Unit(tuple(sorted(set(paths))), frozenset(folders))
    return units, outside


def _earliest(days: list[dt.date | None], lag: int) -> int | None:
    """The earliest of `days` as a commit time (less the deploy lag); None when any is None."""
    if not days or any(d is None for d in days):
        return None
    return int(dt.datetime.combine(min(days), dt.time(), dt.timezone.utc).timestamp()) - lag


def grant_histories(principals: Iterable[Principal], granted: Mapping[str, frozenset], evaluate: Callable,
                    scanned: list[str], floors: Mapping[str, dt.date | None] | None = None,
                    exact_since: Mapping[str, dt.date | None] | None = None, diff_base: str | None = None,
                    deploy_lag_days: int = 0, now: dt.datetime | None = None,
                    cwd: str | Path | None = None, outside_dirs: Iterable[str] = ()) -> dict[str, GrantHistory]:
    """principal id -> its GrantHistory. `granted`: principal id -> the actions granted at the head (the
    working tree). `floors`: principal id -> the earliest day whose exact grant date matters (a baseline's
    first watched day; None or absent: the whole history). `exact_since`: principal id -> the day after
    which every change of its grant is evaluated (a baseline's end less `min-observation`: where a grant's age
    decides too_recent or unused); before it, changes are found by bisection. `scanned`: the paths as given.
    `outside_dirs`: folders whose files come from outside the repository (the managed-policy cache)."""
    principals = list(principals)
    cwd = Path(cwd or os.getcwd()).resolve()
    try:
        root, why = _root_of(cwd)
    except UsageError as e:
        root, why = None, GIT_FAILED.format(error=str(e))
    if root is None:
        return {p.id: GrantHistory(False, why) for p in principals}
    pathspecs = []
    for s in scanned:
        try:
            pathspecs.append(Path(os.path.normpath(cwd / s)).relative_to(root).as_posix() or ".")
        except ValueError:
            pass
    units, outside = _units(principals, root, pathspecs)
    fences = [Path(os.path.normpath(cwd / d)) for d in outside_dirs if d]
    for p in principals:
        for file in principal_files(p):
            real = Path(os.path.normpath(cwd / file))
            if any(real == f or f in real.parents for f in fences):
                outside.setdefault(p.id, file)
                units.pop(p.id, None)
    history = History(root, cwd, evaluate, now)
    out: dict[str, GrantHistory] = {p.id: GrantHistory(False, OUTSIDE.format(file=outside[p.id]))
                                    for p in principals if p.id in outside}
    try:
        all_paths = sorted({path for u in units.values() for path in u.paths})
        changed, ignored = _git_state(root, all_paths) if all_paths else (set(), set())
        base = resolve_commit(diff_base, root) if diff_base else None
        by_unit: dict[Unit, list[Principal]] = {}
        for p in principals:
            if p.id in units:
                by_unit.setdefault(units[p.id], []).append(p)
        lag = deploy_lag_days * 86400
        for unit, members in by_unit.items():
            bad = next((f for f in unit.paths if f in ignored), None)
            if bad is not None:
                out.update({p.id: GrantHistory(False, OUTSIDE.format(file=bad)) for p in members})
                continue
            dirty = any(c == f or (f in unit.folders and (f == "." or c.startswith(f.rstrip("/") + "/")))
                        for f in unit.paths for c in changed)
            head = {_key(p, root): frozenset(granted.get(p.id, frozenset())) for p in members}
            floor = _earliest([(floors or {}).get(p.id) for p in members], lag)
            exact = _earliest([(exact_since or {}).get(p.id) for p in members], lag)
            traced = trace(history, unit, floor, dirty, head, exact)
            at_base = history.grant(unit, base, history.names_at(unit, base)) if base else None
            for p in members:
                key = _key(p, root)
                since = sorted(((day_of(ts, deploy_lag_days), acts) for ts, acts in traced.get(key, {}).items()),
                               reverse=True)
                merged: dict[str, frozenset] = {}
                for d, acts in since:
                    merged[d] = merged.get(d, frozenset()) | acts
                new = head[key] - at_base.get(key, frozenset()) if at_base is not None else frozenset()
                out[p.id] = GrantHistory(True, "", frozenset(new), tuple(sorted(merged.items(), reverse=True)))
    except UsageError as e:
        why = GIT_FAILED.format(error=str(e))
        out.update({p.id: GrantHistory(False, why) for p in principals if p.id not in out})
    finally:
        history.close()
    for p in principals:  # read from nowhere the history can see (no file): unknown
        out.setdefault(p.id, GrantHistory(False, OUTSIDE.format(file=p.location.file if p.location else p.id)))
    return out
