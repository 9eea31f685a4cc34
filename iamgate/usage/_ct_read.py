"""Reading CloudTrail log files fast: gunzip (isal when present) + msgspec typed structs of only the
fields iamgate needs, counted by a small key, a batch of files at a time (scan_many). Runs in worker
processes.

Accepted forms: `{"Records": [...]}`, a bare JSON array of records, JSON lines; `.json` or `.json.gz`.
Fields may be null or missing anywhere; a record of the wrong shape is counted, not fatal.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Optional

import msgspec

from ._ct_agg import merge_counts
from ._ct_res import candidates, getters, request_fields

try:  # isal's inflate measured 1.7-2x zlib's on delivery files (bench/bench_cloudtrail.py)
    from isal.isal_zlib import decompressobj as _inflater
except ImportError:  # pragma: no cover - isal is optional
    from zlib import decompressobj as _inflater


def _gunzip(data: bytes) -> bytes:
    d = _inflater(47)  # gzip or zlib header
    out = d.decompress(data)
    if d.unused_data:  # a multi-member gzip file: rare, take the slow general path
        import gzip
        return gzip.decompress(data)
    return out


LOG_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
DIGEST_RE = re.compile(r"(^|/)CloudTrail-Digest(/|$)|_CloudTrail-Digest_")
_DELIVERY_DATE = re.compile(r"/CloudTrail/[^/]+/(\d{4})/(\d{2})/(\d{2})/")
_DELIVERY_SCOPE = re.compile(r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/CloudTrail/([a-z0-9-]+)/")
_ARN_ACCOUNT = re.compile(r"^arn:[^:]+:(?:iam|sts)::(\d{12}):")


class _Issuer(msgspec.Struct, gc=False):
    arn: Optional[str] = None


class _Session(msgspec.Struct, gc=False):
    sessionIssuer: Optional[_Issuer] = None


class _Identity(msgspec.Struct, gc=False):
    type: Optional[str] = None
    arn: Optional[str] = None
    invokedBy: Optional[str] = None
    sessionContext: Optional[_Session] = None


class _Record(msgspec.Struct, gc=False):
    eventSource: Optional[str] = None
    eventName: Optional[str] = None
    eventTime: Optional[str] = None
    awsRegion: Optional[str] = None
    errorCode: Optional[str] = None
    eventType: Optional[str] = None
    eventCategory: Optional[str] = None
    managementEvent: Optional[bool] = None
    userIdentity: Optional[_Identity] = None
    timestamp: Optional[str] = msgspec.field(default=None, name="@timestamp")  # logstash exports


class _RecordWithRequest(_Record, gc=False):
    """Only for files holding events whose request decides the action (decoding Raw costs ~25%)."""
    requestParameters: msgspec.Raw = msgspec.Raw(b"null")


class _Resource(msgspec.Struct, frozen=True, gc=False):  # frozen: hashable, a memo key as it is
    ARN: Optional[str] = None
    type: Optional[str] = None


# The request fields that decide an any_of mapping (PartiQL statements, transaction items): typed like the
# rest, so that a file with such events is decoded once, not again with the whole request.
DETAIL_FIELDS = ("statement", "statements", "transactStatements", "transactItems")
# Only the request fields that name a resource (data/cloudtrail_resources.json) or decide the action;
# `Any`, so that a service using one of these names for something else never fails the typed decode.
_Params = msgspec.defstruct("_Params", [(f, Any, None) for f in sorted(set(request_fields()) | set(DETAIL_FIELDS))],
                            gc=False)
_ENCODE = msgspec.json.Encoder()
_PARAMS = msgspec.json.Decoder(Optional[_Params])


class _RecordResources(_Record, gc=False):
    """With the fields that name resources (issue 23)."""
    recipientAccountId: Optional[str] = None
    resources: Optional[list[_Resource]] = None
    requestParameters: Optional[_Params] = None


@dataclass(frozen=True)
class _Decoders:
    record: type
    envelope: msgspec.json.Decoder
    array: msgspec.json.Decoder
    one: msgspec.json.Decoder


def _decoders(record: type) -> _Decoders:
    envelope = msgspec.defstruct(f"_Envelope{record.__name__}", [("Records", list[record])], gc=False)
    return _Decoders(record, msgspec.json.Decoder(envelope), msgspec.json.Decoder(list[record]),
                     msgspec.json.Decoder(record))


_FAST = _decoders(_Record)
_WITH_REQUEST = _decoders(_RecordWithRequest)
_RESOURCES = _decoders(_RecordResources)
_ANY = msgspec.json.Decoder()

# (identity type, identity arn, session issuer arn, invokedBy, eventSource, eventName, errorCode,
#  awsRegion, eventType, eventCategory, request detail, resources: ((type name | None, ARN), ...))
Key = tuple


@dataclass
class FileResult:
    name: str
    events: int = 0
    filtered: int = 0  # outside --start/--end
    counts: dict = field(default_factory=dict)  # Key -> [count, first, last]
    skipped: str | None = None  # why the file is not CloudTrail (a note, not an error)
    errors: list = field(default_factory=list)  # (line or None, message)
    # per-record problems by kind: kind -> [count, line, record index, kept]; `kept`: the record was
    # read with an odd optional field dropped (a warning), else it was lost (an error)
    problems: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)  # (account, region) -> [first, last] event time

    def problem(self, kind: str, line: int | None, record: int | None, kept: bool = False) -> None:
        slot = self.problems.get(kind)
        if slot is None:
            self.problems[kind] = [1, line, record, kept]
        else:
            slot[0] += 1


@dataclass(frozen=True)
class ReadOptions:
    start: str | None = None  # ISO, compared as text with eventTime
    end: str | None = None
    detail_events: frozenset = frozenset()  # (eventSource, eventName) whose request decides the action
    resources: bool = True  # read the resources each call was made on (issue 23)


def delivery_date(path: str) -> tuple[str, str, str] | None:
    m = _DELIVERY_DATE.search(path.replace("\\", "/"))
    return m.groups() if m else None


def is_digest(path: str) -> bool:
    return bool(DIGEST_RE.search(path.replace("\\", "/")))


def decompress(name: str, data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return _gunzip(data)
    return data


def _line_of(data: bytes, message: str) -> int | None:
    if "truncated" in message:  # cut short: the last line with content
        return data.rstrip().count(b"\n") + 1
    m = re.search(r"\(byte (\d+)\)|at byte (\d+)", message)
    if not m:
        return None
    return data.count(b"\n", 0, int(m.group(1) or m.group(2))) + 1


def _decode(data: bytes, res: FileResult, dec: _Decoders = _FAST) -> list | None:
    """The records of one file, or None (with res.skipped/res.errors set)."""
    head = data.lstrip()[:1]
    if head not in (b"[", b"{"):
        res.skipped = "not JSON" if data.strip() else "empty file"
        return None
    try:  # the fast path: typed decoding of the whole file
        if head == b"[":
            return dec.array.decode(data)
        return dec.envelope.decode(data).Records
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        doc = _ANY.decode(data)
    except msgspec.DecodeError as e:
        if head == b"{" and "trailing characters" in str(e):
            return _json_lines(data, res, dec)
        res.errors.append((_line_of(data, str(e)), f"invalid JSON: {e}"))
        return None
    return _tolerant(doc, res, dec)


def _json_lines(data: bytes, res: FileResult, dec: _Decoders) -> list:
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(dec.one.decode(line))
        except msgspec.ValidationError as e:
            out.extend(_records_from([_loads_or_none(line)], res, n, str(e), dec))
        except msgspec.DecodeError:
            res.problem("invalid JSON line", n, None)
    return out


def _loads_or_none(line: bytes):
    try:
        return _ANY.decode(line)
    except msgspec.DecodeError:
        return None


def _tolerant(doc, res: FileResult, dec: _Decoders) -> list | None:
    """Slow path for files with odd records: convert one record at a time."""
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
        items = doc["Records"]
    elif isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict) and "eventName" in doc and "eventSource" in doc:
        items = [doc]
    else:
        res.skipped = "not CloudTrail (no Records list or event records)"
        return None
    return _records_from(items, res, None, "", dec)


def _records_from(items: list, res: FileResult, line: int | None, why: str, dec: _Decoders) -> list:
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            res.problem("not a JSON object", line, i)
            continue
        rec, dropped = _convert(item, dec.record)
        if rec is None:
            res.problem(f"unreadable record ({_generic(why)})" if why else "unreadable record", line, i)
            continue
        if dropped:
            lost = ESSENTIAL.intersection(dropped)  # without these the record says nothing usable
            res.problem(f"malformed {', '.join(dropped)}", line, i, kept=not lost)
            if lost:
                continue
        out.append(rec)
    return out


ESSENTIAL = frozenset({"eventSource", "eventName", "userIdentity"})


def _generic(why: str) -> str:
    """A validation message without its specifics, so that like problems count as one kind."""
    return re.sub(r"`\$[^`]*`", "a field", why)


def _convert(item: dict, record_type: type) -> tuple:
    """A record of the wrong shape keeps what can be read: the offending field is dropped (the
    innermost one: a malformed `userIdentity.sessionContext` leaves the rest of `userIdentity`)."""
    dropped: list[str] = []
    if record_type is _RecordWithRequest:
        item = {**item, "requestParameters": msgspec.Raw(msgspec.json.encode(item.get("requestParameters")))}
    for _ in range(64):
        try:
            return msgspec.convert(item, record_type), dropped
        except msgspec.ValidationError as e:
            m = re.search(r"at `\$((?:\.[^.`\[]+)+)", str(e))
            path = m.group(1)[1:].split(".") if m else []
            item = _without(item, path)
            if item is None:
                return None, dropped
            dropped.append(".".join(path))
    return None, dropped


def _without(item: dict, path: list[str]) -> dict | None:
    """A copy of `item` without the field at `path`, or None when there is no such field."""
    if not path or not isinstance(item, dict) or path[0] not in item:
        return None
    if len(path) == 1:
        return {k: v for k, v in item.items() if k != path[0]}
    inner = _without(item[path[0]], path[1:])
    return None if inner is None else {**item, path[0]: inner}


_TX_KINDS = re.compile(rb'"(put|update|delete|conditionCheck)"\s*:\s*\{')
_STATEMENT = re.compile(rb'"statement"\s*:\s*"\s*\(*\s*([A-Za-z]+)')


def request_detail(raw) -> str:
    """The parts of requestParameters that decide an any_of mapping: PartiQL verbs, transact item kinds.
    `raw`: the request's JSON, or its typed fields (then the detail fields are encoded back)."""
    if raw is None:
        return ""
    if isinstance(raw, _Params):
        raw = _ENCODE.encode({f: getattr(raw, f) for f in DETAIL_FIELDS})
    if not raw:
        return ""
    found = {m.group(1).decode().upper() for m in _STATEMENT.finditer(raw)}
    found |= {m.group(1).decode() for m in _TX_KINDS.finditer(raw)}
    return ",".join(sorted(found))


