"""`iamgate managed-policies fetch`: the documents of the managed policies the code attaches, for offline `check`.

Each ARN's default version is read with `iam:GetPolicy` + `iam:GetPolicyVersion` and written
atomically into the managed-policy cache that the sources read.
"""
from __future__ import annotations

import json
import sys
import urllib.parse
from dataclasses import dataclass, replace

from botocore.exceptions import BotoCoreError, ClientError

from .. import config as config_mod
from ..escape import terminal
from ..model import Location, ScanError
from ..reference.managed_policies import ManagedPolicyCache, normalise_arn
from ..sources import Workspace, scan
from ..usage.aws_clients import Clients
from ..usage.aws_errors import PrincipalError, Retry, Stopped
from . import COMMANDS, Command, UsageError, print_errors
from .check import add_scan_arguments, parse_params, scan_options


@dataclass(frozen=True)
class FetchResult:
    fetched: tuple[str, ...] = ()
    errors: tuple[ScanError, ...] = ()


def attached_arns(principals) -> dict[str, Location | None]:
    """Every managed policy ARN the principals attach, with the first place that attaches it."""
    out: dict[str, Location | None] = {}
    for p in principals:
        for pol in p.policies:
            if pol.managed_arn and normalise_arn(pol.managed_arn):
                out.setdefault(pol.managed_arn, pol.location)
    return out


def _document(value):
    if isinstance(value, str):  # the raw API returns URL-encoded JSON; boto3 usually decodes it
        return json.loads(urllib.parse.unquote(value))
    return value


def fetch(iam, arns: dict[str, Location | None], cache: ManagedPolicyCache, retry: Retry | None = None
          ) -> FetchResult:
    """Each call judged by iamgate.usage.aws_errors: a policy that cannot be read is an error entry and the
    rest go on; account-wide failures (credentials) raise AccountError, a `Stopped`."""
    retry = retry or Retry()
    fetched, errors = [], []
    for arn, where in sorted(arns.items()):
        try:
            version = retry.call("GetPolicy", lambda: iam.get_policy(PolicyArn=arn),
                                 check=lambda r: r["Policy"]["DefaultVersionId"] + "")["Policy"]["DefaultVersionId"]
            doc = retry.call("GetPolicyVersion", lambda: iam.get_policy_version(PolicyArn=arn, VersionId=version),
                             check=lambda r: r["PolicyVersion"]["Document"])["PolicyVersion"]["Document"]
            document = _document(doc)
            try:
                cache.put(arn, document, version)
            except OSError as e:
                where = f"{e.filename}: " if e.filename else ""
                raise UsageError(f"managed-policy cache {cache.directory}: cannot write {where}"
                                 f"{e.strerror or e}") from None
            fetched.append(arn)
        except PrincipalError as e:
            errors.append(ScanError(where.file if where else arn, where.line if where else None,
                                    f"managed policy {arn}: {e.failure.code}: {e.failure.message}"))
        except (ValueError, KeyError) as e:
            errors.append(ScanError(where.file if where else arn, where.line if where else None,
                                    f"managed policy {arn}: unreadable document: {e}"))
    return FetchResult(tuple(fetched), tuple(errors))


def scan_with_account(args, cfg, clients: Clients):
    """Scan the code, with AWS::AccountId from STS unless given, so `!Sub`-built ARNs resolve. With
    `--deployment NAME` naming one of the config's `deployments:`, the code is resolved as deployed there
    (its parameters, var-files and terraform.workspace), in its account only."""
    options = scan_options(args, cfg)
    named = next((d for d in cfg.deployments if d.name == getattr(args, "deployment", None)), None)
    if named is not None:
        options = replace(options, parameters={**cfg.parameters, **named.parameters, **parse_params(args.param)},
                          var_files=named.var_files, terraform_workspace=named.name)
    if "AWS::AccountId" not in options.parameters:
        options = replace(options, parameters={**options.parameters, "AWS::AccountId": clients.identity().account})
    account = options.parameters["AWS::AccountId"]
    if named is not None and account != named.account:
        raise UsageError(f"--deployment {named.name} is account {named.account} in the config, but this run is for "
                         f"account {account}: use that account's credentials, or name its deployment")
    return scan(Workspace(args.paths, options))


@COMMANDS.register
class ManagedPolicies(Command):
    name = "managed-policies"
    help = "fetch the managed policies the code attaches into the local cache (for offline check)"

    def configure(self, p) -> None:
        sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
        f = sub.add_parser("fetch", help=self.help, description=self.help)
        add_scan_arguments(f)
        f.add_argument("--arn", action="append", default=[], metavar="ARN", help="also fetch this policy; repeatable")
        f.add_argument("--region", help="AWS region for the API calls (IAM itself is global)")

    def run(self, args, clients: Clients | None = None) -> int:
        cfg = config_mod.load(args.config)
        bad = [a for a in args.arn if not normalise_arn(a)]
        if bad:
            raise UsageError(f"--arn {bad[0]}: not a managed policy ARN")
        clients = clients or Clients(args.region)
        cache = ManagedPolicyCache(args.managed_policies or cfg.managed_policies)
        try:
            scanned = scan_with_account(args, cfg, clients)
            arns = attached_arns(scanned.principals)
            for a in args.arn:
                arns.setdefault(a, None)
            result = fetch(clients.client("iam"), arns, cache)
        except (BotoCoreError, ClientError, Stopped) as e:
            raise UsageError(f"AWS: {e}") from None
        print_errors(scanned.errors + result.errors)
        print(f"iamgate: fetched {len(result.fetched)} of {len(arns)} managed policies into "
              f"{terminal(cache.directory)}", file=sys.stderr)
        return 2 if result.errors or scanned.errors else 0
