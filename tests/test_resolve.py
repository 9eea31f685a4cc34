"""Principal -> deployed ARN: fixed names with the account from STS, the config mapping, CloudFormation
stacks (DescribeStackResource) and Terraform state, against a moto server with real roles and stacks."""
from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.aws.helpers import ACCOUNT, aws_env, moto_server
from iamgate.usage.aws_clients import Clients
from iamgate.model import Location, Principal
from iamgate.usage.principal_arns import Resolver, StateError, TerraformState
from iamgate.sources import Workspace, scan

FIX = Path(__file__).parent / "fixtures" / "aws"
TEMPLATE = FIX / "app" / "template.yaml"


@pytest.fixture(scope="module")
def server():
    with moto_server() as url:
        yield url


@pytest.fixture
def clients(server, monkeypatch):
    aws_env(monkeypatch, server)
    return Clients("us-east-1")


@pytest.fixture(scope="module")
def stack(server):
    """The fixture template deployed as a real stack in moto (its roles are created in moto's IAM)."""
    import boto3
    kw = dict(endpoint_url=server, region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing")
    boto3.client("iam", **kw).create_policy(PolicyName="team-boundary", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", '
        '"Resource": "*"}]}'))
    boto3.client("cloudformation", **kw).create_stack(StackName="orders-prod", TemplateBody=TEMPLATE.read_text(),
                                                      Capabilities=["CAPABILITY_NAMED_IAM"])
    return "orders-prod"


def scanned():
    return {p.id: p for p in scan(Workspace([str(TEMPLATE)], base=str(FIX.parents[2]))).principals}


def resolver(clients, **kw):
    return Resolver(clients.identity, lambda: clients.client("cloudformation"), **kw)


def test_fixed_name_and_stack_lookup(clients, stack):
    principals = scanned()
    rel = "tests/fixtures/aws/app/template.yaml"
    assert principals["IngestRole"].location.file == rel
    res = resolver(clients, stacks={rel: stack}).resolve(principals.values())
    by_id = {t.principal_id: t for t in res.targets}
    assert by_id["IngestRole"].arn == f"arn:aws:iam::{ACCOUNT}:role/service/orders-ingest"
    assert by_id["IngestRole"].how == "fixed name"
    worker = by_id["WorkerRole"]
    assert worker.how == "CloudFormation stack orders-prod"
    # the physical name moto gave the role, and that role really exists there
    name = worker.arn.rsplit("/", 1)[-1]
    assert name.startswith("orders-prod-WorkerRole-")
    assert clients.client("iam").get_role(RoleName=name)["Role"]["Arn"] == worker.arn
    assert [(u.principal_id, u.location) for u in res.unresolved] == [("Readers", Location(rel, 43))]
    assert "a group makes no calls of its own" in res.unresolved[0].reason


def test_unmapped_template_and_unknown_stack_give_reasons(clients, stack):
    principals = scanned()
    res = resolver(clients).resolve([principals["WorkerRole"]])
    assert not res.targets
    assert "the code fixes no name" in res.unresolved[0].reason and "`stacks:`" in res.unresolved[0].reason
    res = resolver(clients, stacks={"tests/fixtures/aws/app/template.yaml": "no-such-stack"}).resolve(
        [principals["WorkerRole"]])
    assert "stack no-such-stack: DescribeStackResource WorkerRole:" in res.unresolved[0].reason


def test_config_mapping_and_explicit_principals(clients):
    p = Principal(id="ApiRole", kind="role", location=Location("app.yaml", 3))
    res = resolver(clients, mapping={"ApiRole": "api-prod"}).resolve(
        [p], explicit=[f"arn:aws:iam::{ACCOUNT}:user/ci-bot"])
    assert [(t.arn, t.how) for t in res.targets] == [
        (f"arn:aws:iam::{ACCOUNT}:user/ci-bot", "--principal"),
        (f"arn:aws:iam::{ACCOUNT}:role/api-prod", "config mapping ApiRole")]
    res = resolver(clients, mapping={"ApiRole": "arn:aws:s3:::bucket"}).resolve([p])
    assert "not an IAM role or user ARN" in res.unresolved[0].reason


