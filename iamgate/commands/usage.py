"""`iamgate usage cloudtrail SOURCE ... --out DIR` and `iamgate usage unused-access --analyzer ARN --out DIR`:
write one baseline per principal from CloudTrail, or from IAM Access Analyzer's unused-access findings."""
from __future__ import annotations

import dataclasses
import json
import re
import sys
import tempfile
from pathlib import Path

from ..escape import terminal
from ..files import write_json_atomic
from ..usage import baseline_format as fmt
from . import COMMANDS, Command, UsageError, print_errors

ENGINES = ("auto", "local", "athena")
KEEP_DAYS = 400  # iamgate.usage.history.KEEP_DAYS


def writable_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create the output folder and prove it takes a file, before any slow work; UsageError if not."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write there: {e.strerror or e}") from None
    return out


def write_error(e: OSError) -> UsageError:
    where = f"{e.filename}: " if e.filename else ""
    return UsageError(f"cannot write {where}{e.strerror or e}")


DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEPLOYMENT_HELP = ("the named deployment (the config's `deployments:`) these baselines are for; each baseline "
                   "records it beside its account (run once per account, e.g. one OIDC role each)")


def deployment_name(value: str) -> str:
    """`--deployment NAME`: a name as the config's `deployments:` keys allow."""
    if not DEPLOYMENT_NAME.match(value):
        raise UsageError(f"--deployment {value!r}: letters, digits, `.`, `_` and `-`, at most 64, not starting "
                         "with a punctuation mark")
    return value


def add_deployment_argument(p) -> None:
    p.add_argument("--deployment", metavar="NAME", help=DEPLOYMENT_HELP)


def baseline_document(b, extras: dict) -> dict:
    """to_v1 plus what the model does not carry: per-action regions and errors, notes."""
    doc = fmt.to_v1(b)
    for action, entry in doc["used"].items():
        if extras.get("regions", {}).get(action):
            entry["regions"] = extras["regions"][action]
        if extras.get("errors", {}).get(action):
            entry["errors"] = extras["errors"][action]
    if extras.get("notes"):
        doc["notes"] = extras["notes"]
    return doc


def baseline_filename(arn: str) -> str:
    account = arn.split(":")[4] or "aws"
    kind_name = arn.split(":", 5)[5]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{account}_{kind_name}") + ".json"


def _old_extras(path: Path) -> dict:
    """Per-action regions and errors of the stored document (the model does not carry them)."""
    try:
        used = json.loads(path.read_text(encoding="utf-8")).get("used") or {}
        return {"regions": {a: e["regions"] for a, e in used.items() if isinstance(e.get("regions"), list)},
                "errors": {a: e["errors"] for a, e in used.items() if isinstance(e.get("errors"), int)}}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _joined_extras(old: dict, new: dict) -> dict:
    regions = {a: sorted(set(old.get("regions", {}).get(a, ())) | set(new.get("regions", {}).get(a, ())))
               for a in set(old.get("regions", {})) | set(new.get("regions", {}))}
    errors = {a: old.get("errors", {}).get(a, 0) + new.get("errors", {}).get(a, 0)
              for a in set(old.get("errors", {})) | set(new.get("errors", {}))}
    return {"regions": regions, "errors": errors, "notes": new.get("notes")}


def _idle(out: Path, seen: set, scopes: dict, keep: int | None) -> dict[Path, tuple]:
    """Stored CloudTrail baselines of principals without events in this run, in an account whose logs were
    read: watched and idle, so their coverage extends (a role that did nothing still was watched)."""
    from ..model import Baseline, Interval
    from ..usage import history
    spans: dict[str, list] = {}
    for (account, _), (t0, t1) in (scopes or {}).items():
        if account and t0 and t1:
            slot = spans.setdefault(account, [t0, t1])
            slot[0], slot[1] = min(slot[0], t0), max(slot[1], t1)
    out_docs = {}
    for path in sorted(out.glob("[!.]*.json")) if spans else ():
        if path in seen:
            continue
        try:
            old = fmt.load(path)
        except fmt.BaselineError:
            continue
        span = spans.get(old.account or "")
        if span is None or "cloudtrail" not in old.source_kinds:
            continue
        iv = Interval(history.norm(span[0]), history.norm(span[1]))
        watched = Baseline(old.principal_arn, iv.start, iv.end, sources=({"kind": "cloudtrail", "events": 0,
                                                                           "files": 0},),
                           coverage={"cloudtrail": (iv,)})
        out_docs[path] = (history.merge(old, watched, keep), _old_extras(path))
    return out_docs


