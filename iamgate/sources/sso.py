"""IAM Identity Center permission sets as principals, for CloudFormation and Terraform alike.

A permission set is provisioned into each assigned account as a role named `AWSReservedSSO_<name>_<hash>`
under the path `/aws-reserved/sso.amazonaws.com/`; that role's grant is the permission set's AWS managed
policies, its inline policy and its customer managed policy references (policies of that name and path
in each account), within its permissions boundary.
https://docs.aws.amazon.com/singlesignon/latest/userguide/permissionsetsconcept.html
https://docs.aws.amazon.com/singlesignon/latest/userguide/howtocmp.html
https://docs.aws.amazon.com/singlesignon/latest/userguide/referencingpermissionsets.html
"""
from __future__ import annotations

from ..model import Location
from .collector import Collector, Draft, name_pattern
from .policy_document import Unknown

PERMISSION_SET = "permission-set"
ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"


def permission_set(out: Collector, pid: str, name, file: str, line: int | None) -> Draft:
    """The principal of one permission set; its name matches the roles it becomes (`AWSReservedSSO_<name>_*`)."""
    if isinstance(name, Unknown):
        out.note(file, line, f"{pid}: permission set name cannot be resolved: {name.reason}", pid)
        known = name_pattern(name)
        pattern = f"AWSReservedSSO_{known}_*" if known else None
    else:
        pattern = f"AWSReservedSSO_{name}_*" if isinstance(name, str) and name else None
    return out.principal(pid, PERMISSION_SET, name=None, path=ROLE_PATH, location=Location(file, line),
                         name_pattern=pattern, aliases=[str(name)] if isinstance(name, str) and name else [])


def customer_managed_reference(out: Collector, pid: str, name, path, file: str, line: int | None) -> None:
    """A customer managed policy referenced by name: it is whatever policy of that name each account has,
    so iamgate cannot read its document: an unresolved grant."""
    label = f"{path if isinstance(path, str) and not isinstance(path, Unknown) else '/'}{name}"
    out.note(file, line, f"{pid}: customer managed policy reference {label} names a policy in each assigned "
                         "account; its document cannot be resolved", pid, grant=True)


def boundary(out: Collector, pid: str, file: str, line: int | None) -> None:
    out.note(file, line, f"{pid}: the permissions boundary is not applied; the grant is read without it", pid)
