"""CloudFormation templates (JSON and YAML): IAM roles, users, groups and their policies."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ...model import Location, SourceResult
from .. import DOC_SUFFIXES, SOURCES, Source, Workspace
from ..collector import Collector, name_pattern
from ..loaders import line_of
from .. import sso
from ..policy_document import Unknown
from .evaluator import ResourceRef, Template

PRINCIPAL_TYPES = {"AWS::IAM::Role": ("role", "RoleName"), "AWS::IAM::User": ("user", "UserName"),
                   "AWS::IAM::Group": ("group", "GroupName")}
ATTACH_KEYS = {"Roles": "role", "Users": "user", "Groups": "group"}
INLINE_POLICY_TYPES = {"AWS::IAM::RolePolicy": ("role", "RoleName"), "AWS::IAM::UserPolicy": ("user", "UserName"),
                       "AWS::IAM::GroupPolicy": ("group", "GroupName")}


def is_template(doc) -> bool:
    if not isinstance(doc, dict):
        return False
    resources = doc.get("Resources")
    if isinstance(resources, dict) and any(
            (isinstance(r, dict) and isinstance(r.get("Type"), str)) or str(k).startswith("Fn::ForEach::")
            for k, r in resources.items()):
        return True
    return "AWSTemplateFormatVersion" in doc


def looks_like_template_text(head: str) -> bool:
    return "AWSTemplateFormatVersion" in head or ("Resources" in head and "AWS::" in head)


def transforms(doc) -> list[str]:
    t = doc.get("Transform")
    items = t if isinstance(t, list) else [t]
    return [x for x in items if isinstance(x, str)]


@SOURCES.register
class CloudFormationSource(Source):
    name = "cloudformation"
    priority = 50
    description = "CloudFormation templates, JSON or YAML"
    template_class: ClassVar[type[Template]] = Template

    def collect(self, workspace: Workspace) -> SourceResult:
        results = []
        for path in workspace.unclaimed(DOC_SUFFIXES):
            out = self.collector(workspace)  # one per file: logical ids repeat across templates
            doc = self.read(workspace, path, out)
            if doc is not None:
                with out.guard(workspace.rel(path)):
                    self.extract(doc, workspace.rel(path), workspace, out)
            results.append(out.result())
        return join_results(results)

    def collector(self, workspace: Workspace) -> Collector:
        return Collector(self.name, workspace.options.managed_policy_dir)

    def read(self, workspace: Workspace, path: Path, out: Collector):
        return workspace.read_claimed(path, self.accepts, looks_like_template_text, out.error)

    def accepts(self, doc) -> bool:
        return is_template(doc)

    # -- extraction ----------------------------------------------------------
    def extract(self, doc, file: str, workspace: Workspace, out: Collector, template: Template | None = None):
        resources = doc.get("Resources")
        if not isinstance(resources, dict):
            if "Resources" in doc:
                out.error(file, line_of(doc), "Resources must be a mapping")
            return
        tpl = template or self.template(doc, workspace)
        extractor = _Extractor(self, tpl, file, out)
        extractor.run()
        for note in tpl.union_notes:
            out.note(file, note.line, note.reason)
        unevaluated_transforms(doc, file, out)
        return tpl

    def template(self, doc, workspace: Workspace) -> Template:
        tpl = self.template_class(doc, workspace.options.parameters)
        tpl.name_of = lambda lid, attr: _name_of(tpl, lid, attr)
        return tpl

    def extra_resource(self, ex: "_Extractor", lid: str, rtype: str, props: dict, line: int | None) -> None:
        """Hook for sources that extend CloudFormation (SAM, CDK) to handle more resource types."""


# The template-level transforms iamgate evaluates: the SAM transform (aws-sam-translator) and
# AWS::LanguageExtensions (Fn::ForEach, Fn::Length, ... in the evaluator). Any other (a macro, AWS::Include)
# rewrites the template at deploy time: it can add or change any role, so nothing in the template is vouched for.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/transform-section-structure.html
EVALUATED_TRANSFORMS = ("AWS::Serverless-2016-10-31", "AWS::LanguageExtensions")


def unevaluated_transforms(doc, file: str, out: Collector) -> None:
    """Every principal of a template with a macro or `AWS::Include` transform is an unresolved grant."""
    if "Transform" not in doc:
        return
    raw = doc.get("Transform")
    line = doc.line_of("Transform") if hasattr(doc, "line_of") else line_of(doc)
    names = []
    for item in raw if isinstance(raw, list) else [raw]:
        name = item.get("Name") if isinstance(item, dict) else item
        if not (isinstance(name, str) and name in EVALUATED_TRANSFORMS):
            names.append(name if isinstance(name, str) else repr(name))
    if not names:
        return
    what = f"template transform {', '.join(names)} is not evaluated (a macro or AWS::Include rewrites the " \
           "template at deploy time)"
    owners = [pid for pid, d in out.drafts.items() if d.location is None or d.location.file == file]
    for pid in owners:
        out.note(file, line, f"{pid}: {what}", pid, grant=True)
    if not owners:
        out.note(file, line, f"{what}; it can add any role", None, grant=True)


def join_results(results: list[SourceResult]) -> SourceResult:
    return SourceResult(tuple(p for r in results for p in r.principals),
                        tuple(u for r in results for u in r.unresolved),
                        tuple(e for r in results for e in r.errors))


def _name_of(tpl: Template, lid: str, attr: str | None):
    res = tpl.resources.get(lid)
    if not isinstance(res, dict):
        return None
    rtype = res.get("Type")
    props = res.get("Properties") if isinstance(res.get("Properties"), dict) else {}
    key = PRINCIPAL_TYPES.get(rtype, (None, None))[1]
    if key and attr in (None, "Arn"):
        name = tpl.resolve(props.get(key)) if key in props else None
        if not isinstance(name, str):
            return None
        if attr is None:
            return name
        path = props.get("Path", "/") if isinstance(props.get("Path", "/"), str) else "/"
        kind = PRINCIPAL_TYPES[rtype][0]
        return f"arn:aws:iam::${{AWS::AccountId}}:{kind}{path}{name}"
    return None


class _Extractor:
    def __init__(self, source: CloudFormationSource, tpl: Template, file: str, out: Collector):
        self.source, self.tpl, self.file, self.out = source, tpl, file, out
        self.ids: dict[str, str] = {}  # logical id -> principal id
        self.group_members: dict[str, list[str]] = {}  # group logical id -> user principal ids
        self.pending_managed: dict[str, list[str]] = {}  # managed policy logical id -> principal ids

    def resource_line(self, lid: str, res) -> int | None:
        """The line of the resource's logical id, where people look for it."""
        key_lines = getattr(self.tpl.resources, "key_lines", {})
        return key_lines.get(lid) or next((n for k, n in key_lines.items() if str(k) == lid), None) or line_of(res)

    def loc(self, line) -> Location:
        return Location(self.file, line)

    def active(self, lid: str, res: dict) -> bool:
        cond = res.get("Condition")
        if cond is None:
            return True
        value = self.tpl.condition(str(cond))
        if value is None:
            self.out.note(self.file, line_of(res), f"{lid}: condition {cond} cannot be evaluated; "
                                                  "included as if it were true")
            return True
        return value

    def props(self, lid: str, res: dict) -> dict:
        props = res.get("Properties", {})
        if not isinstance(props, dict):
            self.out.error(self.file, line_of(res), f"{lid}: Properties must be a mapping")
            return {}
        resolved = self.tpl.resolve(props)
        return resolved if isinstance(resolved, dict) else {}

    def run(self) -> None:
        for problem in self.tpl.loop_problems:
            self.out.note(self.file, problem.line, problem.reason)
        items = [(str(lid), res) for lid, res in self.tpl.resources.items()]  # YAML may read `123:` as a number
        for lid, res in items:
            if not isinstance(res, dict):
                self.out.error(self.file, line_of(self.tpl.resources), f"resource {lid} must be a mapping")
                continue
            if not isinstance(res.get("Type"), str):
                if isinstance(res.get("Type"), dict):  # a Rain module or another pre-processor's tag
                    self.out.note(self.file, line_of(res), f"resource {lid}: Type {_tag(res['Type'])} is expanded "
                                                           "by a pre-processor before deploy; not read")
                else:
                    self.out.error(self.file, line_of(res), f"resource {lid}: Type must be a string")
                continue
            if res["Type"] in PRINCIPAL_TYPES and self.active(lid, res):
                self.principal(lid, res)
        for lid, res in items:
            if not isinstance(res, dict) or not isinstance(res.get("Type"), str):
                continue
            rtype = res["Type"]
            if rtype in PRINCIPAL_TYPES or not self.active(lid, res):
                continue
            line = self.resource_line(lid, res)
            if rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                self.attached_policy(lid, rtype, self.props(lid, res), line)
            elif rtype in INLINE_POLICY_TYPES:
                self.inline_policy_resource(lid, rtype, self.props(lid, res), line)
            elif rtype == "AWS::SSO::PermissionSet":
                self.permission_set(lid, self.props(lid, res), line)
            else:
                self.source.extra_resource(self, lid, rtype, res, line)
        for mid, pids in self.pending_managed.items():
            for pid in pids:
                self.out.note(self.file, self.out.drafts[pid].location.line if self.out.drafts[pid].location else None,
                              f"{pid}: ManagedPolicyArns names {mid}, which is not an AWS::IAM::ManagedPolicy here", pid,
                              grant=True)
        for gid, members in self.group_members.items():
            group = self.out.drafts.get(self.ids.get(gid, ""))
            for uid in members:
                if group and uid in self.out.drafts:
                    self.out.drafts[uid].policies.extend(group.policies)

    def principal(self, lid: str, res: dict) -> None:
        kind, name_key = PRINCIPAL_TYPES[res["Type"]]
        props = self.props(lid, res)
        name = props.get(name_key)
        line = self.resource_line(lid, res)
        pattern = None
        if isinstance(name, Unknown):
            self.out.note(self.file, line, f"{lid}: {name_key} cannot be resolved: {name.reason}", lid)
            name, pattern = None, name_pattern(name)
        elif isinstance(name, (int, float)) and not isinstance(name, bool):
            name = str(name)  # `RoleName: 12345` is a valid name
        elif name is not None and not isinstance(name, str):
            self.out.error(self.file, line, f"{lid}: {name_key} must be a string")
            name = None
        path = props.get("Path") if isinstance(props.get("Path"), str) else "/"
        draft = self.out.principal(lid, kind, name=name, path=path, location=self.loc(line), name_pattern=pattern)
        self.ids[lid] = lid
        self.add_inline_policies(draft.id, props.get("Policies"), line)
        self.add_managed_arns(draft.id, props.get("ManagedPolicyArns"), line)
        if kind == "user":
            for g in _as_list(props.get("Groups")):
                if isinstance(g, ResourceRef):
                    self.group_members.setdefault(g.logical_id, []).append(draft.id)

    def add_inline_policies(self, pid: str, policies, line) -> None:
        if policies is None:
            return
        if not isinstance(policies, list):
            self.out.error(self.file, line_of(policies, line), f"{pid}: Policies must be a list")
            return
        for pol in policies:
            pline = line_of(pol, line)
            if isinstance(pol, Unknown):
                self.out.note(self.file, pline, f"{pid}: a policy cannot be resolved: {pol.reason}", pid,
                              grant=True)
                continue
            if not isinstance(pol, dict) or "PolicyDocument" not in pol:
                self.out.error(self.file, pline, f"{pid}: each entry of Policies needs a PolicyDocument")
                continue
            name = str(pol.get("PolicyName", "inline"))
            self.out.drafts[pid].policies.append(self.out.policy(name, pol["PolicyDocument"], self.file, pline, pid))

    def add_managed_arns(self, pid: str, arns, line) -> None:
        for ref in _as_list(arns):
            rline = line_of(arns, line)
            if isinstance(ref, ResourceRef):
                self.pending_managed.setdefault(ref.logical_id, []).append(pid)
            elif isinstance(ref, Unknown):
                self.out.note(self.file, rline, f"{pid}: managed policy cannot be resolved: {ref.reason}", pid,
                              grant=True)
            elif isinstance(ref, str):
                pol = self.out.managed_policy(ref, self.file, rline, pid)
                if pol is not None:
                    self.out.drafts[pid].policies.append(pol)

    def target(self, value, kind: str, line) -> str | None:
        """The principal id an attachment names: a resource in the template or an outside one."""
        if isinstance(value, ResourceRef) and value.logical_id in self.ids:
            return self.ids[value.logical_id]
        if isinstance(value, Unknown):
            self.out.note(self.file, line, f"attachment target cannot be resolved: {value.reason}")
            return None
        if not isinstance(value, str):
            return None
        for d in self.out.drafts.values():
            if d.kind == kind and d.name == value:
                return d.id
        pid = f"{kind}/{value}"
        self.out.principal(pid, kind, name=value, location=self.loc(line))
        return pid

    def attached_policy(self, lid: str, rtype: str, props: dict, line) -> None:
        name_key = "PolicyName" if rtype == "AWS::IAM::Policy" else "ManagedPolicyName"
        name = props.get(name_key)
        name = name if isinstance(name, str) else lid
        if "PolicyDocument" not in props:
            self.out.error(self.file, line, f"{lid}: {rtype} has no PolicyDocument")
            return
        targets: list[str] = []
        for key, kind in ATTACH_KEYS.items():
            for value in _as_list(props.get(key)):
                pid = self.target(value, kind, line_of(props.get(key), line))
                if pid:
                    targets.append(pid)
        if rtype == "AWS::IAM::ManagedPolicy":
            targets.extend(self.pending_managed.pop(lid, []))
        owner = targets[0] if len(targets) == 1 else None
        policy = self.out.policy(name, props["PolicyDocument"], self.file, line, owner)
        if not targets:
            draft = self.out.principal(lid, "policy", name=name, location=self.loc(line))
            draft.policies.append(policy)
            return
        for pid in dict.fromkeys(targets):
            self.out.drafts[pid].policies.append(policy)

    def permission_set(self, lid: str, props: dict, line) -> None:
        """`AWS::SSO::PermissionSet`: managed policies, inline policy, customer managed references, boundary."""
        sso.permission_set(self.out, lid, props.get("Name"), self.file, line)
        self.ids[lid] = lid
        if props.get("InlinePolicy") is not None:
            pline = line_of(props.get("InlinePolicy"), line)
            self.out.drafts[lid].policies.append(self.out.policy("InlinePolicy", props["InlinePolicy"], self.file,
                                                                 pline, lid))
        self.add_managed_arns(lid, props.get("ManagedPolicies"), line)
        for ref in _as_list(props.get("CustomerManagedPolicyReferences")):
            ref = ref if isinstance(ref, dict) else {"Name": ref}
            sso.customer_managed_reference(self.out, lid, ref.get("Name"), ref.get("Path"), self.file,
                                           line_of(ref, line))
        if props.get("PermissionsBoundary") is not None:
            sso.boundary(self.out, lid, self.file, line_of(props.get("PermissionsBoundary"), line))

    def inline_policy_resource(self, lid: str, rtype: str, props: dict, line) -> None:
        kind, key = INLINE_POLICY_TYPES[rtype]
        pid = self.target(props.get(key), kind, line)
        if pid is None or "PolicyDocument" not in props:
            self.out.error(self.file, line, f"{lid}: {rtype} needs {key} and PolicyDocument")
            return
        name = props.get("PolicyName") if isinstance(props.get("PolicyName"), str) else lid
        self.out.drafts[pid].policies.append(self.out.policy(name, props["PolicyDocument"], self.file, line, pid))


def _tag(value: dict) -> str:
    key = str(next(iter(value), ""))
    return key[4:] if key.startswith("Fn::") else key


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
