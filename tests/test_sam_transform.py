"""SAM roles against aws-sam-translator's own transform, run offline.

Every role the transform generates is found, at a line of the SAM resource it comes from, with the
same Allow actions and AWS managed policies.
"""
from __future__ import annotations

import pytest

from conftest import FIXTURES, corpus_path
from iamgate.sources import Workspace, scan
from iamgate.sources.cloudformation.sam_transform import transform_roles
from iamgate.sources.cloudformation.templates import is_template, transforms
from iamgate.sources.cloudformation import sam as sam_source
from iamgate.sources.cloudformation.sam import SAM_TRANSFORM


def _names(value) -> set | None:
    """Action names in a statement's Action (None when an intrinsic decides them)."""
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) for v in values):
        return None
    return {v.lower() for v in values}


def _managed(arn) -> str | None:
    text = arn if isinstance(arn, str) else arn.get("Fn::Sub") if isinstance(arn, dict) else None
    return "managed:" + text.split(":policy/", 1)[1].lower() if isinstance(text, str) and ":policy/" in text else None


def transform_grants(lid: str, resources: dict) -> set | None:
    """A generated role's Allow actions: its own policies and the generated policies that name it."""
    props = resources[lid].get("Properties") or {}
    out: set = set()
    for arn in props.get("ManagedPolicyArns") or []:
        name = _managed(arn)
        if name is None:
            return None
        out.add(name)
    documents = [p.get("PolicyDocument") if isinstance(p, dict) else None for p in props.get("Policies") or []]
    documents += [r["Properties"].get("PolicyDocument") for r in resources.values()
                  if r.get("Type") != "AWS::IAM::Role" and {"Ref": lid} in (r.get("Properties") or {}).get("Roles", [])]
    for doc in documents:
        statements = doc.get("Statement") if isinstance(doc, dict) else None
        for st in statements if isinstance(statements, list) else [statements]:
            if not isinstance(st, dict):
                return None
            if st.get("Effect") != "Allow":
                continue
            names = _names(st.get("Action"))
            if names is None:
                return None
            out |= names
    return out


def iamgate_grants(principal) -> set:
    out: set = set()
    for pol in principal.policies:
        if pol.managed_arn:
            out.add("managed:" + pol.managed_arn.split(":policy/", 1)[1].lower())
            continue
        out |= {a.lower() for s in pol.statements if s.is_allow for a in s.actions}
    return out


def compare(root):
    ws = Workspace([str(root)], base=str(root))
    by_doc: dict = {}  # id(template) -> (template, the transform the scan ran on it): half the time

    def recorded(doc, parameters):
        assert parameters == {}
        by_doc[id(doc)] = (doc, transform_roles(doc, parameters))  # held: its id stays its own
        return by_doc[id(doc)][1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sam_source, "transform_roles", recorded)
        result = scan(ws, only=["sam"])
    by_file: dict = {}
    for p in result.principals:
        by_file.setdefault(p.location.file, {})[p.id] = p
    rows = []
    for f in ws.files:
        doc = ws.document(f)
        if not (is_template(doc) and SAM_TRANSFORM in transforms(doc)):
            continue
        rel = ws.rel(f)
        held, transformed = by_doc.get(id(doc), (None, None))
        if held is not doc:
            transformed = transform_roles(doc, {})
        assert transformed.error is None, (rel, transformed.error)
        for lid in transformed.roles:
            ours = by_file.get(rel, {}).get(lid)
            rows.append((rel, lid, transform_grants(lid, transformed.resources), iamgate_grants(ours) if ours else None,
                         ours))
    return rows


