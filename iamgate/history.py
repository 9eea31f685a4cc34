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
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping

from .diff import git, resolve_commit
from .errors import UsageError
from .gitlog import FirstParentLog, TreeReader, Unit
from .model import GrantHistory, Principal
from .repo import repo_relative

WHY_TO_FETCH = ("; each grant is judged as if granted before the baseline's window (check out with "
                "fetch-depth: 0 so iamgate can read when each action was granted)")
NOT_GIT = "grant history unknown: not inside a git repository" + WHY_TO_FETCH
SHALLOW = "grant history unknown: a shallow clone" + WHY_TO_FETCH
NO_COMMITS = "grant history unknown: the repository has no commits yet" + WHY_TO_FETCH
OUTSIDE = ("grant history unknown: {file} comes from outside the repository's history (a downloaded module, "
           "the managed-policy cache or an ignored file)" + WHY_TO_FETCH)
NOT_READ = ("grant history not read (--no-history); each grant is judged as if granted before the baseline's "
            "window")
GIT_FAILED = "grant history unknown: git failed ({error})" + WHY_TO_FETCH
DIRECTORY_UNITS = {".tf", ".hcl", ".tfvars"}  # read with their folder: variables and modules live beside them


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
        self.log = FirstParentLog(root)
        from .sources import SKIP_DIRS
        self.trees = TreeReader(root, frozenset(SKIP_DIRS))
        self._work: tempfile.TemporaryDirectory | None = None
        self._cache: dict[tuple, dict] = {}
        self.evaluations = 0

    def close(self) -> None:
        self.log.close()
        self.trees.close()
        if self._work is not None:
            self._work.cleanup()

    def line(self, unit: Unit, floor: int | None, dirty: bool) -> list[Step]:
        """Newest first: the working tree if it differs, then each commit that touched the unit after
        `floor`, then the last commit at or before `floor` (None: back to the unit's first commit)."""
        self.log.read_until(floor)
        names = {p: p for p in unit.paths}
        steps = [Step(None, self.now, dict(names))] if dirty else []
        for c in self.log.commits:
            if floor is not None and c.ts <= floor:
                steps.append(Step(c.sha, c.ts, dict(names)))
                break
            if unit.touched_by(c, names):
                steps.append(Step(c.sha, c.ts, dict(names)))
            names = unit.before(c, names)
        return steps

    def names_at(self, unit: Unit, sha: str) -> dict[str, str]:
        """The unit's file names at `sha` (following renames where it is on the first-parent line)."""
        self.log.read_until(sha=sha)
        names = {p: p for p in unit.paths}
        if sha in self.log.index:
            for c in self.log.commits[:self.log.index[sha]]:
                names = unit.before(c, names)
        return names

    def grant(self, unit: Unit, sha: str, names: Mapping[str, str]) -> dict[tuple, frozenset]:
        """(file at head, raw id) -> granted actions, for the principals of the unit's files at `sha`."""
        key = (sha, tuple(sorted(names.items())))
        if key in self._cache:
            return self._cache[key]
        self.evaluations += 1
        if self._work is None:
            self._work = tempfile.TemporaryDirectory(prefix="iamgate-history-")
            (Path(self._work.name) / ".git").mkdir()  # the repository's stand-in: its local modules may be read
        tree = Path(self._work.name).resolve()
        written: list[Path] = []
        out: dict[tuple, frozenset] = {}
        try:
            for name in sorted(set(names.values())):
                for rel, data in self.trees.files(sha, name):
                    target = (tree / rel).resolve()
                    if tree in target.parents and not target.exists():  # nothing written outside the tree
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(data)
                        written.append(target)
            base = tree / self.cwd.relative_to(self.root) if self.root in (self.cwd, *self.cwd.parents) else tree
            base.mkdir(parents=True, exist_ok=True)
            paths = [str(tree / n) for n in sorted(set(names.values())) if (tree / n).exists()]
            back = {v: k for k, v in names.items()}  # name at sha -> name at head
            for p, acts in self.evaluate_tree(paths, base, tree) if paths else ():
                file = p.location.file if p.location else ""
                rel = Path(os.path.normpath(base / file)).relative_to(tree).as_posix() if file else ""
                head_file = _head_name(rel, back, unit.folders)
                out[(head_file, _head_id(raw_id(p), file, head_file, self.cwd, self.root))] = acts
        finally:
            for f in written:
                f.unlink()
        self._cache[key] = out
        return out


def _head_name(rel: str, back: Mapping[str, str], folders) -> str:
    if rel in back:
        return back[rel]
    for old, new in back.items():
        if new in folders and rel.startswith(old.rstrip("/") + "/"):
            return new.rstrip("/") + "/" + rel[len(old.rstrip("/")) + 1:]
    return rel


