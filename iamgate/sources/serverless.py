"""Serverless Framework services (`serverless.yml`): the Lambda roles the framework generates.

Detected by content (`service:` and `provider:`), never by running the framework. Variables are
resolved by `_serverless_vars`; the generated roles and `resources.Resources` are then read by
the CloudFormation extractor, so `Fn::GetAtt`/`Ref`/`Fn::Join` in statements work as in a template.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..model import SourceResult
from . import SOURCES, Workspace
from .cloudformation.templates import CloudFormationSource, join_results
from .collector import Collector
from .loaders import LDict, LList, LoadError, line_of
from .policy_document import Unknown
from .serverless_variables import Variables

DEFAULT_ROLE_ID = "IamRoleLambdaExecution"  # the logical id Serverless gives its shared role
PER_FUNCTION_PLUGIN = "serverless-iam-roles-per-function"
VPC_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
STREAM_ACTIONS = {  # what Serverless adds for stream and queue events (lib/plugins/aws/package/compile/events)
    "dynamodb": ["dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream",
                 "dynamodb:ListStreams"],
    "kinesis": ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream", "kinesis:ListStreams"],
    "sqs": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
}


def is_service(doc) -> bool:
    return isinstance(doc, dict) and "service" in doc and isinstance(doc.get("provider"), dict)


def looks_like_service_text(head: str) -> bool:
    return bool(re.search(r"^service\s*:", head, re.M) and re.search(r"^provider\s*:", head, re.M))


def _ldict(items: dict, line) -> LDict:
    out = LDict(items, line=line)
    for k in items:
        out.key_lines[k] = line
    return out


def _list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


@SOURCES.register
class ServerlessSource(CloudFormationSource):
    name = "serverless"
    priority = 45
    description = "Serverless Framework serverless.yml: the generated Lambda roles and resources.Resources"

    def collect(self, workspace: Workspace) -> SourceResult:
        results = []
        for path in workspace.unclaimed({".yml", ".yaml", ".json"}):
            out = self.collector(workspace)
            doc = workspace.document(path)
            file = workspace.rel(path)
            if isinstance(doc, LoadError):
                if path.stem.startswith("serverless") and looks_like_service_text(workspace.head(path)):
                    workspace.claim(path)
                    out.error(file, doc.line, doc.message)
                    results.append(out.result())
                continue
            if not is_service(doc):
                continue
            workspace.claim(path)
            with out.guard(file):
                self.service(doc, path, file, workspace, out)
            results.append(out.result())
        return join_results(results)

    def service(self, raw: dict, path: Path, file: str, workspace: Workspace, out: Collector) -> None:
        provider = raw["provider"]
        if provider.get("name", "aws") != "aws":
            return  # another cloud
        variables = Variables(raw, path.parent, workspace.roots or [path.parent.resolve()],
                              workspace.options.parameters)
        svc = _Service(self, raw, variables, file, out)
        doc = svc.cloudformation()
        if doc is None:
            return
        tpl = self.template(doc, workspace)
        self.extract(doc, file, workspace, out, tpl)
        for pid, aliases in svc.aliases.items():
            if pid in out.drafts:
                out.drafts[pid].aliases.extend(a for a in aliases if a not in out.drafts[pid].aliases)


class _Service:
    """One serverless.yml -> a CloudFormation document with the roles Serverless would generate."""

    def __init__(self, source: ServerlessSource, raw: dict, variables: Variables, file: str, out: Collector):
        self.source, self.raw, self.vars, self.file, self.out = source, raw, variables, file, out
        self.aliases: dict[str, list[str]] = {}

    def value(self, node, what: str, line=None):
        """Resolve variables; a value that stays unknown is noted where it is."""
        resolved = self.vars.resolve(node)
        if isinstance(resolved, Unknown):
            self.out.note(self.file, line_of(node, line), f"{what} cannot be resolved: {resolved.reason}")
        return resolved

    def text(self, node, what: str, line=None) -> str | None:
        v = self.value(node, what, line)
        return v if isinstance(v, str) else None

    def cloudformation(self):
        raw = self.raw
        service = raw.get("service")
        service = service.get("name") if isinstance(service, dict) else service
        self.service_name = self.text(service, "service", line_of(raw)) or "${service}"
        self.stage = self.vars.stage if isinstance(self.vars.stage, str) else "${sls:stage}"
        self.region = self.vars.region if isinstance(self.vars.region, str) else "${aws:region}"
        self.provider = raw["provider"]
        resources = self.resources()
        functions = raw.get("functions") if isinstance(raw.get("functions"), dict) else {}
        self.plugins = {p for p in _list(self.vars.resolve(raw.get("plugins"))) if isinstance(p, str)}
        if isinstance(raw.get("plugins"), dict):  # the long form: {modules: [...]}
            self.plugins |= {p for p in _list(raw["plugins"].get("modules")) if isinstance(p, str)}
        generated: dict = {}
        shared_users = []
        for fname, fn in functions.items():
            if not isinstance(fn, dict):
                continue
            if self.per_function_role(str(fname), fn, generated):
                continue
            if fn.get("role") is None:
                shared_users.append((str(fname), fn))
        if shared_users:
            self.default_role(shared_users, generated)
        for lid, res in generated.items():
            if lid in resources:
                self.out.note(self.file, line_of(resources[lid]), f"resources.Resources.{lid} overrides the "
                                                                  "role Serverless generates; read as written")
                continue
            resources[lid] = res
        doc = LDict(line=line_of(raw))
        doc["Resources"] = resources
        extra = raw.get("resources") if isinstance(raw.get("resources"), dict) else {}
        for key in ("Conditions", "Parameters", "Mappings"):
            if isinstance(extra.get(key), dict):
                doc[key] = self.vars.resolve(extra[key])
        return doc

    def resources(self) -> LDict:
        """`resources.Resources`, which may also be a list of fragments (often `${file(...)}`)."""
        merged = LDict(line=line_of(self.raw.get("resources")))
        for fragment in _list(self.raw.get("resources")):
            fragment = self.vars.resolve(fragment)
            if isinstance(fragment, Unknown):
                self.out.note(self.file, line_of(self.raw.get("resources")),
                              f"resources cannot be resolved: {fragment.reason}")
                continue
            res = fragment.get("Resources") if isinstance(fragment, dict) else None
            if not isinstance(res, dict):
                continue
            for lid, resource in res.items():
                line = getattr(res, "key_lines", {}).get(lid, line_of(res))
                if isinstance(resource, Unknown):
                    self.out.note(self.file, line, f"resource {lid} cannot be resolved: {resource.reason}")
                    continue
                merged[lid] = resource
                merged.key_lines[lid] = line
        return merged

    # -- the shared role -------------------------------------------------------
    def iam(self):
        iam = self.provider.get("iam")
        return iam if isinstance(iam, dict) else {}

    def resolved_list(self, node, what: str) -> list:
        """Variables resolved; each value left unknown (`${ssm:...}`, `${env:...}`) is noted at its line."""
        resolved = self.vars.resolve(node)
        if isinstance(resolved, Unknown):
            self.out.note(self.file, line_of(node), f"{what} cannot be resolved: {resolved.reason}")
            return []
        items = _list(resolved)
        for item in items:
            self.note_unknowns(item, what, line_of(item, line_of(node)))
        return items

    def note_unknowns(self, node, what: str, line) -> None:
        if isinstance(node, Unknown):
            self.out.note(self.file, line, f"{what}: {node.text} cannot be resolved: {node.reason}")
        elif isinstance(node, dict):
            for k, v in node.items():
                self.note_unknowns(v, what, getattr(node, "key_lines", {}).get(k, line))
        elif isinstance(node, list):
            for v in node:
                self.note_unknowns(v, what, line_of(v, line))

    def provider_statements(self) -> list:
        role = self.iam().get("role")
        statements = role.get("statements") if isinstance(role, dict) else None
        return (self.resolved_list(statements, "provider.iam.role.statements")
                + self.resolved_list(self.provider.get("iamRoleStatements"), "provider.iamRoleStatements"))

    def provider_managed(self) -> list:
        role = self.iam().get("role")
        managed = role.get("managedPolicies") if isinstance(role, dict) else None
        return (self.resolved_list(managed, "provider.iam.role.managedPolicies")
                + self.resolved_list(self.provider.get("iamManagedPolicies"), "provider.iamManagedPolicies"))

    def default_role(self, functions: list, generated: dict) -> None:
        role = self.iam().get("role", self.provider.get("role"))
        line = line_of(self.iam(), line_of(self.provider))
        if role is not None and not isinstance(role, dict):
            if self.provider_statements() or self.provider_managed():
                self.out.note(self.file, line, "provider.iam.role names an existing role, so Serverless applies "
                                               "no statements or managed policies from provider; they are not read")
            return  # a role given by ARN or logical id: Serverless generates none
        role = role or {}
        name = self.text(role.get("name"), "provider.iam.role.name", line) if "name" in role else None
        name = name or f"{self.service_name}-{self.stage}-{self.region}-lambdaRole"
        statements = self.log_statements(f"{self.service_name}-{self.stage}*", line)
        statements += self.provider_statements()
        managed = self.provider_managed()
        for fname, fn in functions:
            statements += self.event_statements(fname, fn)
        if self.provider.get("vpc") or any(fn.get("vpc") for _, fn in functions):
            managed.append(VPC_POLICY)
        props = {"RoleName": name, "Policies": LList([_ldict({
            "PolicyName": f"{self.stage}-{self.service_name}-lambda",
            "PolicyDocument": _ldict({"Version": "2012-10-17", "Statement": LList(statements, line=line)}, line),
        }, line)], line=line), "ManagedPolicyArns": LList(managed, line=line)}
        if isinstance(role.get("path"), str):
            props["Path"] = role["path"]
        generated[DEFAULT_ROLE_ID] = _ldict({"Type": "AWS::IAM::Role", "Properties": _ldict(props, line)}, line)
        self.aliases[DEFAULT_ROLE_ID] = [f"{self.service_name}:{f}" for f, _ in functions]

    def log_statements(self, log_prefix: str, line) -> list:
        # Serverless's template for the execution role (lib/plugins/aws/package/lib/merge-iam-templates.js)
        group = f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/lambda/{log_prefix}"
        return [
            _ldict({"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:CreateLogGroup", "logs:TagResource"],
                    "Resource": [{"Fn::Sub": group + ":*"}]}, line),
            _ldict({"Effect": "Allow", "Action": ["logs:PutLogEvents"],
                    "Resource": [{"Fn::Sub": group + ":*:*"}]}, line),
        ]

    def event_statements(self, fname: str, fn: dict) -> list:
        """Stream and queue events add read permissions on their source to the function's role."""
        out = []
        for event in _list(fn.get("events")):
            if not isinstance(event, dict) or len(event) != 1:
                continue
            (kind, spec), = event.items()
            if kind not in ("stream", "sqs"):
                continue
            spec = self.vars.resolve(spec)
            arn = spec.get("arn") if isinstance(spec, dict) else spec
            service = "sqs" if kind == "sqs" else (spec.get("type") if isinstance(spec, dict) else None)
            if service is None and isinstance(arn, str):
                service = "kinesis" if ":kinesis:" in arn else "dynamodb" if ":dynamodb:" in arn else None
            if service not in STREAM_ACTIONS or arn is None:
                continue
            out.append(_ldict({"Effect": "Allow", "Action": STREAM_ACTIONS[service], "Resource": [arn]},
                              line_of(event, line_of(fn))))
        return out

    # -- serverless-iam-roles-per-function ---------------------------------------
    def per_function_role(self, fname: str, fn: dict, generated: dict) -> bool:
        if "iamRoleStatements" not in fn:
            return False
        line = line_of(fn)
        if PER_FUNCTION_PLUGIN not in self.plugins:
            self.out.note(self.file, line, f"function {fname}: iamRoleStatements needs the {PER_FUNCTION_PLUGIN} "
                                           "plugin, which this service does not load; ignored")
            return False
        statements = self.log_statements(f"{self.service_name}-{self.stage}-{fname}", line)
        statements += self.resolved_list(fn.get("iamRoleStatements"), f"function {fname}: iamRoleStatements")
        statements += self.event_statements(fname, fn)
        managed = []
        if self.vars.resolve(fn.get("iamRoleStatementsInherit")) in (True, "true"):
            statements += self.provider_statements()
            managed += self.provider_managed()
        if self.provider.get("vpc") or fn.get("vpc"):
            managed.append(VPC_POLICY)
        name = self.text(fn["iamRoleStatementsName"], f"{fname}.iamRoleStatementsName", line) \
            if "iamRoleStatementsName" in fn else None
        name = name or f"{self.service_name}-{self.stage}-{fname}-{self.region}-lambdaRole"
        lid = _normalized(fname) + DEFAULT_ROLE_ID
        props = {"RoleName": name, "ManagedPolicyArns": LList(managed, line=line), "Policies": LList([_ldict({
            "PolicyName": f"{self.stage}-{self.service_name}-{fname}-lambda",
            "PolicyDocument": _ldict({"Version": "2012-10-17", "Statement": LList(statements, line=line)}, line),
        }, line)], line=line)}
        generated[lid] = _ldict({"Type": "AWS::IAM::Role", "Properties": _ldict(props, line)}, line)
        self.aliases[lid] = [f"{self.service_name}:{fname}"]
        return True


def _normalized(name: str) -> str:
    """Serverless's `normalizeName`: `my-fn_x` -> `MyDashfnUnderscorex`."""
    name = name.replace("-", "Dash").replace("_", "Underscore")
    return name[:1].upper() + name[1:]