def test_graphql_data_sources_and_schedule_v2_roles_come_from_the_transform():
    rows = {lid: (theirs, ours, p) for _, lid, theirs, ours, p in compare(FIXTURES / "sam" / "transform")}
    assert set(rows) == {"NotesApiCloudWatchRole", "NotesApiNotesTableDynamoDBDataSourceRole",
                         "NotesApiRelayLambdaDataSourceRole", "WorkerFunctionRole", "WorkerFunctionNightlyRole"}
    for lid, (theirs, ours, p) in rows.items():
        assert ours == theirs, lid
    dynamo = rows["NotesApiNotesTableDynamoDBDataSourceRole"][2]
    assert dynamo.location.line == 21  # the data source entry, not only the API
    assert dynamo.aliases == ("NotesApi",)
    assert {"dynamodb:getitem", "dynamodb:putitem", "dynamodb:query"} <= rows[dynamo.id][1]
    assert rows["NotesApiRelayLambdaDataSourceRole"][1] == {"lambda:invokefunction", "lambda:invokeasync"}
    assert rows["NotesApiRelayLambdaDataSourceRole"][2].location.line == 25
    assert rows["WorkerFunctionNightlyRole"][2].location.line == 47  # the ScheduleV2 event


def test_every_transform_role_of_the_corpus_is_found_with_equal_actions():
    rows = compare(corpus_path("sam"))
    missing = [(f, lid) for f, lid, _, ours, _ in rows if ours is None]
    comparable = [(f, lid, t, o) for f, lid, t, o, _ in rows if t is not None and o is not None]
    differ = [(f, lid, sorted(t ^ o)[:6]) for f, lid, t, o in comparable if t != o]
    for d in differ:
        print(d)
    print(f"{len(rows)} roles from the transform; {len(comparable) - len(differ)} of {len(comparable)} "
          f"comparable roles agree; missing {len(missing)}")
    assert len(rows) > 450 and not missing
    assert not differ


FUNCTION = ("  Fn:\n"
            "    Type: AWS::Serverless::Function\n"
            "    Properties: {Runtime: python3.12, Handler: app.handler, CodeUri: src/}\n")


def scan_template(tmp_path, resources: str):
    (tmp_path / "template.yaml").write_text("Transform: AWS::Serverless-2016-10-31\nResources:\n" + resources)
    return scan(Workspace([str(tmp_path)], base=str(tmp_path)), only=["sam"])


def test_a_template_the_transform_rejects_is_noted_and_its_functions_still_read(tmp_path):
    result = scan_template(
        tmp_path,
        FUNCTION +
        "  Api:\n"
        "    Type: AWS::Serverless::Api\n"
        "    Properties: {}\n")
    assert [p.id for p in result.principals] == ["FnRole"]
    (note,) = [u for u in result.unresolved if "rejects this template" in u.message]
    assert str(note.location) == "template.yaml:1" and "Missing required property 'StageName'" in note.message


def test_the_cli_stays_quiet_about_the_translator(tmp_path):
    from conftest import run_cli
    proc = run_cli("check", str(FIXTURES / "sam" / "transform"), "--fail-on", "never",
                   env={"AWS_EC2_METADATA_DISABLED": "true"})
    assert proc.returncode == 0, proc.stderr
    assert "metrics" not in proc.stderr and "Feature Toggle" not in proc.stderr
    assert "NotesApiNotesTableDynamoDBDataSourceRole" in proc.stdout


def test_the_transform_never_calls_aws(tmp_path, monkeypatch):
    import boto3

    def no_client(*a, **kw):
        raise AssertionError("the SAM transform created an AWS client")
    monkeypatch.setattr(boto3, "client", no_client)
    monkeypatch.setattr(boto3.session.Session, "client", no_client)
    result = scan_template(
        tmp_path,
        "  Shared:\n"
        "    Type: AWS::Serverless::Application\n"
        "    Properties:\n"
        "      Location:\n"
        "        ApplicationId: arn:aws:serverlessrepo:us-east-1:111122223333:applications/shared\n"
        "        SemanticVersion: 1.0.0\n" + FUNCTION)
    assert [p.id for p in result.principals] == ["FnRole"]
    assert not [u for u in result.unresolved if "rejects" in u.message]
