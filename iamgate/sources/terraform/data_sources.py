"""Data sources iamgate answers without AWS: `data "aws_iam_policy"` naming an AWS managed policy.

https://registry.terraform.io/providers/hashicorp/aws/latest/docs/data-sources/iam_policy: looked up by
`arn`, or by `name` (and `path_prefix`) among the policies the account sees, AWS managed ones included.
"""
from __future__ import annotations

from ...reference.managed_policies import aws_managed_arn
from ..policy_document import Unknown


def aws_iam_policy_arn(inst, line):
    """`data.aws_iam_policy.x.arn`: the `arn` given, or the ARN of the AWS managed policy of that `name` in
    iamgate's bundle. A name the bundle lacks (a customer managed policy) stays unknown: its grant is not known."""
    attrs = inst.block.body.attrs
    value = inst.attr("arn") if "arn" in attrs else inst.attr("name") if "name" in attrs else None
    if isinstance(value, str) and not isinstance(value, Unknown):
        arn = value if "arn" in attrs else aws_managed_arn(value)
        if arn:
            return arn
    what = f"{inst.address}.arn"
    return Unknown(f"{what} is looked up at apply time (not an AWS managed policy iamgate knows)",
                   "${" + what + "}", line)