def _head_id(pid: str, shown: str, head_file: str, cwd: Path, root: Path) -> str:
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
    quiet = ["-c", "core.fsmonitor=false"]  # no hook of the clone's configuration runs
    status = git([*quiet, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--",
                  *pathspecs], root, text=False).stdout
    changed = {e[3:].decode("utf-8", "surrogateescape") for e in status.split(b"\0") if len(e) > 3}
    listed = git([*quiet, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--full-name", "--",
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
        return root, SHALLOW  # the diff base may still be here; the line behind it is not
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
                found = [str(Path(rel).parent)]  # its module: variables and .tfvars live beside it
                if p.id.startswith("module."):  # a module's instance: its values come from the scanned caller
                    found += [min((s for s in scanned if s == "." or rel.startswith(s.rstrip("/") + "/")), key=len,
                                  default=found[0])]
                paths += found
                folders.update(found)
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
                    cwd: str | Path | None = None, outside_dirs: Iterable[str] = (),
                    walk: bool = True) -> dict[str, GrantHistory]:
    """principal id -> its GrantHistory. `granted`: principal id -> the actions granted at the head (the
    working tree). `floors`: principal id -> the earliest day whose exact grant date matters (a baseline's
    first watched day; None or absent: the whole history). `exact_since`: principal id -> the day after
    which every change of its grant is evaluated (a baseline's end less `min-observation`: where a grant's age
    decides too_recent or unused); before it, changes are found by bisection. `scanned`: the paths as given.
    `outside_dirs`: folders whose files come from outside the repository (the managed-policy cache).
    `walk` False (`--no-history`): nothing read from git, neither grant days nor what `diff_base` lacks."""
    principals = list(principals)
    if not walk:
        return {p.id: GrantHistory(False, NOT_READ) for p in principals}
    cwd = Path(cwd or os.getcwd()).resolve()
    try:
        root, why = _root_of(cwd)
    except UsageError as e:
        root, why = None, GIT_FAILED.format(error=str(e))
    if root is None or (why and not diff_base):
        return {p.id: GrantHistory(False, why) for p in principals}
    if why:
        walk = False
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
            traced = trace(history, unit, floor, dirty, head, exact) if walk else {}
            at_base = history.grant(unit, base, history.names_at(unit, base)) if base else None
            for p in members:
                key = _key(p, root)
                since = sorted(((day_of(ts, deploy_lag_days), acts) for ts, acts in traced.get(key, {}).items()),
                               reverse=True)
                merged: dict[str, frozenset] = {}
                for d, acts in since:
                    merged[d] = merged.get(d, frozenset()) | acts
                new = head[key] - at_base.get(key, frozenset()) if at_base is not None else frozenset()
                out[p.id] = GrantHistory(walk, "" if walk else why or NOT_READ, frozenset(new),
                                         tuple(sorted(merged.items(), reverse=True)))
    except UsageError as e:
        why = GIT_FAILED.format(error=str(e))
        out.update({p.id: GrantHistory(False, why) for p in principals if p.id not in out})
    finally:
        history.close()
    for p in principals:  # read from nowhere the history can see (no file): unknown
        out.setdefault(p.id, GrantHistory(False, OUTSIDE.format(file=p.location.file if p.location else p.id)))
    return out


def _day(text) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def watch_days(baselines: Iterable) -> tuple[dt.date | None, dt.date | None]:
    """(the first day any of the baselines watched, the earliest of their ends): where a grant's exact day
    starts to matter, and where its age decides too_recent or unused (less min-observation)."""
    starts, ends = [], []
    for b in baselines:
        if b is None:
            continue
        starts += [_day(b.window_start)] + [_day(i.start) for spans in (b.coverage or {}).values() for i in spans]
        ends += [_day(b.window_end)] + [_day(i.end) for spans in (b.coverage or {}).values() for i in spans]
    starts, ends = [d for d in starts if d], [d for d in ends if d]
    return (min(starts) if starts else None), (min(ends) if ends else None)


@dataclass(frozen=True)
class HistoryRequest:
    """What `check` and `fix` ask of the repository's history; `pipeline.analyse` runs it once the principals
    and their baselines are known. `paths`: as given to the scan."""
    paths: tuple[str, ...]
    diff_base: str | None = None
    deploy_lag_days: int = 0
    min_observation_days: int = 30
    walk: bool = True  # False (`--no-history`): nothing read from git (no grant days, nothing new)
    now: dt.datetime | None = None

    def __call__(self, principals, baselines: Mapping[str, Iterable], options, catalog) -> dict[str, GrantHistory]:
        """`baselines`: principal id -> the baselines it is judged with."""
        from .judge import grants as grants_mod
        floors, exact = {}, {}
        for p in principals:
            start, end = watch_days(baselines.get(p.id, ()))
            floors[p.id] = start
            exact[p.id] = end - dt.timedelta(days=self.min_observation_days) if end else None
            if start is None:  # no baseline: only `new` and the recent past matter to the judge
                floors[p.id] = exact[p.id] = (self.now or dt.datetime.now(dt.timezone.utc)).date() - \
                    dt.timedelta(days=self.min_observation_days)
        granted = _Granted({p.id: p for p in principals}, lambda p: grants_mod.compute(p, catalog).actions)
        return grant_histories(principals, granted, evaluator(options, catalog), list(self.paths), floors, exact,
                               self.diff_base, self.deploy_lag_days, self.now,
                               outside_dirs=[options.managed_policy_dir] if options.managed_policy_dir else (),
                               walk=self.walk)


class _Granted(Mapping):
    """principal id -> what it is granted at the head, computed when first asked for: where there is no
    history to read (no git, `--no-history`), nothing asks."""

    def __init__(self, principals: dict, compute: Callable):
        self._principals, self._compute, self._done = principals, compute, {}

    def __getitem__(self, pid: str) -> frozenset:
        hit = self._done.get(pid)
        if hit is None:
            hit = self._done[pid] = self._compute(self._principals[pid])
        return hit

    def __iter__(self):
        return iter(self._principals)

    def __len__(self) -> int:
        return len(self._principals)


def hoist(histories: Mapping[str, GrantHistory]) -> tuple[dict[str, GrantHistory], tuple[str, ...]]:
    """(what the judge gets per principal, the report's notes). Where history is unknown for the whole
    repository (a shallow clone, no git, `--no-history`), the report says so once and the judge judges
    without history (the same verdicts as `known=False`); a principal-specific gap (files from outside the
    repository) stays with its principal."""
    notes = {h.note for h in histories.values() if not h.known}
    if histories and len(notes) == 1 and all(not h.known for h in histories.values()):
        shared = {pid: h for pid, h in histories.items() if h.new}  # what the diff base lacks still counts
        return shared, tuple(notes)
    return dict(histories), ()
