"""Terraform's `aws_ssoadmin_*` resources -> permission-set principals (see iamgate/sources/sso.py).

https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ssoadmin_permission_set and the
`ssoadmin_managed_policy_attachment`, `ssoadmin_permission_set_inline_policy`,
`ssoadmin_customer_managed_policy_attachment` and `ssoadmin_permissions_boundary_attachment` pages beside it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...model import Policy, Location
from .. import sso
from ..collector import aws_managed_in_any_partition
from ..loaders import line_of
from ..policy_document import Unknown
from .values import origin_of

if TYPE_CHECKING:
    from .iam import IamBuilder, TfResource

PERMISSION_SET_TYPE = "aws_ssoadmin_permission_set"
MANAGED = "aws_ssoadmin_managed_policy_attachment"
INLINE = "aws_ssoadmin_permission_set_inline_policy"
CUSTOMER = "aws_ssoadmin_customer_managed_policy_attachment"
BOUNDARY = "aws_ssoadmin_permissions_boundary_attachment"
SSO_TYPES = {PERMISSION_SET_TYPE, MANAGED, INLINE, CUSTOMER, BOUNDARY}


def build(b: "IamBuilder") -> None:
    for r in b.of_type(PERMISSION_SET_TYPE):
        sso.permission_set(b.out, r.address, r.values.get("name"), r.file, r.line)
        b.principal_res[r.address] = r
    for r in b.of_type(MANAGED):
        pid = _target(b, r)
        if pid is None:
            continue
        ref = aws_managed_in_any_partition(r.values.get("managed_policy_arn")) or r.values.get("managed_policy_arn")
        if isinstance(ref, str) and not isinstance(ref, Unknown):
            pol = b.out.managed_policy(str(ref), r.file, r.line, pid)
            if pol is not None:
                b.out.drafts[pid].policies.append(pol)
        else:
            why = ref.reason if isinstance(ref, Unknown) else "it is not a string"
            b.out.note(r.file, b.line_of(r, "managed_policy_arn"),
                       f"{r.address}: managed_policy_arn cannot be resolved: {why}", pid, grant=True)
            b.out.drafts[pid].policies.append(Policy(name="unresolved policy ARN", location=Location(r.file, r.line)))
    for r in b.of_type(INLINE):
        pid = _target(b, r)
        if pid is not None:
            b.add_policy(pid, "inline_policy", r.values.get("inline_policy"), r, r.line)
    for r in b.of_type(CUSTOMER):
        pid = _target(b, r)
        for ref in _blocks(r.values.get("customer_managed_policy_reference")) if pid else []:
            sso.customer_managed_reference(b.out, pid, ref.get("name"), ref.get("path"), r.file, line_of(ref, r.line))
    for r in b.of_type(BOUNDARY):
        pid = _target(b, r)
        if pid is not None:
            sso.boundary(b.out, pid, r.file, r.line)


def _blocks(value) -> list[dict]:
    items = value if isinstance(value, list) else [value]
    return [x for x in items if isinstance(x, dict)]


def _target(b: "IamBuilder", r: "TfResource") -> str | None:
    """The permission set a `permission_set_arn` names: one in this configuration, else one outside it."""
    value = r.values.get("permission_set_arn")
    origin = origin_of(value)
    if origin:
        pid = b.by_origin(origin, {PERMISSION_SET_TYPE}, r)
        if pid:
            return pid
    if isinstance(value, str) and not isinstance(value, Unknown) and value:
        pid = f"{sso.PERMISSION_SET}/{value.rsplit('/', 1)[-1]}"
        b.out.principal(pid, sso.PERMISSION_SET, location=Location(r.file, r.line), aliases=[value])
        return pid
    why = value.reason if isinstance(value, Unknown) else "it is null"
    b.out.note(r.file, b.line_of(r, "permission_set_arn"), f"{r.address}: permission_set_arn cannot be resolved: "
                                                           f"{why}; its policies are not linked to any permission set")
    return None