def write_summary(summary, out: Path, *, replace: bool = True, keep: int | None = None, state=None,
                  scopes: dict | None = None, deployment: str | None = None) -> list[Path]:
    """Each principal's baseline merged into its stored history (`replace`: started afresh), the reader's
    state with them, through one journal (`iamgate.usage.history.write_all`)."""
    from ..usage import history
    out.mkdir(parents=True, exist_ok=True)
    written, documents = [], {}
    for b in summary.baselines:
        if deployment:
            b = dataclasses.replace(b, deployment=deployment)
        path = out / baseline_filename(b.principal_arn)
        new_extras = summary.documents.get(b.principal_arn, {})
        old = None if replace else history.stored(path, b.principal_arn)
        extras = _joined_extras(_old_extras(path), new_extras) if old is not None else new_extras
        merged = history.merge(old, b, keep)
        documents[path] = baseline_document(merged, extras)
        written.append(path)
    if not replace:
        for path, (merged, extras) in _idle(out, set(written), scopes, keep).items():
            documents[path] = baseline_document(merged, extras)
    history.write_all(out, documents, (state.path, state.document()) if state is not None else None)
    # a dot-file: `check --baselines DIR` skips it, people and CI can read it
    write_json_atomic(out / ".cloudtrail-summary.json", {
        "events": summary.events, "files": summary.files,
        "window": {"start": summary.window[0], "end": summary.window[1]},
        "mapped_events": summary.mapped_events, "api_events": summary.api_events,
        "mapped_share": round(summary.mapped_share, 4), "no_iam_events": summary.no_iam_events,
        "unmapped": [{"event": k, "count": c} for k, c in summary.unmapped],
        "kept_apart": [{"class": k, "who": w, "count": c} for k, w, c in summary.kept_apart],
        "data_events_observed": sorted(summary.data_events_observed), "categories": summary.categories,
        "notes": list(summary.notes)})
    return written


