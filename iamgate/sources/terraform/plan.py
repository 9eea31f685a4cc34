"""Terraform plan JSON (`terraform show -json plan.out`): the same IAM principals as the HCL source.

Values come from `planned_values` (child modules included) and, for data sources read while
planning, `prior_state`; `resource_changes[].change.after_unknown` marks what is known only at
apply time, and `configuration` tells which resource an expression referenced, so attachments
link to the principal or policy they name even when its name or ARN is not known yet.
"""
from __future__ import annotations

import json
import re

from ...model import SourceResult
from .. import SOURCES, Source, Workspace
from ..collector import Collector
from ..loaders import LDict, LList, line_of
from ..policy_document import Unknown
from .iam import IAM_TYPES, PRINCIPAL_TYPES, IamBuilder, TfResource, as_list, policy_document
from .values import Encoded, Ref, RefUnknown, with_lines

_MODULE_RX = re.compile(r'module\.([A-Za-z0-9_-]+)(\[[^\]]*\])?')
_ORIGIN_TYPES = set(PRINCIPAL_TYPES) | {"aws_iam_policy", "data.aws_iam_policy_document", "aws_ssoadmin_permission_set"}
_POLICY_KEYS = {"policy"}
_COMPUTED_OPTIONAL = {"managed_policy_arns", "inline_policy", "name", "name_prefix", "path"}


def is_plan(doc) -> bool:
    return isinstance(doc, dict) and "format_version" in doc and (
        "planned_values" in doc or "resource_changes" in doc)


def _looks_like_plan(head: str) -> bool:
    return '"format_version"' in head and ('"planned_values"' in head or '"resource_changes"' in head)


@SOURCES.register
class TerraformPlanSource(Source):
    name = "terraform-plan"
    priority = 40
    description = "Terraform plan JSON (terraform show -json)"

    def collect(self, workspace: Workspace) -> SourceResult:
        out = Collector(self.name, workspace.options.managed_policy_dir)
        for path in workspace.unclaimed({".json"}):
            doc = workspace.read_claimed(path, is_plan, _looks_like_plan, out.error)
            if doc is None:
                continue
            file = workspace.rel(path)
            try:
                _Plan(doc, file, out).run()
            except (TypeError, AttributeError, KeyError, ValueError) as e:
                out.error(file, line_of(doc), f"not a Terraform plan this version can read: {type(e).__name__}: {e}")
        return out.result()


class _Plan:
    def __init__(self, doc: dict, file: str, out: Collector):
        self.doc, self.file, self.out = doc, file, out
        self.changes = {c.get("address"): c for c in as_list(doc.get("resource_changes")) if isinstance(c, dict)}
        self.config_root = (doc.get("configuration") or {}).get("root_module") or {}

    def run(self) -> None:
        entries: dict[str, tuple[dict, str]] = {}  # address -> (resource entry, module address)
        self.walk(_get(self.doc, "prior_state", "values", "root_module"), "", entries, data_only=True)
        self.walk(_get(self.doc, "planned_values", "root_module"), "", entries, data_only=False)
        for address, change in self.changes.items():
            if address not in entries and isinstance(change, dict) and change.get("mode") == "data":
                after = (change.get("change") or {}).get("after")
                entry = LDict({**change, "values": after if isinstance(after, dict) else {}},
                              line=line_of(change))
                entries[address] = (entry, change.get("module_address") or "")
        resources, documents = [], {}
        for address, (entry, module) in entries.items():
            rtype, mode = entry.get("type"), entry.get("mode", "managed")
            if not (rtype in IAM_TYPES and mode == "managed") and not (
                    rtype == "aws_iam_policy_document" and mode == "data"):
                continue
            r = self.resource(address, entry, module)
            if mode == "data":
                documents[r.base if r.key is None else r.address] = self.document(r)
                documents.setdefault(r.base, documents[r.base if r.key is None else r.address])
            else:
                resources.append(r)
        IamBuilder(self.out, resources, documents).run()

    def walk(self, module: dict | None, module_address: str, entries: dict, data_only: bool) -> None:
        if not isinstance(module, dict):
            return
        for entry in as_list(module.get("resources")):
            if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
                continue
            if data_only and entry.get("mode") != "data":
                continue
            entries[entry["address"]] = (entry, module_address)
        for child in as_list(module.get("child_modules")):
            if isinstance(child, dict):
                self.walk(child, child.get("address") or module_address, entries, data_only)

    def resource(self, address: str, entry: dict, module: str) -> TfResource:
        rtype, name, mode = entry.get("type"), entry.get("name"), entry.get("mode", "managed")
        line = line_of(entry)
        values = entry.get("values") if isinstance(entry.get("values"), dict) else {}
        change = (self.changes.get(address) or {}).get("change") or {}
        values = _mark_unknown(values, change.get("after_unknown"), f"{address}.")
        values = _decode_policies(values, self.file, line)
        local = ("data." if mode == "data" else "") + f"{rtype}.{name}"
        prefix = module + "." if module else ""
        config = self.config_resource(module, local)
        if config is not None:
            expressions = config.get("expressions") or {}
            for k in _COMPUTED_OPTIONAL:  # not set in the code: the provider fills them, they grant nothing
                if isinstance(values.get(k), Unknown) and k not in expressions:
                    values[k] = None
            values = _apply_references(values, expressions, prefix)
        key = entry.get("index")
        base = prefix + local
        return TfResource(address, mode, rtype, values, self.file, line, base, key)

    def config_resource(self, module_address: str, local: str) -> dict | None:
        node = self.config_root
        for name, _ in _MODULE_RX.findall(module_address or ""):
            node = _get(node, "module_calls", name, "module")
            if not isinstance(node, dict):
                return None
        for res in as_list(node.get("resources")):
            if isinstance(res, dict) and res.get("address") == local:
                return res
        return None

    def document(self, r: TfResource):
        text = r.values.get("json")
        if isinstance(text, str) and not isinstance(text, Unknown):
            try:
                return with_lines(json.loads(text), r.line)
            except ValueError:
                pass
        return policy_document(r.values, r.file, r.line)