def test_arn_placeholders_in_code_take_the_account_from_sts(clients):
    p = Principal(id="R", kind="role", arn="arn:${AWS::Partition}:iam::${AWS::AccountId}:role/x/named")
    assert resolver(clients).resolve([p]).targets[0].arn == f"arn:aws:iam::{ACCOUNT}:role/x/named"


@pytest.mark.parametrize("state_file", ["show.json", "terraform.tfstate"])
def test_terraform_state(clients, state_file):
    state = TerraformState.load(str(FIX / "tf" / state_file))
    assert state.lookup("module.jobs.aws_iam_role.runner") == [f"arn:aws:iam::{ACCOUNT}:role/jobs/runner"]
    assert "data.aws_iam_role.other" not in state.arns
    principals = {p.id: p for p in scan(Workspace([str(FIX / "tf")])).principals}
    res = resolver(clients, tfstate=state).resolve(principals.values())
    assert sorted((t.principal_id, t.arn.rsplit("/", 1)[-1]) for t in res.targets) == [
        ("aws_iam_role.api", "terraform-20261101120000000000000001"),
        ("aws_iam_role.worker[0]", "worker-20261101120000000000000002"),
        ("aws_iam_role.worker[1]", "worker-20261101120000000000000003")]
    assert all(t.how == f"Terraform state {state.file}" for t in res.targets) and not res.unresolved
    whole = Principal(id="aws_iam_role.worker", kind="role", name="worker-", name_is_prefix=True)
    (worker,) = resolver(clients, tfstate=state).resolve([whole]).unresolved
    assert "has 2 instances" in worker.reason
    missing = Principal(id="aws_iam_role.gone", kind="role")
    assert "is not in the Terraform state" in resolver(clients, tfstate=state).resolve([missing]).unresolved[0].reason


def test_bad_state_files_are_located_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"values": \n  nope}')
    with pytest.raises(StateError, match=r"bad.json:2: invalid JSON"):
        TerraformState.load(str(bad))
    bad.write_text('{"something": 1}')
    with pytest.raises(StateError, match="neither"):
        TerraformState.load(str(bad))
    with pytest.raises(StateError, match="cannot read"):
        TerraformState.load(str(tmp_path / "missing.json"))


class _Flaky:
    """The real CloudFormation client, whose first `drops` DescribeStackResource calls lose the connection."""

    def __init__(self, client, drops: int):
        self.client, self.drops = client, drops

    def describe_stack_resource(self, **kw):
        if self.drops:
            self.drops -= 1
            from botocore.exceptions import ConnectionClosedError
            raise ConnectionClosedError(endpoint_url="http://127.0.0.1/")
        return self.client.describe_stack_resource(**kw)


def test_a_dropped_connection_on_describe_stack_resource_is_retried_then_fails_that_principal_only(
        clients, stack):
    """Judged per call (iamgate.usage.aws_errors): a transient failure is retried; once the retries are
    used up only that principal is not resolved: the run (the other principals) goes on."""
    from fixtures.aws.helpers import FakeClock
    from iamgate.usage.aws_errors import Retry
    principals = scanned()
    rel = "tests/fixtures/aws/app/template.yaml"
    cfn = _Flaky(clients.client("cloudformation"), drops=2)
    res = Resolver(clients.identity, lambda: cfn, stacks={rel: stack}, retry=Retry(FakeClock())).resolve(
        [principals["WorkerRole"]])
    assert [t.how for t in res.targets] == ["CloudFormation stack orders-prod"]
    cfn.drops = 99
    res = Resolver(clients.identity, lambda: cfn, stacks={rel: stack}, retry=Retry(FakeClock())).resolve(
        [principals["WorkerRole"], principals["IngestRole"]])
    assert [t.principal_id for t in res.targets] == ["IngestRole"]
    assert "stack orders-prod: DescribeStackResource WorkerRole: ConnectionClosedError" in res.unresolved[0].reason
