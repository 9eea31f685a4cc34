"""Usage from CloudTrail through Athena: one aggregate query over the standard CloudTrail table.

The query returns the same counts the local reader builds (identity, event, error, region, type,
category), so both engines share `_ct_agg.summarise`. The SQL is plain enough to run unchanged on
DuckDB, which the tests use to check it against the local reader.
"""
from __future__ import annotations

import datetime as _dt
import re
import time

from ..model import ScanError
from ..reference.catalog import Catalog, load_catalog
from . import USAGE, UsageResult, UsageSource
from ._ct_agg import CloudTrailSummary, summarise
from ._ct_read import coverage
from ._ct_res import candidates, getters, request_fields
from .cloudtrail import _aws_error, parse_time, summary_notes

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_-]*$")
GROUP_COLUMNS = ("identity_type", "identity_arn", "issuer_arn", "invoked_by", "eventsource", "eventname",
                 "errorcode", "awsregion", "eventtype", "eventcategory")
PARTITIONS = ("timestamp", "year-month-day", "none")
SETTLE_SECONDS = 3600  # an incremental query stops an hour before now: CloudTrail delivers within minutes
RESOURCES_READ = 3  # the first entries of `resources[]` (the local reader reads as many)
LIST_FIELDS = ("names",)  # request fields that hold a list of names


def resource_columns() -> list[str]:
    """The columns that name resources (after the counts): account, `resources[]`, request fields.
    S3 object ARNs are left to `bucketName`/`key`, whose key is cut to its first segment here, so that
    a bucket of many objects is a few rows, not one per object."""
    cols = ["recipientaccountid AS recipient_account"]
    for i in range(1, RESOURCES_READ + 1):
        ok = f"cardinality(resources) >= {i} AND coalesce(resources[{i}].type, '') <> 'AWS::S3::Object'"
        cols.append(f"CASE WHEN {ok} THEN resources[{i}].arn END AS resource_{i}_arn")
        cols.append(f"CASE WHEN {ok} THEN resources[{i}].type END AS resource_{i}_type")
    for f in request_fields():
        value = f"json_extract_scalar(requestparameters, '$.{f}')"
        if f == "key":  # `exports/2024/a.csv` -> `exports/`; `a.csv` -> `x` (the reader's s3_prefix: `*`)
            value = (f"CASE WHEN {value} IS NULL THEN NULL WHEN strpos({value}, '/') > 0 "
                     f"THEN split_part({value}, '/', 1) || '/' ELSE 'x' END")
        elif f in LIST_FIELDS:
            value = f"json_format(json_extract(requestparameters, '$.{f}'))"
        cols.append(f"{value} AS rp_{f.lower()}")
    return cols


class AthenaError(RuntimeError):
    pass


def _quote_table(table: str) -> str:
    if not _TABLE.match(table):
        raise ValueError(f"--athena-table must be DATABASE.TABLE, not {table!r}")
    db, name = table.split(".", 1)
    return f'"{db}"."{name}"'


def partition_filter(start: str | None, end: str | None, partition: str) -> list[str]:
    """Partition pruning on the window (dates from `parse_time` output, so safe to inline)."""
    if partition == "none" or not (start or end):
        return []
    lo = start[:10] if start else None
    hi = end[:10] if end else None
    if partition == "timestamp":  # partition projection, format yyyy/MM/dd
        return ([f"\"timestamp\" >= '{lo.replace('-', '/')}'"] if lo else []) + (
            [f"\"timestamp\" <= '{hi.replace('-', '/')}'"] if hi else [])
    if partition == "year-month-day":
        expr = "concat(year, '-', month, '-', day)"
        return ([f"{expr} >= '{lo}'"] if lo else []) + ([f"{expr} <= '{hi}'"] if hi else [])
    raise ValueError(f"unknown partition layout {partition!r}")


def build_query(table: str, start: str | None = None, end: str | None = None, partition: str = "timestamp",
                resources: bool = True) -> str:
    where = partition_filter(start, end, partition)
    if start:
        where.append(f"eventtime >= '{start}'")
    if end:
        where.append(f"eventtime < '{end}'")
    lines = [
        "SELECT useridentity.type AS identity_type,",
        "       CASE WHEN useridentity.sessioncontext.sessionissuer.arn IS NULL THEN useridentity.arn END"
        " AS identity_arn,",
        "       useridentity.sessioncontext.sessionissuer.arn AS issuer_arn,",
        "       useridentity.invokedby AS invoked_by,",
        "       eventsource, eventname, errorcode, awsregion, eventtype, eventcategory,",
        "       count(*) AS events, min(eventtime) AS first_seen, max(eventtime) AS last_seen"
        + ("," if resources else ""),
    ]
    extra = resource_columns() if resources else []
    lines += [f"       {c}" + ("," if i < len(extra) - 1 else "") for i, c in enumerate(extra)]
    lines.append(f"FROM {_quote_table(table)}")
    if where:
        lines.append("WHERE " + "\n  AND ".join(where))
    groups = list(range(1, len(GROUP_COLUMNS) + 1)) + list(range(len(GROUP_COLUMNS) + 4,
                                                                  len(GROUP_COLUMNS) + 4 + len(extra)))
    lines.append("GROUP BY " + ", ".join(str(i) for i in groups))
    return "\n".join(lines)


def _list(value):
    if value is None or value == "":
        return None
    try:
        import json
        v = json.loads(value)
    except ValueError:
        return None
    return tuple(x for x in v if isinstance(x, str)) if isinstance(v, list) else None


