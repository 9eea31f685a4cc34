"""Usage that remembers (issue 22): a refresh merges into the stored baseline instead of replacing it.

Per action and per source kind the history keeps `count`, `first_seen` and `last_seen`
(`UsedAction.by_source`); the action's own fields are their sums and bounds. Per source kind it keeps the
intervals that source watched (`Baseline.coverage`): a later refresh extends them, a gap stays a gap.
Sources without per-action times record the bounds they know: Access Analyzer's policy generation says
"used somewhere in the job's window", so its `by_source` `first_seen`/`last_seen` are that window's start
and end (at worst later than the real use: an action is kept as used longer, never dropped early); the
action's own `first_seen`/`last_seen` come only from sources with exact times (CloudTrail, last accessed).

Merging is idempotent where the sources give no counts (Access Analyzer, last accessed, unused access:
first/last seen are bounds, coverage a union). CloudTrail counts are made idempotent by its reader
reading each log file once (`_ct_state`). `keep_days` drops history older than that many days before the
newest coverage end: actions last seen before, coverage before (clipped).

`write_all` writes a refresh's baselines through a write-ahead record: all the documents go into one
file first (atomic), then each baseline is replaced (atomic), then the record is removed. A run killed
in between leaves every baseline old or new, never half; the next run finishes the record (`redo`).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from ..files import write_bytes_atomic, write_json_atomic
from ..model import Baseline, Interval, SourceUse, UsedAction
from . import baseline_format as fmt

KEEP_DAYS = 400
JOURNAL = ".iamgate-journal.json"


def _min(a, b):
    return b if a is None or (b is not None and b < a) else a


def _max(a, b):
    return b if a is None or (b is not None and b > a) else a


def _add(a, b):
    return None if a is None and b is None else (a or 0) + (b or 0)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


@lru_cache(maxsize=4096)  # every baseline of a refresh has the same window: one parse per distinct time
def norm(text: str | None) -> str | None:
    """An ISO time (or date) as `YYYY-MM-DDTHH:MM:SSZ`, so that text order is time order."""
    t = _time(text)
    return _iso(t) if t else text


# -- coverage -------------------------------------------------------------------
def union(intervals) -> tuple[Interval, ...]:
    """Sorted, overlapping or touching intervals joined; a gap stays a gap."""
    spans = sorted((norm(i.start), norm(i.end)) for i in intervals if i.start and i.end and norm(i.start) <= norm(i.end))
    out: list[list[str]] = []
    for s, e in spans:
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return tuple(Interval(s, e) for s, e in out)


def own_coverage(b: Baseline) -> dict[str, tuple[Interval, ...]]:
    """A baseline's coverage per source kind; a baseline without one (v1/v2, one refresh): its window
    for each of its working sources."""
    if b.coverage:
        return {k: union(v) for k, v in b.coverage.items()}
    if not (b.window_start and b.window_end):
        return {}
    return {kind: (Interval(norm(b.window_start), norm(b.window_end)),) for kind in sorted(b.source_kinds)}


# -- per action -------------------------------------------------------------------
def source_uses(b: Baseline) -> dict[str, dict[str, SourceUse]]:
    """action -> kind -> SourceUse, from `by_source` where recorded, else from the action's own fields
    (a one-source baseline of an older iamgate, or a fresh refresh)."""
    kinds = sorted(b.source_kinds) or ["baseline"]
    window = (norm(b.window_start), norm(b.window_end))
    out: dict[str, dict[str, SourceUse]] = {}
    for action, u in b.used.items():
        if u.by_source:
            out[action] = dict(u.by_source)
            continue
        signals = [s for s in u.signals if s in kinds] or kinds[:1]
        per = {}
        for kind in signals:
            if u.last_seen or u.first_seen:
                per[kind] = SourceUse(u.count if len(signals) == 1 else None, norm(u.first_seen or u.last_seen),
                                      norm(u.last_seen))
            else:  # no time for the action: what the source knows is its window (Access Analyzer)
                per[kind] = SourceUse(u.count if len(signals) == 1 else None, window[0], window[1])
        out[action] = per
    return out


def _join(a: SourceUse, b: SourceUse) -> SourceUse:
    return SourceUse(_add(a.count, b.count), _min(a.first_seen, b.first_seen), _max(a.last_seen, b.last_seen))


BOUNDS_ONLY = frozenset({"access-analyzer"})  # its times are its job's window, not the action's own


def used_action(per: dict[str, SourceUse], extra: UsedAction | None = None) -> UsedAction:
    """The action's overall record from its per-source ones (resources etc. kept from `extra`). Its own
    first/last seen are the sources' exact times; the bounds of a window (Access Analyzer) stay per source."""
    count = first = last = None
    for kind, s in per.items():
        count = _add(count, s.count)
        if kind not in BOUNDS_ONLY:
            first, last = _min(first, s.first_seen), _max(last, s.last_seen)
    base = extra or UsedAction()
    return replace(base, count=count, last_seen=last, first_seen=first, signals=tuple(sorted(per)),
                   by_source=dict(sorted(per.items())))


