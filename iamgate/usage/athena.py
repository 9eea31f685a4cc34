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
from .cloudtrail import _aws_error, parse_time, summary_notes

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_-]*$")
GROUP_COLUMNS = ("identity_type", "identity_arn", "issuer_arn", "invoked_by", "eventsource", "eventname",
                 "errorcode", "awsregion", "eventtype", "eventcategory")
PARTITIONS = ("timestamp", "year-month-day", "none")
SETTLE_SECONDS = 3600  # an incremental query stops an hour before now: CloudTrail delivers within minutes


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


def build_query(table: str, start: str | None = None, end: str | None = None, partition: str = "timestamp") -> str:
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
        "       count(*) AS events, min(eventtime) AS first_seen, max(eventtime) AS last_seen",
        f"FROM {_quote_table(table)}",
    ]
    if where:
        lines.append("WHERE " + "\n  AND ".join(where))
    lines.append("GROUP BY " + ", ".join(str(i) for i in range(1, len(GROUP_COLUMNS) + 1)))
    return "\n".join(lines)


def rows_to_counts(rows) -> dict:
    """(10 group columns, events, first, last) rows -> the reader's Key -> [count, first, last]."""
    counts: dict = {}
    for row in rows:
        key = tuple(v if v not in ("",) else None for v in row[:len(GROUP_COLUMNS)]) + ("",)
        n = int(row[len(GROUP_COLUMNS)] or 0)
        first, last = row[len(GROUP_COLUMNS) + 1], row[len(GROUP_COLUMNS) + 2]
        slot = counts.get(key)
        if slot is None:
            counts[key] = [n, first, last]
        else:  # should not happen: GROUP BY makes keys unique
            slot[0] += n
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
