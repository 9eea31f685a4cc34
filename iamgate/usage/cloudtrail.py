"""Usage straight from CloudTrail logs: local files/folders in S3 delivery layout, or s3://bucket/prefix.

Files are read in a process pool (one file per task), each reduced to counts by a small key; the
counts are merged and mapped to IAM actions once per distinct key (see _ct_agg).
"""
from __future__ import annotations

import datetime as dt
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ..model import ScanError
from ..reference.catalog import Catalog, load_catalog
from ..words import plural
from . import USAGE, UsageResult, UsageSource
from ._ct_agg import CloudTrailSummary, merge_counts, summarise
from ._ct_map import EventMapper
from ._ct_read import (
    LOG_SUFFIXES,
    FileResult,
    ReadOptions,
    delivery_date,
    forget,
    is_digest,
    log_scope,
    scan_bytes,
    scan_many,
    widen,
)

IN_PROCESS_BYTES = 8 << 20  # below this much input a process pool costs more than it saves


class TimeError(ValueError):
    pass


def parse_time(value: str | None, *, end: bool = False) -> str | None:
    """`--start`/`--end`: a date or ISO time -> "YYYY-MM-DDTHH:MM:SSZ" (a date as --end means its whole day)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            d = dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)
            if end:
                d += dt.timedelta(days=1)
        else:
            d = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            d = d.replace(tzinfo=d.tzinfo or dt.timezone.utc).astimezone(dt.timezone.utc)
    except ValueError:
        raise TimeError(f"not a date or ISO time: {value!r}") from None
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(t: str | None, shift: int = 0) -> tuple | None:
    if not t:
        return None
    d = dt.date.fromisoformat(t[:10]) + dt.timedelta(days=shift)
    return (f"{d.year:04d}", f"{d.month:02d}", f"{d.day:02d}")


@dataclass(frozen=True)
class LogFile:
    ref: str  # local path or s3://bucket/key
    size: int = 0


@USAGE.register
class CloudTrailUsage(UsageSource):
    name = "cloudtrail"

    def __init__(self, sources: list[str], start: str | None = None, end: str | None = None,
                 principal: str | None = None, jobs: int | None = None, catalog: Catalog | None = None,
                 resources: bool = True, state=None):
        self.sources = list(sources)
        self.state = state  # _ct_state.ReadState: what earlier runs read (None: read everything)
        self.already_read: dict = {}  # source -> files skipped as read by an earlier run
        self.start, self.end = parse_time(start), parse_time(end, end=True)
        self.principal = principal
        self.jobs = jobs or os.cpu_count() or 1
        self.catalog = catalog
        self.resources = resources  # record the resources of each call (issue 23)

    # -- discovery -------------------------------------------------------------
    def _day_window(self) -> tuple:
        # delivery folders are by delivery time, up to a day after the event: keep one more day
        return _day(self.start), _day(self.end, 1)

    def _in_window(self, path: str) -> bool:
        day = delivery_date(path)
        lo, hi = self._day_window()
        return day is None or ((lo is None or day >= lo) and (hi is None or day <= hi))

    def discover(self) -> tuple[list[LogFile], list[ScanError], list[str]]:
        files: list[LogFile] = []
        errors: list[ScanError] = []
        digests = other = 0
        for src in self.sources:
            if src.startswith("s3://"):
                from . import _ct_s3
                bucket, _ = _ct_s3.parse_url(src)
                lo, hi = self._day_window()
                keep = (lambda p, src=src: self.state.keep_dir(src, p)) if self.state else None
                try:
                    for key, size in _ct_s3.list_keys(src, lo, hi, keep=keep):
                        if is_digest(key):
                            digests += 1
                        elif key.endswith(LOG_SUFFIXES) and self._in_window(key):
                            self._add(files, src, LogFile(f"s3://{bucket}/{key}", size))
                        elif not key.endswith(LOG_SUFFIXES):
                            other += 1
                except Exception as e:  # botocore errors: one located line, not a traceback
                    errors.append(ScanError(src, None, f"cannot list: {_aws_error(e)}"))
                continue
            path = Path(src)
            if path.is_file():
                self._add(files, src, LogFile(path.as_posix(), path.stat().st_size))
                continue
            if not path.is_dir():
                errors.append(ScanError(src, None, "no such file or directory"))
                continue
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (
                    self.state is None or self.state.keep_dir(src, Path(root, d).as_posix())))
                for n in sorted(names):
                    full = os.path.join(root, n)
                    if is_digest(full):
                        digests += 1
                    elif n.endswith(LOG_SUFFIXES):
                        if self._in_window(full):
                            self._add(files, src, LogFile(Path(full).as_posix(), os.path.getsize(full)))
                    else:
                        other += 1
        notes = []
        if sum(self.already_read.values()):
            notes.append(f"skipped {plural(sum(self.already_read.values()), 'log file')} read by an earlier run")
        if digests:
            notes.append(f"skipped {plural(digests, 'CloudTrail digest file')}")
        if other:
            notes.append(f"ignored {plural(other, 'file')} that are not .json/.json.gz logs")
        return files, errors, notes

    def _add(self, files: list, src: str, f: LogFile) -> None:
        if self.state is None or self.state.wants(src, f.ref):
            files.append(f)
        else:
            self.already_read[src] = self.already_read.get(src, 0) + 1

    # -- reading ---------------------------------------------------------------
    def _read_all(self, files: list[LogFile], opts: ReadOptions):
        """Yield one FileResult per file, in a process pool when the input is big enough."""
        forget()
        s3_files = [f for f in files if f.ref.startswith("s3://")]
        local = [f.ref for f in files if not f.ref.startswith("s3://")]
        total = sum(f.size for f in files)
        jobs = min(self.jobs, max(1, len(files)))
        if jobs <= 1 or total < IN_PROCESS_BYTES:
            yield from scan_many(local, opts)
            from . import _ct_s3
            for ref, data in _ct_s3.bounded_map(_download, [f.ref for f in s3_files]):
                yield data if isinstance(data, FileResult) else scan_bytes(ref, data, opts)
            return
        import multiprocessing as mp
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        import gc
        gc.freeze()  # forked workers never walk (and so copy) the parent's heap: the catalog, the mapping
        try:
            with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
                if local:  # a task is a batch of files (see scan_many), four per process: a key is sent and
                    # merged once per batch, and fewer, larger batches repeat fewer keys (500,000 events in
                    # batches of 16 files: 73,500 keys sent; in 8 batches: 46,100, and the parent's CPU -25%)
                    size = -(-len(local) // (jobs * 4))
                    batches = [local[i:i + size] for i in range(0, len(local), size)]
                    for batch in pool.map(scan_many, batches, [opts] * len(batches)):
                        yield from batch
                if s3_files:
                    yield from _s3_pipeline(pool, [f.ref for f in s3_files], opts, jobs)
        finally:
            gc.unfreeze()

    def scan(self) -> tuple[CloudTrailSummary, list[ScanError]]:
        catalog = self.catalog or load_catalog()
        mapper = EventMapper(catalog)
        files, errors, notes = self.discover()
        opts = ReadOptions(self.start, self.end, mapper.detail_events(), self.resources)
        counts: dict = {}
        read = filtered = 0
        skipped: list[str] = []
        problems = RecordProblems()
        scopes: dict = {}  # (account, region) -> [first, last]
        records = {src: [0, 0] for src in self.sources}  # source -> [events counted, outside the window]
        for res in self._read_all(files, opts):
            for line, msg in res.errors:
                errors.append(ScanError(res.name, line, msg))
            problems.add(res)
            if res.skipped and log_scope(res.name)[0]:  # in CloudTrail's delivery path: its events are lost
                errors.append(ScanError(res.name, None, f"a log file in CloudTrail's delivery path that does not "
                                                        f"read: {res.skipped}"))
                continue
            if res.skipped:
                skipped.append(f"{res.name}: {res.skipped}")
                continue
            if self.state is not None and not res.errors:
                self.state.mark(self._source_of(res.name) or res.name, res.name)
            read += 1
            filtered += res.filtered
            if counts:
                merge_counts(counts, res.counts)
            else:  # the first batch's counts as they are: nothing to merge them with
                counts = res.counts
            merge_coverage(scopes, res.coverage)
            tally = records.get(self._source_of(res.name))
            if tally is not None:
                tally[0] += res.events
                tally[1] += res.filtered
        errors += problems.errors()
        notes += problems.warnings()
        listed = {e.file for e in errors if e.line is None}
        for src, (n, outside) in records.items():
            if not n and not outside and self.already_read.get(src) and not any(
                    self._source_of(f.ref) == src for f in files):
                notes.append(f"{src}: no new log files since the last run")
                continue
            if not n and src not in listed:  # nothing to judge by: never an empty "100% mapped"
                why = (f"all {outside} records are outside --start/--end" if outside else
                       "no CloudTrail records" + ("" if any(self._source_of(f.ref) == src for f in files)
                                                  else " (no .json/.json.gz log files)"))
                errors.append(ScanError(src, None, f"{why}: no usage read from this source"))
        if skipped:
            notes.append(f"skipped {plural(len(skipped), 'non-CloudTrail file')}: " + "; ".join(skipped[:5])
                         + (" ..." if len(skipped) > 5 else ""))
        if filtered:
            notes.append(f"{plural(filtered, 'event')} outside --start/--end not counted")
        self.scopes = scopes  # (account, region) -> [first, last] event time of the logs read
        summary = summarise(counts, files=read, catalog=catalog, mapper=mapper, principal_glob=self.principal,
                            notes=tuple(notes), coverage=scopes)
        return summary, errors

    def _source_of(self, ref: str) -> str | None:
        """The source (folder, file or s3:// prefix) a log file was found under."""
        for src in self.sources:
            if src.startswith("s3://"):
                if ref.startswith(src.rstrip("/")):
                    return src
            elif ref == Path(src).as_posix() or ref.startswith(Path(src).as_posix().rstrip("/") + "/"):
                return src
        return None

    def collect(self) -> UsageResult:
        summary, errors = self.scan()
        return UsageResult(summary.baselines, tuple(errors), summary_notes(summary))


class RecordProblems:
    """Per-record problems of every file, counted by kind: one line per kind with the count and the
    first place, not a line per record (0.2% odd records in 500,000 events were 1,096 lines)."""

    def __init__(self):
        self.kinds: dict = {}  # kind -> [count, file, line, record, kept]

    def add(self, res: FileResult) -> None:
        for kind, (count, line, record, kept) in res.problems.items():
            slot = self.kinds.get(kind)
            if slot is None:
                self.kinds[kind] = [count, res.name, line, record, kept]
            else:
                slot[0] += count


    def errors(self) -> list[ScanError]:
        """Records that were lost: the usage read is incomplete."""
        return [ScanError(file, line, f"{plural(n, 'record')} not counted: {kind}"
                                      + (f" (first: record {rec})" if rec is not None else ""))
                for kind, (n, file, line, rec, kept) in sorted(self.kinds.items()) if not kept]

    def warnings(self) -> list[str]:
        """Records that were kept with an odd optional field left out."""
        return [f"warning: {plural(n, 'record')} with a {kind} counted without it (first: {file}"
                + (f":{line}" if line else "") + (f", record {rec}" if rec is not None else "") + ")"
                for kind, (n, file, line, rec, kept) in sorted(self.kinds.items()) if kept]


def merge_coverage(into: dict, coverage: dict) -> None:
    for scope, (t0, t1) in coverage.items():
        widen(into, scope, t0, t1)


def summary_notes(s: CloudTrailSummary) -> tuple[str, ...]:
    notes = list(s.notes)
    if not s.events:
        return tuple(notes + [f"cloudtrail: no events in {plural(s.files, 'file')}"])
    notes.append(f"cloudtrail: {plural(s.events, 'event')} in {plural(s.files, 'file')}; {s.mapped_events} of "
                 f"{plural(s.api_events, 'API event')} "
                 f"mapped to IAM actions ({s.mapped_share:.1%}); {s.no_iam_events} need no IAM action")
    if s.unmapped:
        notes.append("unmapped events: " + "; ".join(f"{k} x{c}" for k, c in s.unmapped[:10])
                     + (f"; and {len(s.unmapped) - 10} more" if len(s.unmapped) > 10 else ""))
    if s.kept_apart:
        notes.append("kept apart (not attributed to IAM roles/users): " + "; ".join(
            f"{k} {w} x{c}" for k, w, c in s.kept_apart[:10]))
    return tuple(notes)


def _aws_error(e: Exception) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict) and resp.get("Error"):
        return f"{resp['Error'].get('Code')}: {resp['Error'].get('Message')}"
    return str(e)


def _download(ref: str):
    from . import _ct_s3
    bucket, key = _ct_s3.parse_url(ref)
    try:
        return ref, _ct_s3.fetch(bucket, key)
    except Exception as e:  # a missing or unreadable object is a located error; the scan goes on
        res = FileResult(ref)
        res.errors.append((None, f"cannot download: {_aws_error(e)}"))
        return ref, res


def _s3_pipeline(pool: ProcessPoolExecutor, refs: list[str], opts: ReadOptions, jobs: int):
    """Parallel downloads (threads) feeding parsing (processes), with a bounded number in flight."""
    from . import _ct_s3
    limit = 2 * jobs + 8
    pending: set = set()
    for ref, data in _ct_s3.bounded_map(_download, refs):  # at most S3_IN_FLIGHT downloaded, unparsed
        if isinstance(data, FileResult):
            yield data
            continue
        pending.add(pool.submit(scan_bytes, ref, data, opts))
        if len(pending) >= limit:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
    for f in pending:
        yield f.result()
