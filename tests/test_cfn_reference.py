"""CloudFormation, CDK and SAM against a reference extraction, over ../shared/corpus.

The reference is AWS's own parser of identity policies, cfn-policy-validator (`IdentityParser` after its
template loader), run on each template (a SAM template after the SAM translator's own transform, offline,
as iamgate runs it). For every role the reference finds, the Allow actions (expanded with iamgate's
catalog) must equal iamgate's for the role of the same logical id. A difference is allowed only where
iamgate reports an unresolved value for that role (the reference guessed one), or in KNOWN with the
reason, or where the template has a Condition iamgate cannot decide (a parameter with no pinned value: iamgate
grants the union of the branches, the reference takes the default's) and iamgate grants a superset. The
reference parses every resource whatever its `Condition`; a role iamgate leaves out must have
a Condition that is false with the parameters' defaults. The reference is given the template's IAM resources
only (all its identity parser reads; the rest only costs time, and a Rain module or an `Fn::ForEach`
block elsewhere would make it reject the whole template). Templates it still cannot read are matched
against UNREADABLE.

The reference talks to AWS for managed policies, exports and SSM parameters. Here its clients are real
botocore clients whose `before-call` hook answers locally, the way `botocore.stub.Stubber` does, but by
operation instead of in a queued order: GetPolicy / GetPolicyVersion from iamgate's offline bundle of AWS
managed policies (a customer managed policy comes back empty: its document is not known here),
ListExports, GetParameter and GetRestApis with stand-ins. Any other operation fails the test; the endpoint
is 127.0.0.1 in any case. Where an intrinsic function defeats the reference (an attribute it does not
model, a missing export), its value becomes a placeholder string instead of losing the template: the
reference guesses, never about an action.
"""
from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace
from urllib.parse import quote

import pytest

pytest.importorskip("cfn_policy_validator")

ACCOUNT, REGION = "123456789012", "us-east-1"
GUESS = "reference-guess"
IAM_TYPES = ("AWS::IAM::", "AWS::SSO::")  # what the reference's identity parser reads; the rest only costs time

# A pattern of the reference's error -> why it cannot read such a template. The list stays exact.
UNREADABLE: dict[str, str] = {
    r"'AssumeRolePolicyDocument' is a required property": "an input for the ExecutionRoleBuilder macro, which "
                                                          "writes the trust policy at deploy time",
    r"^ParamValidationError: .*PolicyArn": "a managed policy ARN from a parameter without a default: the "
                                           "reference's stand-in is no ARN, so botocore refuses the lookup "
                                           "(iamgate notes the parameter)",
    r"is not of type 'object', Path: Resources\.\w+\.Properties\.Policies\.\d+\.PolicyDocument$":
        "a policy document written as a `!Sub` JSON string: CloudFormation takes it, the reference's schema "
        "wants an object (iamgate parses it)",
    r"does not match '\^\(\[\\\\w\+=,\.@-\]\+\)\$', Path: Resources\.\w+\.Properties\.RoleName":
        "a role name with Serverless Framework variables (`${opt:stage}`) in a resources file of serverless.yml",
}

# (corpus, file, role logical id) -> why the two extractions differ there. Empty: none do.
KNOWN: dict[tuple[str, str, str], str] = {}


def _why_unreadable(error: str) -> list[str]:
    return [k for k in UNREADABLE if re.search(k, error, re.DOTALL)]


def _ok(parsed):
    from botocore.awsrequest import AWSResponse
    return AWSResponse(None, 200, {}, None), parsed


def _remember(params, context, **_):
    context["api_params"] = dict(params)


def _answer(model, context, **_):
    from iamgate.reference.managed_policies import bundle
    params = context.get("api_params", {})
    if model.name == "GetPolicy":
        arn = params["PolicyArn"]
        return _ok({"Policy": {"PolicyName": arn.rsplit("/", 1)[-1], "Arn": arn, "Path": "/",
                               "DefaultVersionId": "v1"}})
    if model.name == "GetPolicyVersion":
        document = bundle().get(params["PolicyArn"]) or {"Version": "2012-10-17", "Statement": []}
        return _ok({"PolicyVersion": {"Document": quote(json.dumps(document)), "VersionId": "v1",
                                      "IsDefaultVersion": True}})
    if model.name == "ListExports":
        return _ok({"Exports": []})
    if model.name == "GetParameter":
        return _ok({"Parameter": {"Name": params["Name"], "Value": GUESS, "Type": "String", "Version": 1}})
    if model.name == "GetRestApis":
        return _ok({"items": []})
    raise AssertionError(f"the reference called AWS: {model.service_model.service_name} {model.name}")