def _hashable(values: tuple) -> tuple | None:
    out = []
    for v in values:
        if isinstance(v, list):
            v = tuple(x for x in v if isinstance(x, str))
        elif v is not None and not isinstance(v, str):
            v = None  # a number or an object where a name was expected: names nothing
        out.append(v)
    return tuple(out)


# What each distinct request names, remembered across the files a process reads: the same tables, keys and
# secrets recur from file to file (bench_cloudtrail: candidates() was a sixth of the per-record time)
_FOUND: dict = {}
_FOUND_MAX = 20_000  # entries, a few MB; cleared when full, and what recurs is remembered again at once


def forget() -> None:
    """A scan starts from nothing remembered (in every worker it forks): its cost is its own."""
    _FOUND.clear()


def aggregate(records: list, res: FileResult, opts: ReadOptions, counts: dict | None = None) -> None:
    """Count records by Key into `counts` (default: res.counts); the hot loop, so plain locals and no
    per-event calls."""
    counts = res.counts if counts is None else counts
    start, end, detail_events = opts.start, opts.end, opts.detail_events
    detail_sources = {src for src, _ in detail_events}
    windowed = start is not None or end is not None
    rules = getters() if opts.resources else {}
    found_memo = _FOUND  # (source, region, account, request fields, resources[]) -> candidates
    if len(found_memo) > _FOUND_MAX:
        found_memo.clear()
    n = filtered = 0
    for r in records:
        t = r.eventTime or r.timestamp
        if t is not None and not t[:1].isdigit():
            t = None  # placeholder times ("...", "redacted") in sanitised samples
        if windowed and (t is None or (start is not None and t < start) or (end is not None and t >= end)):
            filtered += 1
            continue
        n += 1
        u = r.userIdentity
        if u is None:
            itype = iarn = issuer = invoked = None
        else:
            itype, iarn, invoked = u.type, u.arn, u.invokedBy
            sc = u.sessionContext
            issuer = sc.sessionIssuer.arn if sc is not None and sc.sessionIssuer is not None else None
            if issuer is not None:
                iarn = None  # the session's own ARN (one per session) would only multiply keys
        cat = r.eventCategory
        if cat is None and r.managementEvent is not None:
            cat = "Management" if r.managementEvent else "Data"
        src, name = r.eventSource, r.eventName
        detail = ""
        if src in detail_sources and (src, name) in detail_events:
            detail = request_detail(getattr(r, "requestParameters", None))
        found = ()
        rule = rules.get(src)
        rs = r.resources if rules else None
        if rule is not None or rs:
            p = r.requestParameters if rule is not None else None
            vals = rule[1](p) if p is not None else None
            if rs or vals is not None:
                mk = (src, r.awsRegion, r.recipientAccountId, vals, tuple(rs[:3]) if rs else None)
                try:
                    found = found_memo.get(mk)
                except TypeError:  # a list or object in a request field
                    mk = (mk[0], mk[1], mk[2], _hashable(vals), mk[4])
                    found = found_memo.get(mk)
                if found is None:  # the first three of resources[], as Athena reads them
                    found = found_memo[mk] = candidates(*mk[:4], tuple((x.ARN, x.type) for x in mk[4])
                                                        if mk[4] else None)
        key = (itype, iarn, issuer, invoked, src, name, r.errorCode, r.awsRegion, r.eventType, cat, detail, found)
        slot = counts.get(key)
        if slot is None:
            counts[key] = [1, t, t]
        else:
            slot[0] += 1
            if t is not None:
                if slot[1] is None or t < slot[1]:
                    slot[1] = t
                if slot[2] is None or t > slot[2]:
                    slot[2] = t
    res.events += n
    res.filtered += filtered


