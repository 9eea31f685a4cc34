"""CDK output: the stacks of a cloud assembly (`cdk.out/manifest.json` + `*.template.json`).

The templates are CloudFormation and read by its extractor. On top: principals get their
construct path (`aws:cdk:path`) as an alias, and `Fn::ImportValue` of an export made by
another stack of the same assembly is resolved from that stack's `Outputs`. Nothing is synthesized.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...model import Principal, SourceResult
from .. import SOURCES, Workspace
from ..collector import Collector
from ..loaders import LoadError, line_of
from ..policy_document import Unknown
from .evaluator import ResourceRef, Template
from .templates import CloudFormationSource, is_template, join_results

STACK_ARTIFACT = "aws:cloudformation:stack"


class CdkTemplate(Template):
    """A stack template whose `Fn::ImportValue` can see the exports of its assembly."""
    exports: dict | None = None  # export name -> value (str or Unknown)

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.missing_imports: dict[tuple, str] = {}  # (line, export name) -> reason, reported once each

    def _intrinsic(self, node, depth):
        (fn, args), = node.items()
        if fn != "Fn::ImportValue" or self.exports is None:
            return super()._intrinsic(node, depth)
        line = line_of(node)
        name = self.resolve(args, depth + 1)
        if isinstance(name, str) and name in self.exports:
            value = self.exports[name]
            if isinstance(value, Unknown):
                return Unknown(f"Fn::ImportValue {name}: {value.reason}", text=value.text, line=line)
            return value
        reason = f"Fn::ImportValue {name}: no stack in this cloud assembly exports it"
        self.missing_imports[(line, str(name))] = reason
        return Unknown(reason, text="${ImportValue:" + str(name) + "}", line=line)


@dataclass
class Stack:
    name: str
    path: Path
    doc: object = None
    paths: dict = field(default_factory=dict)  # logical id -> construct path
    stage: str | None = None  # the CDK stage (a nested assembly `assembly-<Stage>`) it is synthesized for
    account: str | None = None  # from its environment `aws://<account>/<region>`, when the code fixes it


@SOURCES.register
class CdkSource(CloudFormationSource):
    name = "cdk"
    priority = 45  # before plain CloudFormation, which would read the templates without construct paths
    description = "CDK cloud assemblies (cdk.out): stack templates named by construct path"
    template_class = CdkTemplate

    def collect(self, workspace: Workspace) -> SourceResult:
        results = []
        staged: list[tuple[Stack, SourceResult]] = []
        for manifest in workspace.unclaimed({".json"}):
            if manifest.name != "manifest.json":
                continue
            out = self.collector(workspace)
            stacks = self.stacks(workspace, manifest, out)
            if stacks is not None:
                workspace.claim(manifest)
                with out.guard(workspace.rel(manifest)):
                    for stack, result in self.assembly(workspace, stacks, out):
                        if stack.stage:
                            staged.append((stack, result))
                        else:
                            results.append(result)
            results.append(out.result())
        return join_results(results + stages(staged))

    def stacks(self, workspace: Workspace, manifest: Path, out: Collector) -> list[Stack] | None:
        doc = workspace.document(manifest)
        if isinstance(doc, LoadError) or not isinstance(doc, dict) or not isinstance(doc.get("artifacts"), dict):
            return None
        stacks = []
        for art_id, art in doc["artifacts"].items():
            if not isinstance(art, dict) or art.get("type") != STACK_ARTIFACT:
                continue
            props = art.get("properties") if isinstance(art.get("properties"), dict) else {}
            template_file = props.get("templateFile")
            line = line_of(art)
            if not isinstance(template_file, str):
                out.error(workspace.rel(manifest), line, f"stack {art_id} has no templateFile")
                continue
            path = (manifest.parent / template_file).resolve()
            if manifest.parent.resolve() not in path.parents:
                out.error(workspace.rel(manifest), line, f"stack {art_id}: templateFile {template_file} is "
                                                        "outside the cloud assembly; not read")
                continue
            if not path.is_file():
                out.note(workspace.rel(manifest), line, f"stack {art_id}: templateFile {template_file} is not in "
                                                        "the cloud assembly; its principals are not read")
                continue
            stack = Stack(str(props.get("stackName") or art_id), path)
            stack.stage = _stage(manifest, art)
            env = art.get("environment")
            account = env[len("aws://"):].split("/")[0] if isinstance(env, str) and env.startswith("aws://") else ""
            stack.account = account if re.fullmatch(r"\d{12}", account) else None
            metadata = art.get("metadata") if isinstance(art.get("metadata"), dict) else {}
            extra = art.get("additionalMetadataFile")  # newer CDK versions move it to <stack>.metadata.json
            if isinstance(extra, str):
                extra_path = (manifest.parent / extra).resolve()
                if manifest.parent.resolve() in extra_path.parents and extra_path.is_file():
                    workspace.claim(extra_path)
                    extra_doc = workspace.document(extra_path)
                    metadata = {**metadata, **(extra_doc if isinstance(extra_doc, dict) else {})}
            for cpath, entries in metadata.items():
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, dict) and entry.get("type") == "aws:cdk:logicalId":
                        stack.paths[str(entry.get("data"))] = str(cpath).lstrip("/")
            stacks.append(stack)
        return stacks

    def assembly(self, workspace: Workspace, stacks: list[Stack], out: Collector) -> list[tuple[Stack, SourceResult]]:
        for stack in stacks:
            if workspace.is_claimed(stack.path):
                continue
            workspace.claim(stack.path)
            doc = workspace.document(stack.path)
            if isinstance(doc, LoadError):
                out.error(workspace.rel(stack.path), doc.line, doc.message)
            elif not is_template(doc):
                out.error(workspace.rel(stack.path), line_of(doc), "a stack's templateFile is not a CloudFormation "
                                                                   "template")
            else:
                stack.doc = doc
        readable = [s for s in stacks if s.doc is not None]
        exports = self.exports(workspace, readable)
        results = []
        for stack in readable:  # one collector per stack: CDK logical ids repeat across stacks
            file = workspace.rel(stack.path)
            stack_out = self.collector(workspace)
            with stack_out.guard(file):
                tpl = self.stack_template(stack, workspace)
                tpl.exports = exports
                self.extract(stack.doc, file, workspace, stack_out, tpl)
                for (line, _), reason in sorted(tpl.missing_imports.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1])):
                    stack_out.note(file, line, reason)
                for pid, draft in stack_out.drafts.items():
                    cpath = _construct_path(tpl, pid) or stack.paths.get(pid)
                    if cpath:
                        draft.aliases[:0] = [a for a in _construct_names(cpath) if a not in draft.aliases]
            results.append((stack, stack_out.result()))
        return results

    def stack_template(self, stack: Stack, workspace: Workspace) -> CdkTemplate:
        tpl = self.template(stack.doc, workspace)
        tpl.overrides.setdefault("AWS::StackName", stack.name)  # the manifest fixes it
        return tpl

    def exports(self, workspace: Workspace, stacks: list[Stack]) -> dict:
        exports: dict = {}
        for stack in stacks:
            outputs = stack.doc.get("Outputs")
            if not isinstance(outputs, dict):
                continue
            tpl = self.stack_template(stack, workspace)
            for oid, output in outputs.items():
                if not isinstance(output, dict) or not isinstance(output.get("Export"), dict):
                    continue
                name = tpl.resolve(output["Export"].get("Name"))
                if not isinstance(name, str):
                    continue
                value = tpl.resolve(output.get("Value"))
                if isinstance(value, ResourceRef) and value.startswith("${"):
                    # a resource of the exporting stack: keep it recognisable, as for references inside a stack
                    value = "${" + f"{stack.name}.{value[2:]}"
                elif not isinstance(value, (str, Unknown)):
                    value = Unknown(f"export {name} of stack {stack.name} is not a string")
                exports[name] = value
        return exports


def _construct_path(tpl: Template, lid: str) -> str | None:
    res = tpl.resources.get(lid)
    meta = res.get("Metadata") if isinstance(res, dict) else None
    cpath = meta.get("aws:cdk:path") if isinstance(meta, dict) else None
    return cpath if isinstance(cpath, str) else None


def _construct_names(cpath: str) -> list[str]:
    """`Stack/Api/Handler/ServiceRole/Resource` is the L1 inside `Stack/Api/Handler/ServiceRole`: both."""
    cpath = cpath.lstrip("/")
    head, _, last = cpath.rpartition("/")
    return [head, cpath] if last == "Resource" and head else [cpath]


def _stage(manifest: Path, artifact: dict) -> str | None:
    """The stage a stack of a nested cloud assembly (`cdk.out/assembly-<Stage>/manifest.json`) belongs to:
    its display name's path without the stack (`Prod/Api` -> `Prod`), else the folder's name."""
    folder = manifest.parent.name
    if not folder.startswith("assembly-"):
        return None
    shown = artifact.get("displayName")
    if isinstance(shown, str) and "/" in shown:
        return shown.rsplit("/", 1)[0]
    return folder[len("assembly-"):] or None


def _unstaged(name: str, stage: str) -> str:
    return name[len(stage) + 1:] if name.startswith(stage + "/") else name


def stages(staged: list[tuple[Stack, SourceResult]]) -> list[SourceResult]:
    """The same construct in several stages is one principal, named by its construct path without the stage;
    its stages, each with its account and its own resolution, are its deployments (`Principal.stages`)."""
    groups: dict[tuple, list[tuple[Stack, Principal]]] = {}
    for stack, result in staged:
        for p in result.principals:
            paths = [a for a in p.aliases if "/" in a]
            key = (p.kind, _unstaged(paths[0], stack.stage) if paths else f"{stack.name}#{p.id}")
            groups.setdefault(key, []).append((stack, p))
    principals = []
    for members in groups.values():
        stack, first = members[0]
        aliases = [_unstaged(a, stack.stage) for a in first.aliases]
        aliases += [a for a in first.aliases if a not in aliases]
        principals.append(replace(first, aliases=tuple(dict.fromkeys(aliases)),
                                  stages=tuple((st.stage, st.account, p) for st, p in members)))
    return [SourceResult(tuple(principals), tuple(u for _, r in staged for u in r.unresolved),
                         tuple(e for _, r in staged for e in r.errors))]