@lru_cache(maxsize=None)
def _local_client(service: str):
    import botocore.session
    client = botocore.session.get_session().create_client(
        service, region_name=REGION, endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing", aws_secret_access_key="testing")
    client.meta.events.register("before-parameter-build.*.*", _remember)
    client.meta.events.register("before-call.*.*", _answer)
    return client


def _lenient(evaluator):
    from cfn_policy_validator.application_error import ApplicationError
    inner = evaluator.evaluate

    def evaluate(value, visited_nodes=None):
        try:
            return inner(value, visited_nodes=visited_nodes)
        except ApplicationError:
            return GUESS
    evaluator.evaluate = evaluate


@pytest.fixture(scope="module")
def reference(request):
    """The reference's parse function, with local AWS clients and lenient intrinsic functions."""
    from cfn_policy_validator import client
    from cfn_policy_validator.parsers.utils import arn_generator, node_evaluator
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.setattr(client, "build", lambda service, region, client_config=None: _local_client(service))
    # it reads its 240 KB table of ARN patterns (which it never changes) twice per template: read once
    arn_patterns = arn_generator.ArnGenerator(None).cfn_to_arn_map
    mp.setattr(arn_generator, "json", SimpleNamespace(load=lambda f: arn_patterns))
    init = node_evaluator.NodeEvaluator.__init__

    def lenient_init(self, *a, **kw):
        init(self, *a, **kw)
        for ev in self.evaluators.values():
            _lenient(ev)
    mp.setattr(node_evaluator.NodeEvaluator, "__init__", lenient_init)
    request.addfinalizer(mp.undo)
    return reference_roles


def _plain(node):
    """iamgate's loaded document as the JSON CloudFormation reads: `Fn::GetAtt: A.B` as a list, numbers in
    Mappings as strings, a policy document given as a JSON string as the object (CloudFormation accepts
    all three; the reference's schema does not)."""
    if isinstance(node, dict):
        out = {str(k): _plain(v) for k, v in node.items()}
        if isinstance(out.get("Fn::GetAtt"), str) and len(out) == 1:
            out["Fn::GetAtt"] = out["Fn::GetAtt"].split(".", 1)
        doc = out.get("PolicyDocument")
        if isinstance(doc, str) and doc.lstrip().startswith("{"):
            try:
                out["PolicyDocument"] = json.loads(doc)
            except ValueError:
                pass
        return out
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _parameters(doc: dict) -> dict:
    """Each parameter's default; a parameter without one gets a stand-in (iamgate notes it unresolved)."""
    out = {}
    for name, spec in (doc.get("Parameters") or {}).items():
        default = spec.get("Default") if isinstance(spec, dict) else None
        out[name] = GUESS if default is None else ",".join(map(str, default)) if isinstance(default, list) \
            else str(default)
    return out


def reference_roles(doc: dict) -> dict[str, list[dict]]:
    """Role logical id -> the policy documents the reference attaches to it."""
    from cfn_policy_validator.cfn_tools import cfn_loader
    from cfn_policy_validator.parsers.account_config import AccountConfig
    from cfn_policy_validator.parsers.identity import IdentityParser, RoleParser
    template = _plain({**doc, "Resources": {lid: r for lid, r in (doc.get("Resources") or {}).items()
                                            if isinstance(r, dict) and str(r.get("Type")).startswith(IAM_TYPES)}})
    if not template.get("Parameters"):
        template.pop("Parameters", None)
    for mapping in (template.get("Mappings") or {}).values():
        for top in mapping.values() if isinstance(mapping, dict) else []:
            for key, value in top.items() if isinstance(top, dict) else []:
                if isinstance(value, (int, float, bool)):
                    top[key] = str(value)
    config = AccountConfig("aws", REGION, ACCOUNT)
    loaded = cfn_loader.load(io.StringIO(json.dumps(template)), config, _parameters(template), True)
    IdentityParser.parse(loaded, config)
    return {lid: [p.Policy for p in role.Policies] for lid, role in RoleParser.roles.items()}


def reference_actions(documents, catalog) -> set:
    out: set = set()
    for doc in documents:
        statements = doc.get("Statement", []) if isinstance(doc, dict) else []
        for st in statements if isinstance(statements, list) else [statements]:
            if not isinstance(st, dict) or st.get("Effect") != "Allow":
                continue
            key = "NotAction" if "NotAction" in st else "Action"
            names = st.get(key, [])
            names = [n for n in ([names] if isinstance(names, str) else names) if isinstance(n, str)]
            out |= (catalog.expand_not_actions(names) if key == "NotAction" else catalog.expand_all(names)).actions
    return out


def iamgate_actions(principal, catalog) -> set:
    from iamgate.judge.grants import statement_actions
    return {a for pol in principal.policies for st in pol.statements if st.is_allow
            for a in statement_actions(st, catalog).actions}


@dataclass
class Agreement:
    templates: int = 0
    roles: int = 0
    equal: int = 0
    unresolved: list = field(default_factory=list)  # differences where iamgate notes an unresolved value
    known: list = field(default_factory=list)
    differ: list = field(default_factory=list)
    not_deployed: list = field(default_factory=list)  # roles whose Condition is false with the defaults
    missing: list = field(default_factory=list)
    unreadable: dict = field(default_factory=dict)  # file -> the reference's error
    seconds: float = 0.0

    @property
    def compared(self) -> int:
        return self.roles - len(self.not_deployed) - len(self.missing)

    def line(self, corpus: str) -> str:
        return (f"{corpus}: {self.compared} roles compared, {self.equal} equal, {len(self.unresolved)} differ only "
                f"where iamgate notes an unresolved value, {len(self.known)} reviewed; {len(self.not_deployed)} "
                f"not deployed with the defaults; the reference cannot read {len(self.unreadable)} of {self.templates} "
                f"templates; "
                f"{self.seconds:.1f} s")


_AGREEMENTS: dict[str, Agreement] = {}


def _agreement(corpus: str, scanned, parse, catalog) -> Agreement:
    if corpus not in _AGREEMENTS:
        _AGREEMENTS[corpus] = _compare(corpus, scanned(corpus), parse, catalog)
    return _AGREEMENTS[corpus]


def _compare(corpus: str, scanned, parse, catalog) -> Agreement:
    from iamgate.sources.cloudformation.evaluator import Template
    from iamgate.sources.cloudformation.sam_transform import translate
    from iamgate.sources.cloudformation.templates import is_template, transforms
    from iamgate.sources.cloudformation.sam import SAM_TRANSFORM
    start = time.perf_counter()
    ws, result = scanned.ws, scanned.result
    ours = {(p.location.file, p.id): p for p in result.principals if p.location}
    noted = {(u.location.file, u.principal_id) for u in result.unresolved}
    # an Fn::If over a parameter with no pinned value: iamgate grants the union of its branches (issue 19),
    # the reference the default's branch; iamgate must then grant a superset
    undecided = {u.location.file for u in result.unresolved if "cannot be decided statically" in u.message}
    out = Agreement()
    for path in ws.files:
        doc = ws.document(path)
        if not is_template(doc):
            continue
        rel = ws.rel(path)
        out.templates += 1
        try:
            if SAM_TRANSFORM not in transforms(doc):
                transformed = doc
            else:  # as the scan transformed it, or again where it could not
                transformed = scanned.translated(doc) or translate(doc, {})
            roles = parse(transformed)
        except Exception as e:  # noqa: BLE001 - the reference's own errors, matched against UNREADABLE
            out.unreadable[rel] = f"{type(e).__name__}: {e}"
            continue
        for lid, documents in roles.items():
            out.roles += 1
            principal = ours.get((rel, lid))
            if principal is None:
                res = transformed["Resources"].get(lid, {})
                cond = res.get("Condition") if isinstance(res, dict) else None
                gone = cond is not None and Template(doc).condition(str(cond)) is False
                (out.not_deployed if gone else out.missing).append((rel, lid))
                continue
            a, b = iamgate_actions(principal, catalog), reference_actions(documents, catalog)
            if a == b:
                out.equal += 1
            elif (rel, lid) in noted or (rel in undecided and a >= b):
                out.unresolved.append((rel, lid))
            elif (corpus, rel, lid) in KNOWN:
                out.known.append((rel, lid))
            else:
                out.differ.append((rel, lid, sorted(a - b)[:5], sorted(b - a)[:5]))
    out.seconds = scanned.seconds + time.perf_counter() - start
    return out


@pytest.mark.parametrize("corpus", ["cloudformation", "cdk", "sam"])
def test_every_role_agrees_with_the_reference_extraction(corpus, corpus_scan, reference, catalog):
    agreement = _agreement(corpus, corpus_scan, reference, catalog)
    print(agreement.line(corpus))
    for f, e in sorted(agreement.unreadable.items()):
        print(f"  the reference cannot read {f}: {e[:200]}")
    assert not agreement.missing, agreement.missing[:5]
    assert not agreement.differ, agreement.differ[:5]
    assert agreement.compared > 150 and agreement.equal >= 0.95 * agreement.compared
    unexplained = {f: e for f, e in agreement.unreadable.items() if not _why_unreadable(e)}
    assert not unexplained, unexplained
    assert len(agreement.unreadable) < 0.1 * agreement.templates


def test_the_reviewed_lists_are_exact(corpus_scan, reference, catalog):
    runs = {c: _agreement(c, corpus_scan, reference, catalog) for c in ("cloudformation", "cdk", "sam")}
    used = {k for a in runs.values() for e in a.unreadable.values() for k in _why_unreadable(e)}
    assert used == set(UNREADABLE)
    assert {(c, f, lid) for c, a in runs.items() for f, lid in a.known} == set(KNOWN)