def _records(res: FileResult, data: bytes, opts: ReadOptions) -> list | None:
    try:
        data = decompress(res.name, data)
    except (OSError, zlib.error, EOFError) as e:
        res.errors.append((None, f"cannot gunzip: {e}"))
        return None
    records = _decode(data, res, _RESOURCES if opts.resources else _FAST)
    if records and opts.detail_events and not opts.resources and any(
            (r.eventSource, r.eventName) in opts.detail_events for r in records):
        res.errors.clear()
        res.problems.clear()
        records = _decode(data, res, _WITH_REQUEST)
    return records


def scan_bytes(name: str, data: bytes, opts: ReadOptions) -> FileResult:
    res = FileResult(name)
    records = _records(res, data, opts)
    if records:
        aggregate(records, res, opts)
        res.coverage = coverage(name, res.counts)
    return res


_TIME = attrgetter("eventTime")


def _plain_coverage(records: list, name: str, opts: ReadOptions) -> dict | None:
    """{(account, region): [first, last]} of a file in CloudTrail's delivery layout whose records all have a
    time (not a placeholder) inside --start/--end: its coverage, with no need of counts of its own. Else None."""
    scope = log_scope(name)
    if scope[0] is None:
        return None
    times = list(map(_TIME, records))
    if None in times:
        return None
    lo, hi = min(times), max(times)
    if not (lo[:1].isdigit() and hi[:1].isdigit()):  # then so does every time between them
        return None
    if (opts.start is not None and lo < opts.start) or (opts.end is not None and hi >= opts.end):
        return None
    return {scope: [lo, hi]}


