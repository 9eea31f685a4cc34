"""`iamgate usage cloudtrail SOURCE ... --out DIR` and `iamgate usage unused-access --analyzer ARN --out DIR`:
write one baseline per principal from CloudTrail, or from IAM Access Analyzer's unused-access findings."""
from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ..escape import terminal
from ..files import write_json_atomic
from ..usage import baseline_format as fmt
from . import COMMANDS, Command, UsageError, print_errors

ENGINES = ("auto", "local", "athena")


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


def write_summary(summary, out: Path, deployment: str | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for b in summary.baselines:
        if deployment:
            b = replace(b, deployment=deployment)
        path = out / baseline_filename(b.principal_arn)
        write_json_atomic(path, baseline_document(b, summary.documents.get(b.principal_arn, {})))
        written.append(path)
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
        ct.add_argument("--out", required=True, metavar="DIR", help="write baselines here")
        add_deployment_argument(ct)
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
        engine = args.engine
        if engine == "auto":
            engine = "athena" if args.athena_table else "local"
        try:
            if engine == "athena":
                summary, errors = self._athena(args)
            else:
                summary, errors = self._local(args)
        except ValueError as e:
            raise UsageError(str(e)) from None
        try:
            written = write_summary(summary, out, deployment)
        except OSError as e:
            raise write_error(e) from None
        print_errors(errors)
        from ..usage.cloudtrail import summary_notes
        for note in summary_notes(summary):
            print(terminal(note))  # principal ARNs and event names from the logs
        print(f"wrote {len(written)} baseline(s) to {terminal(args.out)}")
        return 2 if errors else 0

    def _local(self, args):
        from ..usage.cloudtrail import CloudTrailUsage
        if not args.sources:
            raise UsageError("usage cloudtrail: give at least one SOURCE (file, folder or s3://bucket/prefix)")
        for s in args.sources:
            if not s.startswith("s3://") and not Path(s).exists():
                raise UsageError(f"no such file or directory: {s}")
        if args.jobs is not None and args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        return CloudTrailUsage(args.sources, args.start, args.end, args.principal, args.jobs).scan()

    def _athena(self, args):
        from ..usage.athena import AthenaUsage
        if args.sources:
            raise UsageError("--engine athena reads the table, not SOURCE arguments")
        if not args.athena_table or not args.athena_output:
            raise UsageError("--engine athena needs --athena-table DB.TABLE and --athena-output s3://...")
        return AthenaUsage(args.athena_table, args.athena_workgroup, args.athena_output, start=args.start,
                           end=args.end, principal=args.principal, partition=args.athena_partition).scan()