@COMMANDS.register
class Usage(Command):
    name = "usage"
    help = "read usage from a source and write iamgate.baseline/v1 files"

    def configure(self, p) -> None:
        sub = p.add_subparsers(dest="usage_source", metavar="SOURCE_KIND")
        ct = sub.add_parser("cloudtrail", help="CloudTrail logs: local files/folders, s3://bucket/prefix, or Athena",
                            description="Read CloudTrail logs and write one baseline per IAM role or user.")
        ct.add_argument("sources", nargs="*", metavar="SOURCE",
                        help="log files, folders in S3 delivery layout, or s3://bucket/prefix")
        ct.add_argument("--out", required=True, metavar="DIR", help="write baselines here (merged into the "
                                                                     "history stored there)")
        add_deployment_argument(ct)
        ct.add_argument("--replace", action="store_true",
                        help="start afresh: forget the stored history and what earlier runs read")
        ct.add_argument("--keep", type=int, default=KEEP_DAYS, metavar="DAYS",
                        help=f"drop history older than this many days (default {KEEP_DAYS})")
        ct.add_argument("--start", metavar="T", help="first day or ISO time to count (default: all)")
        ct.add_argument("--end", metavar="T", help="last day (inclusive) or ISO time (exclusive)")
        ct.add_argument("--principal", metavar="GLOB", help="only principals whose ARN or name matches")
        ct.add_argument("--engine", choices=ENGINES, default="auto",
                        help="local reader or Athena (auto: Athena when --athena-table is given)")
        ct.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: all cores)")
        ct.add_argument("--athena-table", metavar="DB.TABLE", help="CloudTrail table in Athena")
        ct.add_argument("--athena-workgroup", metavar="W", default="primary")
        ct.add_argument("--athena-output", metavar="S3URL", help="query result location (s3://...)")
        ct.add_argument("--athena-partition", choices=("timestamp", "year-month-day", "none"), default="timestamp",
                        help="the table's partition columns: projected `timestamp` (yyyy/MM/dd), year/month/day, "
                             "or none")
        ua = sub.add_parser("unused-access", help="IAM Access Analyzer unused-access findings, for every role and user",
                            description="Read an unused-access analyzer's findings and the deployed grants they "
                                        "judge, and write one baseline per IAM role or user.")
        ua.add_argument("--analyzer", metavar="ARN", help="the unused-access analyzer (default: the only one "
                                                          "in the region)")
        ua.add_argument("--out", metavar="DIR", help="write baselines here")
        add_deployment_argument(ua)
        ua.add_argument("--principal", action="append", default=[], metavar="GLOB",
                        help="only principals whose ARN or name matches; repeatable")
        ua.add_argument("--account", action="append", default=[], metavar="ID",
                        help="only principals of this account (organization analyzers); repeatable")
        ua.add_argument("--region", help="the analyzer's region (default: from --analyzer, else AWS_DEFAULT_REGION)")
        ua.add_argument("--no-recommendations", action="store_true",
                        help="do not fetch or generate AWS's recommended policies")
        ua.add_argument("--timeout", default="1h", metavar="DURATION", help="overall time limit (default 1h)")
        ua.add_argument("--replace", action="store_true", help="start afresh instead of merging into the "
                                                                "stored history")
        ua.add_argument("--keep", type=int, default=KEEP_DAYS, metavar="DAYS",
                        help=f"drop history older than this many days (default {KEEP_DAYS})")
        ua.add_argument("--print-policy", action="store_true", help="print the IAM policy this command needs and exit")
        self.parser = p

    def run(self, args) -> int:
        if getattr(args, "usage_source", None) == "unused-access":
            from ._unused_access import run_unused_access
            return run_unused_access(args)
        if getattr(args, "usage_source", None) != "cloudtrail":
            self.parser.print_help(sys.stderr)
            return 2
        out = writable_dir(args.out)  # before reading any log: a bad --out fails fast
        deployment = deployment_name(args.deployment) if args.deployment else None
        if args.keep < 1:
            raise UsageError("--keep must be at least 1 day")
        from ..usage import history
        from ..usage._ct_state import STATE_FILE, ReadState
        try:
            if history.redo(out):
                print(f"finished the refresh a stopped run left in {terminal(str(out / history.JOURNAL))}")
        except OSError as e:
            raise write_error(e) from None
        state = ReadState(out / STATE_FILE, fresh=args.replace)
        if state.warning:
            print(terminal(f"iamgate: warning: {state.warning}"), file=sys.stderr)
        engine = args.engine
        if engine == "auto":
            engine = "athena" if args.athena_table else "local"
        try:
            if engine == "athena":
                summary, errors, scopes = self._athena(args, state)
            else:
                summary, errors, scopes = self._local(args, state)
        except ValueError as e:
            raise UsageError(str(e)) from None
        try:
            written = write_summary(summary, out, replace=args.replace or state.invalid, keep=args.keep,
                                    state=state, scopes=scopes, deployment=deployment)
        except OSError as e:
            raise write_error(e) from None
        print_errors(errors)
        from ..usage.cloudtrail import summary_notes
        for note in summary_notes(summary):
            print(terminal(note))  # principal ARNs and event names from the logs
        print(f"wrote {len(written)} baseline(s) to {terminal(args.out)}")
        return 2 if errors else 0

    def _local(self, args, state=None):
        from ..usage.cloudtrail import CloudTrailUsage
        if not args.sources:
            raise UsageError("usage cloudtrail: give at least one SOURCE (file, folder or s3://bucket/prefix)")
        for s in args.sources:
            if not s.startswith("s3://") and not Path(s).exists():
                raise UsageError(f"no such file or directory: {s}")
        if args.jobs is not None and args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        reader = CloudTrailUsage(args.sources, args.start, args.end, args.principal, args.jobs, state=state)
        summary, errors = reader.scan()
        return summary, errors, reader.scopes

    def _athena(self, args, state=None):
        from ..usage.athena import AthenaUsage
        if args.sources:
            raise UsageError("--engine athena reads the table, not SOURCE arguments")
        if not args.athena_table or not args.athena_output:
            raise UsageError("--engine athena needs --athena-table DB.TABLE and --athena-output s3://...")
        reader = AthenaUsage(args.athena_table, args.athena_workgroup, args.athena_output, start=args.start,
                             end=args.end, principal=args.principal, partition=args.athena_partition, state=state)
        summary, errors = reader.scan()
        return summary, errors, reader.scopes