def scan_many(paths: list[str], opts: ReadOptions) -> list[FileResult]:
    """One result per file, in order, with the counts of them all on the last one the parent reads: a
    worker sends (and the parent merges) a key once per batch, not once per file. A file in the delivery
    layout whose records all count is counted straight into the batch's counts; any other file is counted
    on its own, for its coverage, and merged. Either way the keys come in the order a file-by-file merge
    gives."""
    out: list[FileResult] = []
    counts: dict = {}
    for path in paths:
        res = FileResult(path)
        out.append(res)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            res.errors.append((None, f"cannot read: {e.strerror}"))
            continue
        records = _records(res, data, opts)
        if not records:
            continue
        plain = _plain_coverage(records, path, opts)
        if plain is not None:
            aggregate(records, res, opts, counts)
            res.coverage = plain
            continue
        aggregate(records, res, opts)
        res.coverage = coverage(path, res.counts)
        merge_counts(counts, res.counts)
        res.counts = {}
    if counts:  # on a file the parent reads (it drops a skipped file's counts)
        [r for r in out if not r.skipped][-1].counts = counts
    return out


def log_scope(name: str) -> tuple[str | None, str | None]:
    """(account, region) from the delivery layout `AWSLogs/[o-org/]<account>/CloudTrail/<region>/`."""
    m = _DELIVERY_SCOPE.search(name.replace("\\", "/"))
    return (m.group(1), m.group(2)) if m else (None, None)