def _get(node, *keys):
    for k in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(k)
    return node


def _mark_unknown(value, unknown, where: str):
    """Replace what after_unknown marks with Unknown values."""
    if unknown is True:
        return Unknown(f"{where.rstrip('.')} is known only at apply time", "${" + where.rstrip(".") + "}")
    if isinstance(unknown, dict):
        out = LDict(value if isinstance(value, dict) else {}, line=line_of(value))
        for k, u in unknown.items():
            if u is not False and u is not None:
                out[k] = _mark_unknown(out.get(k), u, f"{where}{k}.")
        return out
    if isinstance(unknown, list) and isinstance(value, list):
        return LList([_mark_unknown(v, unknown[i] if i < len(unknown) else False, f"{where}{i}.")
                      for i, v in enumerate(value)], line=line_of(value))
    return value


def _decode_policies(values, file: str, line):
    """Policy JSON strings become documents located at the resource (the plan has no lines for them)."""
    if isinstance(values, dict):
        out = LDict(line=line_of(values, line))
        for k, v in values.items():
            if k in _POLICY_KEYS and isinstance(v, str) and not isinstance(v, Unknown):
                try:
                    out[k] = Encoded(with_lines(json.loads(v), line), file)
                    continue
                except ValueError:
                    pass
            out[k] = _decode_policies(v, file, line)
        return out
    if isinstance(values, list):
        return LList([_decode_policies(v, file, line) for v in values], line=line_of(values, line))
    return values


def _origin(references, prefix: str, types=_ORIGIN_TYPES) -> list[str]:
    """The IAM resources an expression referenced (`aws_iam_role.x`, `aws_iam_policy.p[0]`)."""
    found = []
    for ref in as_list(references):
        if not isinstance(ref, str):
            continue
        parts = ref.split(".")
        if parts[0] == "data" and len(parts) == 3 and f"data.{parts[1]}" in types:
            found.append(prefix + ref)
        elif len(parts) == 2 and parts[0] in types:
            found.append(prefix + ref)
    for ref in as_list(references):  # only indexed references (aws_iam_role.x[0]) when no plain one
        m = re.match(r"^([a-z0-9_]+)\.([A-Za-z0-9_-]+)(\[[^\]]+\])$", ref) if isinstance(ref, str) else None
        if m and m.group(1) in types and prefix + f"{m.group(1)}.{m.group(2)}" not in found:
            found.append(prefix + ref)
    # prefer the most specific: an indexed reference over its base
    specific = [f for f in found if "[" in f]
    return specific + [f for f in found if "[" not in f and not any(s.startswith(f + "[") for s in specific)]


def _apply_references(values, expressions, prefix: str):
    if not isinstance(values, dict) or not isinstance(expressions, dict):
        return values
    out = LDict(values, line=line_of(values))
    for key, expr in expressions.items():
        if key not in out:
            continue
        value = out[key]
        if isinstance(expr, list):  # nested blocks
            if isinstance(value, list):
                out[key] = LList([_apply_references(v, e, prefix) for v, e in zip(value, expr)] + value[len(expr):],
                                 line=line_of(value))
            continue
        if not isinstance(expr, dict) or "references" not in expr:
            continue
        origins = _origin(expr["references"], prefix)
        if not origins:
            continue
        if isinstance(value, Unknown) and not isinstance(value, RefUnknown):
            if len(origins) == 1 or key not in _LIST_KEYS:
                out[key] = RefUnknown(value.reason, origins[0], value.text, value.line)
            else:
                out[key] = LList(RefUnknown(value.reason, o, "${" + o + "}") for o in origins)
        elif isinstance(value, str) and len(origins) == 1:
            out[key] = Ref(value, origins[0])
        elif isinstance(value, list) and key in _LIST_KEYS:
            out[key] = LList(_tag_item(v, origins) for v in value)
    return out


_LIST_KEYS = {"managed_policy_arns", "roles", "users", "groups", "policy_arns", "policy_names"}


def _tag_item(value, origins: list[str]):
    if isinstance(value, Unknown) and not isinstance(value, RefUnknown) and len(origins) == 1:
        return RefUnknown(value.reason, origins[0], value.text, value.line)
    return value

