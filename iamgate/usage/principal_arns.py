"""Principals found in code -> their deployed ARNs, or the reason they cannot be resolved.

In order: the config's `principals:` mapping, an ARN or fixed name in the code (account from STS),
CloudFormation `DescribeStackResource` on the stack the config names for the template (`stacks:`),
and Terraform state (`--tfstate`). Nothing is guessed and nothing is dropped silently.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..model import Location, Principal
from .aws_clients import Identity
from .aws_errors import PrincipalError, Retry

_IAM_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)(/[\w+=,.@/-]*)?/[\w+=,.@-]+$")
_TF_PRINCIPAL_TYPES = {"aws_iam_role", "aws_iam_user"}


class StateError(Exception):
    pass


def is_principal_arn(value: str) -> bool:
    return bool(_IAM_ARN.match(value))


@dataclass(frozen=True)
class Target:
    """A deployed principal to build a baseline for."""
    arn: str
    how: str
    principal_id: str | None = None
    location: Location | None = None


@dataclass(frozen=True)
class NotResolved:
    principal_id: str
    reason: str
    location: Location | None = None


@dataclass(frozen=True)
class Resolution:
    targets: tuple[Target, ...] = ()
    unresolved: tuple[NotResolved, ...] = ()


class TerraformState:
    """`terraform show -json` output or a `.tfstate` file: resource address -> ARNs."""

    def __init__(self, arns: dict[str, list[str]], file: str):
        self.arns = arns
        self.file = file

    @classmethod
    def load(cls, path: str) -> "TerraformState":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise StateError(f"{path}: cannot read: {e.strerror}") from None
        except ValueError as e:
            raise StateError(f"{path}:{getattr(e, 'lineno', '?')}: invalid JSON: {getattr(e, 'msg', e)}") from None
        if not isinstance(data, dict):
            raise StateError(f"{path}: not a Terraform state")
        arns: dict[str, list[str]] = {}
        values = data.get("values") or (data.get("prior_state") or {}).get("values")
        if isinstance(values, dict):
            _walk_module(values.get("root_module") or {}, arns)
        elif isinstance(data.get("resources"), list):
            _walk_tfstate(data["resources"], arns)
        else:
            raise StateError(f"{path}: neither `terraform show -json` output nor a .tfstate file")
        return cls(arns, path)

    def lookup(self, address: str) -> list[str]:
        return self.arns.get(address, [])


def _add(arns: dict, base: str, index, arn) -> None:
    if not isinstance(arn, str):
        return
    arns.setdefault(base, []).append(arn)
    if index is not None:
        arns.setdefault(f"{base}[{json.dumps(index)}]", []).append(arn)


def _walk_module(module: dict, arns: dict) -> None:
    for r in module.get("resources") or []:
        if isinstance(r, dict) and r.get("type") in _TF_PRINCIPAL_TYPES and r.get("mode", "managed") == "managed":
            base = re.sub(r"\[[^\]]*\]$", "", str(r.get("address", "")))
            _add(arns, base, r.get("index"), (r.get("values") or {}).get("arn"))
    for child in module.get("child_modules") or []:
        if isinstance(child, dict):
            _walk_module(child, arns)


def _walk_tfstate(resources: list, arns: dict) -> None:
    for r in resources:
        if not isinstance(r, dict) or r.get("type") not in _TF_PRINCIPAL_TYPES or r.get("mode") != "managed":
            continue
        base = ".".join(p for p in (r.get("module"), r.get("type"), r.get("name")) if p)
        for inst in r.get("instances") or []:
            if isinstance(inst, dict):
                _add(arns, base, inst.get("index_key"), (inst.get("attributes") or {}).get("arn"))


class Resolver:
    def __init__(self, identity: Callable[[], Identity], cloudformation: Callable[[], object] | None = None,
                 mapping: dict | None = None, stacks: dict | None = None, tfstate: TerraformState | None = None,
                 retry: Retry | None = None):
        self.identity = identity
        self.retry = retry or Retry()  # DescribeStackResource judged per call; account-wide failures raise Stopped
        self.cloudformation = cloudformation
        self.mapping = mapping or {}
        self.stacks = {_norm(k): v for k, v in (stacks or {}).items()}
        self.tfstate = tfstate

    def resolve(self, principals, explicit: list[str] = ()) -> Resolution:
        targets: dict[str, Target] = {}
        unresolved: list[NotResolved] = []
        for arn in explicit:
            targets.setdefault(arn, Target(arn, "--principal"))
        for p in principals:
            got = self.one(p)
            if isinstance(got, NotResolved):
                unresolved.append(got)
            elif got.arn not in targets:
                targets[got.arn] = got
        return Resolution(tuple(targets.values()), tuple(unresolved))

    def one(self, p: Principal) -> Target | NotResolved:
        def hit(arn: str, how: str):
            if not is_principal_arn(arn):
                return NotResolved(p.id, f"{how} gives {arn!r}, which is not an IAM role or user ARN", p.location)
            return Target(arn, how, p.id, p.location)

        if p.kind not in ("role", "user"):
            why = ("a policy attached to no principal in the code" if p.kind == "policy"
                   else "a permission set is provisioned as an AWSReservedSSO_<name>_* role in each assigned "
                        "account (`check` matches a baseline of that role)" if p.kind == "permission-set"
                   else f"a {p.kind} makes no calls of its own")
            return NotResolved(p.id, f"{why}; Access Analyzer generates policies for roles and users only", p.location)
        for key in (p.id, *p.aliases, p.location.file if p.location else None, p.name):
            target = self.mapping.get(key) if key else None
            if target:
                arn = target if target.startswith("arn:") else self.arn(p.kind, p.path, target)
                return hit(arn, f"config mapping {key}")
        if p.arn:
            ident = self.identity()
            arn = p.arn.replace("${AWS::AccountId}", ident.account).replace("${AWS::Partition}", ident.partition)
            if "${" not in arn:
                return hit(arn, "ARN in the code")
        if p.name and not p.name_is_prefix:
            return hit(self.arn(p.kind, p.path, p.name), "fixed name")
        tried = []
        stack = self.stacks.get(_norm(p.location.file)) if p.location else None
        if stack:
            name, why = self.from_stack(p, stack)
            if name:
                return hit(self.arn(p.kind, p.path, name), f"CloudFormation stack {stack}")
            tried.append(why)
        if self.tfstate is not None:
            arn, why = self.from_state(p)
            if arn:
                return hit(arn, f"Terraform state {self.tfstate.file}")
            tried.append(why)
        if not tried:
            name = "its name is only a prefix" if p.name_is_prefix else "the code fixes no name"
            tried.append(f"{name}; map it under `principals:` in the config, name its template's stack under "
                         "`stacks:`, pass --tfstate, or pass --principal ARN")
        return NotResolved(p.id, "; ".join(tried), p.location)

    def arn(self, kind: str, path: str, name: str) -> str:
        ident = self.identity()
        path = path if path.startswith("/") and path.endswith("/") else "/"
        return f"arn:{ident.partition}:iam::{ident.account}:{kind}{path}{name}"

    def from_stack(self, p: Principal, stack: str) -> tuple[str | None, str]:
        """(the physical name, "") or (None, why not)."""
        logical_id = p.id.rsplit("#", 1)[-1]
        if self.cloudformation is None:
            return None, f"stack {stack}: no CloudFormation client"
        cfn = self.cloudformation()
        try:
            detail = self.retry.call("DescribeStackResource", lambda: cfn.describe_stack_resource(
                StackName=stack, LogicalResourceId=logical_id),
                check=lambda r: r["StackResourceDetail"]["LogicalResourceId"])["StackResourceDetail"]
        except PrincipalError as e:
            failure = f"{e.failure.code}: {e.failure.message}".rstrip(": ")
            return None, f"stack {stack}: DescribeStackResource {logical_id}: {failure}"
        physical = detail.get("PhysicalResourceId")
        if not physical:
            return None, f"stack {stack}: {logical_id} has no physical id ({detail.get('ResourceStatus')})"
        return physical, ""

    def from_state(self, p: Principal) -> tuple[str | None, str]:
        """(the ARN, "") or (None, why not)."""
        for key in (p.id, *p.aliases):
            arns = self.tfstate.lookup(key.rsplit("#", 1)[-1])
            if len(arns) == 1:
                return arns[0], ""
            if arns:
                return None, (f"{key} has {len(arns)} instances in {self.tfstate.file}; "
                              "pass each with --principal or map the one you mean")
        return None, f"{p.id} is not in the Terraform state {self.tfstate.file}"


def _norm(file: str) -> str:
    return Path(file).as_posix().removeprefix("./")