# -- the merge --------------------------------------------------------------------
def merge(old: Baseline | None, new: Baseline, keep_days: int | None = KEEP_DAYS) -> Baseline:
    """`new` (one refresh, of one or more source kinds) merged into the stored history `old`."""
    if old is None or old.principal_arn != new.principal_arn:
        merged = _normalised(new)
    else:
        merged = _merge(old, new)
    return retain(merged, keep_days) if keep_days else merged


def _normalised(b: Baseline) -> Baseline:
    used = {a: used_action(per, b.used.get(a)) for a, per in source_uses(b).items()}
    cov = own_coverage(b)
    return _with_window(replace(b, used=used, coverage=cov))


def _with_window(b: Baseline) -> Baseline:
    spans = [i for v in b.coverage.values() for i in v]
    if not spans:
        return b
    return replace(b, window_start=min(i.start for i in spans), window_end=max(i.end for i in spans))


def _merge(old: Baseline, new: Baseline) -> Baseline:
    uses = source_uses(old)
    for action, per in source_uses(new).items():
        slot = uses.setdefault(action, {})
        for kind, s in per.items():
            slot[kind] = _join(slot[kind], s) if kind in slot else s
    used = {}
    for action, per in uses.items():
        before, now = old.used.get(action), new.used.get(action)
        extra = fmt.merge_resources(before, now) if before and now else (now or before)  # resources: a union
        used[action] = used_action(per, extra)
    coverage = own_coverage(old)
    for kind, intervals in own_coverage(new).items():
        coverage[kind] = union(coverage.get(kind, ()) + intervals)
    denied = {a: dict(v) for a, v in old.denied.items()}
    for a, d in new.denied.items():
        prev = denied.get(a, {})
        denied[a] = {"count": _add(prev.get("count"), d.get("count")),
                     "last_seen": _max(prev.get("last_seen"), d.get("last_seen"))}
    new_kinds = {s.get("kind") for s in new.sources}
    sources = tuple(s for s in old.sources if s.get("kind") not in new_kinds) + tuple(
        _totals(s, old.sources) for s in new.sources)
    used_services = {a.partition(":")[0] for a in used}
    service_level = (old.service_level_only | new.service_level_only) - (
        used_services if "cloudtrail" in {s.get("kind") for s in sources} else set())
    # "never accessed" is what the newest report of it says (last accessed looks back 400 days)
    not_accessed = (new.not_accessed_services if "last-accessed" in new_kinds else old.not_accessed_services)
    merged = replace(
        old, sources=sources, used=used, coverage=coverage, denied=denied, files=new.files or old.files,
        service_level_only=frozenset(service_level), not_accessed_services=frozenset(not_accessed) - used_services,
        data_events_observed=old.data_events_observed | new.data_events_observed,
        unused_access=max((e for e in (old.unused_access, new.unused_access) if e is not None),
                          key=lambda e: e.analyzed_at or "", default=None),
        deployment=new.deployment or old.deployment)
    return _with_window(merged)