def coverage(name: str, counts: dict) -> dict:
    """(account, region) -> [first, last] event time of this file: the span of the logs of each
    account (and region) it holds. From the delivery path where it says, else from the records
    (the acting principal's account, the event's region). Runs per distinct key, not per event."""
    account, region = log_scope(name)
    out: dict = {}
    if account is not None and region is not None:  # the delivery path says: one span for the file
        firsts = [t0 for _, t0, _ in counts.values() if t0 is not None]
        lasts = [t1 for _, _, t1 in counts.values() if t1 is not None]
        return {(account, region): [min(firsts, default=None), max(lasts, default=None)]} if counts else {}
    for key, (_, t0, t1) in counts.items():
        acct = account
        if acct is None:
            m = _ARN_ACCOUNT.match(key[2] or key[1] or "")
            acct = m.group(1) if m else None
        widen(out, (acct, region or key[7]), t0, t1)
    return out


def widen(spans: dict, scope, t0: str | None, t1: str | None) -> None:
    """Stretch `spans[scope]` ([first, last]) to cover t0..t1."""
    slot = spans.get(scope)
    if slot is None:
        spans[scope] = [t0, t1]
        return
    if t0 is not None and (slot[0] is None or t0 < slot[0]):
        slot[0] = t0
    if t1 is not None and (slot[1] is None or t1 > slot[1]):
        slot[1] = t1


def scan_path(path: str, opts: ReadOptions) -> FileResult:
    return scan_many([path], opts)[0]
