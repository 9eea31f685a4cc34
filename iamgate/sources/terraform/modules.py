"""Terraform modules as the evaluator sees them: a folder's declarations, its instances (with their
inputs, count and for_each), resource instances, outputs, and the environment of one root module.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ...model import ScanError
from .. import Workspace, within
from ...reference.catalog import glob_match
from ..budget import charge
from ..collector import Collector
from ..loaders import LDict, LList, LoadError
from ..policy_document import Unknown
from .data_sources import aws_iam_policy_arn
from .downloads import Downloads, read_downloads
from .expressions import Obj, Scope, unknown_at
from .functions import evaluator
from .hcl import Block, EvalError, node_line
from .iam import IAM_TYPES, PRINCIPAL_TYPES, TfResource, format_key, policy_document
from .values import Encoded, Ref, RefUnknown, Text
from .variable_types import convert, type_of

if TYPE_CHECKING:
    from .configuration import TerraformSource

_META_ATTRS = {"count", "for_each", "depends_on", "provider", "lifecycle"}
_SKIP_BLOCKS = {"lifecycle", "provisioner", "connection", "timeouts"}
_MODULE_META = {"source", "version", "count", "for_each", "providers", "depends_on"}
_IAM_ORIGIN_TYPES = set(PRINCIPAL_TYPES) | {"aws_iam_policy", "aws_ssoadmin_permission_set"}
_GENERATED_ATTRS = {"name", "id", "arn", "unique_id"}  # null in the code: AWS or Terraform picks them at apply
MAX_MODULE_DEPTH = 16
MAX_COUNT = 10000  # instances of one block: beyond the IAM quotas (5,000 roles or users per account)


class TfModule:
    """The declarations of one folder of `.tf` files."""

    def __init__(self, directory: Path, files: list[tuple[str, object]], errors: list[ScanError]):
        self.dir = directory
        self.parts: list[TfModule] = []  # set when the folder's files only make sense one by one
        self.variables: dict[str, Block] = {}
        self.locals: dict[str, tuple] = {}  # name -> (node, file, src)
        self.resources: dict[str, Block] = {}  # "type.name" -> block
        self.data: dict[str, Block] = {}
        self.modules: dict[str, Block] = {}
        self.outputs: dict[str, Block] = {}
        self.files = [f for f, _ in files]
        for file, body in files:
            for block in body.blocks:
                self._declare(block, errors)

    def _declare(self, b: Block, errors: list[ScanError]) -> None:
        table, name = None, None
        if b.type == "variable" and len(b.labels) == 1:
            table, name = self.variables, b.labels[0]
        elif b.type == "resource" and len(b.labels) == 2:
            table, name = self.resources, ".".join(b.labels)
        elif b.type == "data" and len(b.labels) == 2:
            table, name = self.data, ".".join(b.labels)
        elif b.type == "module" and len(b.labels) == 1:
            table, name = self.modules, b.labels[0]
        elif b.type == "output" and len(b.labels) == 1:
            table, name = self.outputs, b.labels[0]
        elif b.type == "locals":
            for key, node in b.body.attrs.items():
                if key in self.locals:
                    errors.append(ScanError(b.file, b.body.attr_lines.get(key), f"duplicate local value {key!r}"))
                    continue
                self.locals[key] = (node, b.file, b.src, b.body.attr_lines.get(key))
            return
        if table is None:
            return
        if name in table:
            first = table[name]
            errors.append(ScanError(b.file, b.line, f"duplicate {b.type} {name!r} (first declared at "
                                                    f"{first.file}:{first.line}); this one is ignored"))
            return
        table[name] = b


class ResourceInstance(Obj):
    """One instance of a resource or data block, evaluated on demand."""

    def __init__(self, inst: "ModuleInstance", mode: str, block: Block, key, bindings: dict):
        self.inst, self.mode, self.block, self.key, self.bindings = inst, mode, block, key, bindings
        self.type = block.labels[0]
        base = inst.prefix + ("data." if mode == "data" else "") + ".".join(block.labels)
        self.base = base
        self.address = base + (format_key(key) if key is not None else "")
        self._values = None
        self._attrs: dict = {}

    def scope(self) -> Scope:
        return Scope(self.inst, self.block.file, self.block.src, dict(self.bindings))

    def values(self) -> dict:
        if self._values is None:
            self._values = self.inst.env.guarded(("values", self.address), lambda: self.inst.eval_body(
                self.block.body, self.scope(), self.attr), {})
        return self._values

    def attr(self, name: str):
        """One argument, evaluated on its own: references between resources are not cycles."""
        if name not in self._attrs:
            self._attrs[name] = self.inst.env.guarded(("attr", self.address, name), lambda: self.inst.ev.safe(
                self.block.body.attrs[name], self.scope()), None)
        return self._attrs[name]

    def get(self, name: str, line):
        if self.mode == "data" and self.type == "aws_iam_policy_document" and name in ("json", "minified_json"):
            return Encoded(policy_document(self.values(), self.block.file, self.block.line), self.block.file)
        if self.mode == "data" and self.type == "aws_iam_policy" and name == "arn":
            return aws_iam_policy_arn(self, line)
        body = self.block.body
        if name in body.attrs and name not in _META_ATTRS:
            return self.tag(self.attr(name), name)
        if any(b.type == name or (b.type == "dynamic" and b.labels[:1] == (name,)) for b in body.blocks):
            return self.values().get(name, LList())
        if self.type in PRINCIPAL_TYPES and name == "id" and "name" in body.attrs:
            return self.tag(self.attr("name"), "id")
        reason = f"{self.address}.{name} is known only at apply time"
        if self.type in _IAM_ORIGIN_TYPES and self.mode == "managed":
            return RefUnknown(reason, self.address, "${" + f"{self.address}.{name}" + "}", line)
        return Unknown(reason, "${" + f"{self.address}.{name}" + "}", line)

    def tag(self, value, name: str = ""):
        """Values read from IAM principals and policies remember where they came from."""
        if self.type not in _IAM_ORIGIN_TYPES or self.mode != "managed":
            return value
        if value is None and name in _GENERATED_ATTRS:  # `name = var.use_name_prefix ? null : var.name`
            return RefUnknown(f"{self.address}.{name} is null in the code and generated at apply time",
                              self.address, "${" + f"{self.address}.{name}" + "}", self.block.line)
        if isinstance(value, Unknown) and not isinstance(value, RefUnknown):
            return RefUnknown(value.reason, self.address, value.text, value.line)
        if isinstance(value, str) and not isinstance(value, Ref):
            return Ref(value, self.address)
        return value

    def resource(self) -> TfResource:
        scope = self.scope()
        exprs = {k: scope.text_of(node) for k, node in self.block.body.attrs.items()}
        return TfResource(self.address, self.mode, self.type, self.values(), self.block.file, self.block.line,
                          self.base, self.key, exprs)


class ModuleOutputs(Obj):
    def __init__(self, inst: "ModuleInstance"):
        self.inst = inst

    def get(self, name: str, line):
        block = self.inst.module.outputs.get(name)
        if block is None or "value" not in block.body.attrs:
            raise EvalError(f"module has no output {name!r}")
        return self.inst.env.guarded(("output", self.inst.prefix, name), lambda: self.inst.ev.evaluate(
            block.body.attrs["value"], Scope(self.inst, block.file, block.src)), None)


class ModuleInstance:
    """A module with its input values, at an address prefix (`module.a.`)."""

    def __init__(self, env: "RootEnvironment", module: TfModule, prefix: str, inputs: dict, depth: int = 0, key: str = ""):
        self.env, self.module, self.prefix, self.inputs, self.depth = env, module, prefix, inputs, depth
        self.key = key  # the module call path, as `terraform init` keys it: "a.b"
        self.ev = evaluator()
        self._locals: dict = {}
        self._instances: dict = {}
        self._children: dict = {}

    # names -----------------------------------------------------------------
    def reference(self, name: str, steps: list, scope: Scope, node):
        def attr(i):
            if len(steps) <= i or steps[i][0] != "attr":
                raise EvalError(f"incomplete reference {name}")
            return steps[i][1]

        if name == "var":
            return self.var(attr(0), node_line(node)), steps[1:]
        if name == "local":
            return self.local(attr(0)), steps[1:]
        if name == "path":
            which = attr(0)
            if which == "module":
                return os.path.relpath(self.module.dir, self.env.root_dir).replace(os.sep, "/"), steps[1:]
            if which == "root":
                return ".", steps[1:]
            if which == "cwd":
                return unknown_at(scope, node, "path.cwd is a folder on the machine that runs Terraform"), steps[1:]
            raise EvalError(f"unknown path.{which}")
        if name == "terraform":
            chosen = self.env.workspace.options.terraform_workspace  # a named deployment's (issue 21)
            if chosen and attr(0) == "workspace":
                return chosen, steps[1:]
            return unknown_at(scope, node, "terraform.workspace is chosen at run time"), steps[1:]
        if name == "module":
            return self.module_value(attr(0), scope, node), steps[1:]
        if name == "data":
            key = f"{attr(0)}.{attr(1)}"
            return self.resource_value("data", key, scope, node), steps[2:]
        if name in ("count", "each", "self"):
            raise EvalError(f"{name} is not available here")
        key = f"{name}.{attr(0)}"
        return self.resource_value("managed", key, scope, node), steps[1:]

    def var(self, name: str, line):
        block = self.module.variables.get(name)
        if block is None:
            if name in self.inputs:
                return self.inputs[name]()
            # declared in a file that is not scanned, or a mistake: unknown either way, never guessed
            return Unknown(f"undeclared variable var.{name}", "${var." + name + "}", line)
        scope = Scope(self, block.file, block.src)
        value = self.inputs[name]() if name in self.inputs else None
        nullable = block.body.attrs.get("nullable")
        if name not in self.inputs or (value is None and nullable is not None
                                       and self.ev.safe(nullable, scope) is False):
            if "default" not in block.body.attrs:
                return Unknown(f"var.{name} has no default and no value is given", "${var." + name + "}", line)
            value = self.env.guarded(("default", id(block)), lambda: self.ev.evaluate(block.body.attrs["default"], scope),
                                     None)
        type_node = block.body.attrs.get("type")
        return convert(value, type_of(type_node), self.ev, scope) if type_node is not None else value

    def local(self, name: str):
        if name not in self.module.locals:
            raise EvalError(f"undeclared local.{name}")
        if name not in self._locals:
            node, file, src, _ = self.module.locals[name]
            self._locals[name] = self.env.guarded(("local", self.prefix, id(self.module), name),
                                                  lambda: self.ev.evaluate(node, Scope(self, file, src)), None)
        return self._locals[name]

    def resource_value(self, mode: str, key: str, scope: Scope, node):
        table = self.module.data if mode == "data" else self.module.resources
        block = table.get(key)
        if block is None:
            raise EvalError(f"reference to undeclared {'data source' if mode == 'data' else 'resource'} {key}")
        insts = self.instances(mode, block)
        if isinstance(insts, Unknown):
            return insts
        if "count" in block.body.attrs:
            return LList(insts)
        if "for_each" in block.body.attrs:
            return LDict({str(i.key): i for i in insts})
        return insts[0] if insts else None

    def instances(self, mode: str, block: Block):
        """The instances of a resource block, by count or for_each; Unknown if those are apply-time."""
        cache_key = (mode, id(block))
        if cache_key not in self._instances:
            self._instances[cache_key] = self.env.guarded(("instances", self.prefix, id(block)), lambda: [
                ResourceInstance(self, mode, block, k, b) for k, b in self.expand(block)], [])
        return self._instances[cache_key]

    def expand(self, block: Block) -> list[tuple]:
        attrs = block.body.attrs
        scope = Scope(self, block.file, block.src)
        if "count" in attrs:
            n = self.ev.safe(attrs["count"], scope)
            if isinstance(n, Unknown):
                self.env.note_once(block, f"count cannot be resolved: {n.reason}; read as one instance", self.prefix)
                return [(None, {"count": {"index": Unknown(n.reason, "${count.index}", block.line)}})]
            if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0:
                self.env.out.error(block.file, block.line, "count must be a whole number")
                return []
            if n > MAX_COUNT:
                self.env.out.error(block.file, block.line, f"count of {int(n)} is more than iamgate reads "
                                                           f"({MAX_COUNT}); its instances are not read")
                return []
            charge(block.file, n, "count", block.line)
            return [(i, {"count": {"index": i}}) for i in range(int(n))]
        if "for_each" in attrs:
            coll = self.ev.safe(attrs["for_each"], scope)
            if isinstance(coll, Unknown):
                self.env.note_once(block, f"for_each cannot be resolved: {coll.reason}; read as one instance",
                                   self.prefix)
                u = Unknown(coll.reason, "${each.key}", block.line)
                return [(None, {"each": {"key": u, "value": Unknown(coll.reason, "${each.value}", block.line)}})]
            if isinstance(coll, (dict, list, tuple)):
                charge(block.file, len(coll), "for_each", block.line)
            if isinstance(coll, dict):
                return [(str(k), {"each": {"key": str(k), "value": coll[k]}}) for k in sorted(coll)]
            if isinstance(coll, (list, tuple)):
                keys = []
                for v in coll:
                    if isinstance(v, Unknown):
                        self.env.note_once(block, f"for_each cannot be resolved: {v.reason}; read as one instance",
                                           self.prefix)
                        return [(None, {"each": {"key": v, "value": v}})]
                    if not isinstance(v, str):
                        self.env.out.error(block.file, block.line, "for_each over a list needs strings (use toset)")
                        return []
                    keys.append(str(v))
                return [(k, {"each": {"key": k, "value": k}}) for k in sorted(set(keys))]
            self.env.out.error(block.file, block.line, "for_each must be a map or a set of strings")
            return []
        return [(None, {})]

    # modules -----------------------------------------------------------------
    def module_value(self, name: str, scope: Scope, node):
        block = self.module.modules.get(name)
        if block is None:
            raise EvalError(f"reference to undeclared module {name}")
        children = self.children(name, block)
        if isinstance(children, Unknown):
            return unknown_at(scope, node, children.reason)
        if "count" in block.body.attrs:
            return LList(ModuleOutputs(c) for _, c in children)
        if "for_each" in block.body.attrs:
            return LDict({str(k): ModuleOutputs(c) for k, c in children})
        return ModuleOutputs(children[0][1]) if children else None

    def children(self, name: str, block: Block):
        if name in self._children:
            return self._children[name]
        self._children[name] = Unknown(f"module {name} is being evaluated (cycle)")
        result = self.env.guarded(("children", self.prefix, name), lambda: self._make_children(name, block), [])
        self._children[name] = result
        return result

    def _make_children(self, name: str, block: Block):
        source = self.env.module_source(self, block)
        if isinstance(source, Unknown):
            return source
        if self.depth >= MAX_MODULE_DEPTH:
            self.env.out.error(block.file, block.line, f"module {name}: modules nested more than "
                                                       f"{MAX_MODULE_DEPTH} deep; not followed")
            return Unknown("module nesting too deep")
        out = []
        for key, bindings in self.expand(block):
            scope = Scope(self, block.file, block.src, dict(bindings))
            inputs = {arg: self._thunk(node, scope) for arg, node in block.body.attrs.items()
                      if arg not in _MODULE_META}
            prefix = f"{self.prefix}module.{name}{format_key(key) if key is not None else ''}."
            out.append((key, ModuleInstance(self.env, source, prefix, inputs, self.depth + 1,
                                            f"{self.key}.{name}" if self.key else name)))
        return out

    def _thunk(self, node, scope: Scope):
        cache: list = []

        def value():
            if not cache:
                cache.append(self.ev.safe(node, scope))
            return cache[0]
        return value

    # files -----------------------------------------------------------------
    def read_file(self, path: str, scope: Scope, node):
        target = self.env.resolve_path(path)
        if target is None:
            return unknown_at(scope, node, f"{path} is outside the scanned repository; not read")
        if not target.is_file():
            raise EvalError(f"no such file {path}")
        try:
            text = self.env.workspace.text(target)
        except (LoadError, OSError) as e:
            raise EvalError(f"cannot read {path}: {getattr(e, 'message', e)}") from None
        self.env.workspace.claim(target)  # read here: no other source reads it again
        return Text(text, self.env.workspace.rel(target), 1)

    def file_exists(self, path: str, scope: Scope, node):
        target = self.env.resolve_path(path)
        if target is None:
            return unknown_at(scope, node, f"{path} is outside the scanned repository")
        return target.is_file()

    # evaluation --------------------------------------------------------------
    def eval_body(self, body, scope: Scope, attr=None) -> LDict:
        """Arguments and nested blocks (as lists of mappings), with dynamic blocks expanded."""
        out = LDict()
        for name, node in body.attrs.items():
            if name in _META_ATTRS:
                continue
            out[name] = attr(name) if attr else self.ev.safe(node, scope)
            out.key_lines[name] = body.attr_lines.get(name)
        for b in body.blocks:
            if b.type in _SKIP_BLOCKS:
                continue
            if b.type == "dynamic" and b.labels:
                out.setdefault(b.labels[0], LList(line=b.line)).extend(self.dynamic(b, scope))
                continue
            value = self.eval_body(b.body, scope)
            value.line = b.line
            out.setdefault(b.type, LList(line=b.line)).append(value)
        return out

    def dynamic(self, b: Block, scope: Scope) -> list:
        label = b.labels[0]
        iterator = label
        if "iterator" in b.body.attrs:
            iterator = scope.text_of(b.body.attrs["iterator"]) or label
        coll = self.ev.safe(b.body.attrs["for_each"], scope) if "for_each" in b.body.attrs else None
        content = b.body.blocks_of("content")
        if not content:
            self.env.out.error(b.file, b.line, f"dynamic {label!r} has no content block")
            return []
        if isinstance(coll, Unknown):
            return [Unknown(f"dynamic {label} for_each: {coll.reason}", coll.text, b.line)]
        try:
            pairs = [(k, v) for k, v in (sorted(coll.items()) if isinstance(coll, dict) else enumerate(coll or []))]
        except TypeError:
            self.env.out.error(b.file, b.line, f"dynamic {label!r}: for_each must be a collection")
            return []
        charge(b.file, len(pairs), "dynamic blocks", b.line)
        items = []
        for k, v in pairs:
            inner = scope.bind(**{iterator: {"key": k, "value": v}})
            value = self.eval_body(content[0].body, inner)
            value.line = content[0].line
            items.append(value)
        return items

    # collection ----------------------------------------------------------------
    def collect(self, resources: list[TfResource]) -> None:
        """The IAM resource instances of this module and of the local modules it calls."""
        for key, block in self.module.resources.items():
            if block.labels[0] not in IAM_TYPES:
                continue
            insts = self.instances("managed", block)
            for inst in insts if isinstance(insts, list) else []:
                resources.append(inst.resource())
        for name, block in self.module.modules.items():
            children = self.children(name, block)
            for _, child in children if isinstance(children, list) else []:
                child.collect(resources)


class RootEnvironment:
    """One root module's evaluation: its collector, file boundary and loaded modules."""

    def __init__(self, source: "TerraformSource", workspace: Workspace, root_dir: Path, out: Collector):
        self.source, self.workspace, self.root_dir, self.out = source, workspace, root_dir, out
        self.boundary = source.boundary(workspace, root_dir)
        self._active: set = set()
        self._noted: set = set()
        self._downloads: Downloads | None = None

    def downloads(self) -> Downloads:
        if self._downloads is None:
            self._downloads = read_downloads(self.root_dir, self.workspace)
            if self._downloads.error:
                self.out.error(self._downloads.file, self._downloads.line, self._downloads.error)
        return self._downloads

    def guarded(self, key, compute, fallback):
        """Evaluate once at a time per key: a reference cycle becomes an error value, not a hang."""
        if key in self._active:
            raise EvalError("reference cycle")
        self._active.add(key)
        try:
            return compute()
        finally:
            self._active.discard(key)

    def note_once(self, block: Block, message: str, prefix: str = "") -> None:
        address = prefix + ("module." if block.type == "module" else "data." if block.type == "data" else "") \
            + ".".join(block.labels)
        if block.type != "module" and not (block.type == "resource" and block.labels[0] in IAM_TYPES):
            return  # only what decides principals and grants is worth a note; the rest stays Unknown
        if (address, message) not in self._noted:
            self._noted.add((address, message))
            pid = address if block.type == "resource" and block.labels[0] in PRINCIPAL_TYPES else None
            self.out.note(block.file, block.line, f"{address}: {message}", pid)

    def resolve_path(self, path: str) -> Path | None:
        p = Path(path)
        target = (p if p.is_absolute() else self.root_dir / p).resolve()
        return target if within(target, [self.boundary]) else None

    def module_source(self, inst: ModuleInstance, block: Block):
        node = block.body.attrs.get("source")
        source = inst.ev.safe(node, Scope(inst, block.file, block.src)) if node is not None else None
        name = block.labels[0]
        if not isinstance(source, str) or not source:
            self.out.error(block.file, block.line, f"module {name} needs a literal source")
            return Unknown(f"module {name} has no usable source")
        if not (source.startswith("./") or source.startswith("../")):
            return self.downloaded_module(inst, block, source)
        target = (inst.module.dir / source).resolve()
        if not within(target, [self.boundary]):
            self.out.note(block.file, block.line, f"module {name}: {source} is outside the scanned repository; "
                                                  "not followed")
            return Unknown(f"module {name} is outside the scanned repository")
        module = self.source.module(self.workspace, target, self.out)
        if module is None:
            self.out.error(block.file, block.line, f"module {name}: {source} has no .tf files")
            return Unknown(f"module {name} source {source} not found")
        return module


    def downloaded_module(self, inst: ModuleInstance, block: Block, source: str):
        """A remote module, read where `terraform init` put it (trusted as Terraform would trust it),
        else unreadable: an unresolved grant, or a note when `.iamgate.yml` trusts its source."""
        name = block.labels[0]
        key = f"{inst.key}.{name}" if inst.key else name
        downloads = self.downloads()
        listed = downloads.dir_of(key)
        why = f"not downloaded here (no .terraform/modules/modules.json entry {key!r})"
        if downloads.tracked:
            self.note_tracked(downloads.file)
            why = f"not downloaded: git tracks the .terraform folder ({downloads.file}), so the author wrote it"
            listed = None
        elif listed is not None:
            version = inst.ev.safe(block.body.attrs["version"], Scope(inst, block.file, block.src)) \
                if "version" in block.body.attrs else None
            wrong = downloads.mismatch(key, source, version)
            if wrong:
                why = f"its .terraform/modules/modules.json entry {key!r} is not this module's download ({wrong})"
                listed = None
        if listed is None:
            return self.unreadable_module(block, source, why)
        where = f"{listed!r} (from {downloads.file}, key {key!r})"
        target = (self.root_dir / listed).resolve()
        if not within(target, [self.boundary]):
            self.out.note(block.file, block.line, f"module {name}: the downloaded directory {where} is outside "
                                                  "the scanned repository; not followed")
            return Unknown(f"module {name} is outside the scanned repository")
        module = self.source.module(self.workspace, target, self.out) if target.is_dir() else None
        if module is None:
            return self.unreadable_module(block, source, f"the downloaded directory {where} is missing or has no "
                                                         "configuration files")
        return module

    def note_tracked(self, file: str | None) -> None:
        if ("tracked", file) not in self._noted:
            self._noted.add(("tracked", file))
            self.out.note(file or "", None, "git tracks this .terraform folder: it holds what the author committed, "
                                            "not what terraform init downloads; its modules are not read")

    def unreadable_module(self, block: Block, source: str, why: str):
        """A remote module iamgate cannot read could grant anything, unless its source is trusted."""
        name = block.labels[0]
        trusted = next((g for g in self.workspace.options.trusted_modules if glob_match(g, source)), None)
        if trusted:
            self.out.note(block.file, block.line, f"module {name}: source {source!r} is {why}; its principals and "
                                                  f"policies are not read (trusted-modules: {trusted!r})")
        else:
            self.out.note(block.file, block.line, f"module {name}: source {source!r} is {why}; what it grants "
                                                  "cannot be read (list the source under trusted-modules in "
                                                  ".iamgate.yml to trust it)", grant=True)
        return Unknown(f"module {name} comes from {source}, a remote module that is not read")