def _totals(source, old_sources) -> dict:
    """A CloudTrail source entry counts the events and files of the whole history."""
    if source.get("kind") != "cloudtrail":
        return source
    out = dict(source)
    for prev in old_sources:
        if prev.get("kind") == "cloudtrail":
            for key in ("events", "files"):
                if isinstance(prev.get(key), int) and isinstance(source.get(key), int):
                    out[key] = prev[key] + source[key]
    return out


def retain(b: Baseline, keep_days: int) -> Baseline:
    """Drop history older than `keep_days` before the newest coverage end (or window end)."""
    ends = [i.end for v in b.coverage.values() for i in v] or [norm(b.window_end)]
    newest = _time(max((e for e in ends if e), default=None))
    if newest is None:
        return b
    cutoff = _iso(newest - dt.timedelta(days=keep_days))
    coverage = {}
    for kind, intervals in b.coverage.items():
        kept = tuple(Interval(max(i.start, cutoff), i.end) for i in intervals if i.end > cutoff)
        if kept:
            coverage[kind] = kept
    used = {}
    for action, u in b.used.items():
        per = {k: s for k, s in (u.by_source or {}).items() if s.last_seen is None or s.last_seen >= cutoff}
        if u.by_source and not per:
            continue
        if not u.by_source and u.last_seen and norm(u.last_seen) < cutoff:
            continue
        used[action] = used_action(per, u) if u.by_source else u
    denied = {a: d for a, d in b.denied.items() if not d.get("last_seen") or norm(d["last_seen"]) >= cutoff}
    return _with_window(replace(b, used=used, coverage=coverage, denied=denied))


def observed_span(b: Baseline) -> dict:
    """What the baseline watched: its first and last day, and how many days in all (gaps left out)."""
    spans = [i for v in own_coverage(b).values() for i in v]
    joined = union(spans)
    days = sum((_time(i.end) - _time(i.start)).total_seconds() for i in joined) / 86400 if joined else 0
    return {"start": joined[0].start if joined else None, "end": joined[-1].end if joined else None,
            "days": round(days, 1), "gaps": max(0, len(joined) - 1)}


# -- writing ----------------------------------------------------------------------
def stored(path: Path, arn: str) -> Baseline | None:
    """The baseline at `path` to merge into, if it is one of `arn`; None when there is none (or it does
    not read: a broken file is replaced, as before)."""
    if not path.is_file():
        return None
    try:
        b = fmt.load(path)
    except fmt.BaselineError:
        return None
    return b if b.principal_arn == arn else None


def write_all(out: Path, documents: dict[Path, dict], state: tuple[Path, dict] | None = None) -> None:
    """Write every baseline (and the reader state) of one refresh: all or none survive a kill."""
    out = Path(out)
    record = {"schema": "iamgate.journal/v1",
              "files": {str(Path(p).relative_to(out)): d for p, d in documents.items()}}
    if state is not None:
        record["state"] = {"path": str(Path(state[0]).relative_to(out)), "data": state[1]}
    journal = out / JOURNAL
    write_json_atomic(journal, record)
    redo(out)


def redo(out: Path) -> bool:
    """Finish the refresh a killed run left in the journal; False when there was none (or it is unreadable,
    then kept as .bad: its refresh is lost, the baselines are each whole)."""
    journal = Path(out) / JOURNAL
    if not journal.is_file():
        return False
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
        files = record["files"]
        state = record.get("state")
        if not isinstance(files, dict):
            raise ValueError("files is not an object")
    except (OSError, ValueError, KeyError, TypeError):
        journal.replace(journal.with_name(journal.name + ".bad"))
        return False
    base = Path(out).resolve()
    for rel, doc in files.items():
        target = (Path(out) / rel)
        if base not in target.resolve().parents:
            continue  # never outside the folder
        # no fsync each: the journal is on disk, and a crash before it is removed redoes these writes
        write_bytes_atomic(target, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), fsync=False)
    if isinstance(state, dict) and isinstance(state.get("path"), str) and state.get("data") is not None:
        target = Path(out) / state["path"]
        if base in target.resolve().parents:
            write_json_atomic(target, state["data"])
    if hasattr(os, "sync"):
        os.sync()  # the baselines on disk before the journal goes: one flush, not one per file
    journal.unlink()
    return True