def row_resources(source: str | None, region: str | None, extra: list) -> tuple:
    """The resource columns of one row -> the reader's candidates for its key."""
    if not extra:
        return ()
    account = extra[0] or None
    n = 1 + 2 * RESOURCES_READ
    found = tuple((extra[i] or None, extra[i + 1] or None) for i in range(1, n, 2) if extra[i])
    fields = dict(zip(request_fields(), extra[n:]))
    for f in LIST_FIELDS:
        fields[f] = _list(fields.get(f))
    rule = getters().get(source or "")
    vals = tuple(fields.get(f) or None for f in rule[0]) if rule else None
    if rule and all(v is None for v in vals):
        vals = None  # no request fields: as a record whose requestParameters is null
    if not found and vals is None:
        return ()
    return candidates(source, region, account, vals, found or None)


def rows_to_counts(rows) -> dict:
    """(10 group columns, events, first, last[, resource columns]) rows -> the reader's Key -> [count, first,
    last]."""
    counts: dict = {}
    g = len(GROUP_COLUMNS)
    for row in rows:
        head = tuple(v if v not in ("",) else None for v in row[:g])
        key = head + ("", row_resources(head[4], head[7], list(row[g + 3:])))
        n = int(row[g] or 0)
        first, last = row[g + 1], row[g + 2]
        slot = counts.get(key)
        if slot is None:
            counts[key] = [n, first, last]
        else:  # rows that differ only in what names no resource of theirs
            slot[0] += n
            slot[1] = min(filter(None, (slot[1], first)), default=None)
            slot[2] = max(filter(None, (slot[2], last)), default=None)
    return counts


def athena_client():
    import boto3

    from .aws_clients import client_config
    return boto3.client("athena", config=client_config())


def run_query(sql: str, workgroup: str, output: str, client=None, poll: float = 0.2, timeout: float = 1800):
    """StartQueryExecution, poll GetQueryExecution, page through GetQueryResults; yields data rows."""
    client = client or athena_client()
    qid = client.start_query_execution(QueryString=sql, WorkGroup=workgroup,
                                       ResultConfiguration={"OutputLocation": output})["QueryExecutionId"]
    deadline = time.monotonic() + timeout
    delay = poll
    while True:
        status = client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
        state = status.get("State")
        if state == "SUCCEEDED":
            break
        if state in ("FAILED", "CANCELLED"):
            raise AthenaError(f"query {qid} {state.lower()}: {status.get('StateChangeReason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise AthenaError(f"query {qid} still {state} after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
    header_skipped = False
    for page in client.get_paginator("get_query_results").paginate(QueryExecutionId=qid):
        rows = page.get("ResultSet", {}).get("Rows", [])
        for row in rows:
            values = [d.get("VarCharValue") for d in row.get("Data", [])]
            if not header_skipped:
                header_skipped = True
                if values and values[0] == GROUP_COLUMNS[0]:
                    continue
            yield values


@USAGE.register
class AthenaUsage(UsageSource):
    name = "athena"

    def __init__(self, table: str, workgroup: str = "primary", output: str | None = None, *,
                 start: str | None = None, end: str | None = None, principal: str | None = None,
                 partition: str = "timestamp", catalog: Catalog | None = None, client=None, state=None,
                 now=None):
        if partition not in PARTITIONS:
            raise ValueError(f"--athena-partition must be one of {', '.join(PARTITIONS)}")
        self.table, self.workgroup, self.output = table, workgroup, output
        self.start, self.end = parse_time(start), parse_time(end, end=True)
        self.state, self.scopes = state, {}
        if state is not None:  # incremental: only the partitions (and events) since the last refresh
            through = state.athena_through(table)
            if through and (self.start is None or through > self.start):
                self.start = through
            if self.end is None:  # events still being delivered are left to the next run
                now = now or _dt.datetime.now(_dt.timezone.utc)
                self.end = (now - _dt.timedelta(seconds=SETTLE_SECONDS)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.principal, self.partition = principal, partition
        self.catalog, self.client = catalog, client
        self.sql = build_query(table, self.start, self.end, partition)

    def scan(self) -> tuple[CloudTrailSummary, list[ScanError]]:
        errors: list[ScanError] = []
        notes = [] if (self.start or self.end or self.partition == "none") else [
            "no --start/--end: Athena scans every partition of the table"]
        try:
            counts = rows_to_counts(run_query(self.sql, self.workgroup, self.output or "", self.client))
        except AthenaError as e:
            errors.append(ScanError(f"athena:{self.table}", None, str(e)))
            counts = {}
        except Exception as e:  # botocore ClientError / endpoint errors: a located line, not a traceback
            if type(e).__module__.startswith(("botocore", "boto3")):
                errors.append(ScanError(f"athena:{self.table}", None, _aws_error(e)))
                counts = {}
            else:
                raise
        if not counts and not errors:  # nothing to judge by: never an empty "100% mapped"
            errors.append(ScanError(f"athena:{self.table}", None, "no CloudTrail records in the query's window: "
                                                                  "no usage read from this source"))
        if self.state is not None:
            nothing_new = [e for e in errors if "no CloudTrail records" in e.message]
            if nothing_new and len(errors) == 1 and self.state.athena_through(self.table):
                errors = []  # the last refresh read up to here: nothing new is not an error
                notes.append(f"athena:{self.table}: no new events since {self.state.athena_through(self.table)}")
            if not errors and self.end:
                self.state.athena_read(self.table, self.end)
        self.scopes = coverage("", counts)
        summary = summarise(counts, files=0, catalog=self.catalog or load_catalog(), principal_glob=self.principal,
                            notes=tuple(notes), engine="athena",
                            coverage=self.scopes)  # each account's own span, as for logs read directly
        return summary, errors

    def collect(self) -> UsageResult:
        summary, errors = self.scan()
        return UsageResult(summary.baselines, tuple(errors), summary_notes(summary))
