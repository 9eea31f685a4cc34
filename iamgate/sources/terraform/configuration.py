"""Terraform HCL (`.tf`): IAM roles, users, groups and their policies, evaluated statically.

Every folder of `.tf` files is a module. Folders that another scanned folder calls as a local
module (`source = "./modules/x"`) are read through that call, with its inputs; the others are
root modules. Remote modules are read where `terraform init` downloaded them (listed in
`.terraform/modules/modules.json`). Nothing is run: values known only at apply time, and remote
modules that were not downloaded, are reported as unresolved at their line.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ...model import ScanError, SourceResult
from .. import SOURCES, Source, Workspace, within
from ..budget import BudgetExceeded, budget
from ..collector import Collector
from ..loaders import LoadError
from .expressions import Scope
from .functions import evaluator
from .hcl import Block, EvalError, fix_heredoc_markers, read_file
from .iam import IamBuilder, TfResource
from .json_syntax import read_json_config, read_json_values
from .modules import ModuleInstance, RootEnvironment, TfModule
from .overrides import apply_override, config_suffix, select, stem


def _merged(results: list[SourceResult]) -> SourceResult:
    return SourceResult(tuple(p for r in results for p in r.principals),
                        tuple(u for r in results for u in r.unresolved), tuple(e for r in results for e in r.errors))


@SOURCES.register
class TerraformSource(Source):
    name = "terraform"
    priority = 30
    description = "Terraform and OpenTofu (.tf, .tf.json, .tofu, .tofu.json, tfvars, override files), with modules"

    def __init__(self):
        self._modules: dict[Path, TfModule | None] = {}
        self._parse_errors: dict[Path, list[ScanError]] = {}

    def collect(self, workspace: Workspace) -> SourceResult:
        dirs: dict[Path, list[Path]] = {}
        for path in workspace.unclaimed():
            if config_suffix(path.name):
                dirs.setdefault(path.parent, []).append(path)
        if not dirs:
            return SourceResult()
        loader_out = Collector(self.name, workspace.options.managed_policy_dir)
        roots = self.root_modules(workspace, dirs, loader_out)
        results = [loader_out.result()]
        principals_seen: dict[tuple, str] = {}
        for root in roots:
            results.append(self.collect_root(workspace, root, principals_seen))
        for d, files in dirs.items():
            for f in files:
                workspace.claim(f)
        return _merged(results)

    def root_modules(self, workspace: Workspace, dirs: dict[Path, list[Path]], out: Collector) -> list[Path]:
        """The folders no other scanned folder calls as a local module, each parsed once."""
        for d, files in dirs.items():
            self.module(workspace, d, out, files)
        called = set()
        for d in dirs:
            module = self._modules.get(d)
            for block in module.modules.values() if module else []:
                src = block.body.attrs.get("source")
                text = _literal(src, block)
                if text and (text.startswith("./") or text.startswith("../")):
                    target = (d / text).resolve()
                    if target != d:
                        called.add(target)
        return sorted([d for d in dirs if d not in called] or list(dirs))

    def collect_root(self, workspace: Workspace, root: Path, seen: dict) -> SourceResult:
        module = self._modules.get(root)
        if module is None:
            return SourceResult()
        if module.parts:
            return _merged([self.collect_module(workspace, root, part, seen) for part in module.parts])
        return self.collect_module(workspace, root, module, seen)

    def collect_module(self, workspace: Workspace, root: Path, module: TfModule, seen: dict) -> SourceResult:
        out = Collector(self.name, workspace.options.managed_policy_dir)
        env = RootEnvironment(self, workspace, root, out)
        resources: list[TfResource] = []
        try:
            with budget():  # count, for_each, for: at most budget.ELEMENTS per file
                inst = ModuleInstance(env, module, "", self.tfvars(workspace, root, out))
                inst.collect(resources)
                IamBuilder(out, resources).run()
        except BudgetExceeded as e:
            out.drafts.clear()  # what was read before the budget ran out is not the whole grant
            out.error(e.file, e.line, str(e))
        except (EvalError, RecursionError) as e:
            out.error(workspace.rel(root), None, f"cannot evaluate this module: {e}")
        except Exception as e:  # noqa: BLE001 - one module this reader cannot follow must not stop the scan
            out.error(workspace.rel(root), None, f"cannot evaluate this module ({type(e).__name__}: {e})")
        result = out.result()
        # the same module read from two roots: qualify its addresses with the root folder
        rel_root = workspace.rel(root)
        fixed, renamed = [], {}
        for p in result.principals:
            key = (p.id, p.location.file if p.location else "")
            if key in seen and seen[key] != rel_root:
                renamed[p.id] = f"{rel_root}#{p.id}"
                p = replace(p, id=renamed[p.id], aliases=p.aliases + (p.id,))
            else:
                seen[key] = rel_root
            fixed.append(p)
        notes = tuple(replace(u, principal_id=renamed[u.principal_id]) if u.principal_id in renamed else u
                      for u in result.unresolved)  # a note stays with its principal
        return SourceResult(tuple(fixed), notes, result.errors)

    def module(self, workspace: Workspace, directory: Path, out: Collector,
               files: list[Path] | None = None) -> TfModule | None:
        """The module in a folder: the scanned .tf files there, or all of them for a called module."""
        if directory in self._modules:
            return self._modules[directory]
        if files is None:
            files = sorted(p for p in directory.iterdir() if config_suffix(p.name)) if directory.is_dir() else []
        primary, overrides, shadowed = select(files)
        if not primary:
            self._modules[directory] = None
            for path in files:
                workspace.claim(path)
            return None
        errors: list[ScanError] = []
        for path in shadowed:
            twin = stem(path.name) + config_suffix(path.name).replace(".tf", ".tofu", 1)
            out.note(workspace.rel(path), None, f"Terraform reads {path.name}, OpenTofu reads {twin} instead (and "
                                                "iamgate with it); which one is deployed is not in the code, so "
                                                f"what {path.name} grants is not judged", grant=True)
            workspace.claim(path)
        parsed = [(rel, body) for rel, body in (self.parse(workspace, p, errors) for p in primary) if body]
        dup_errors: list[ScanError] = []
        module = TfModule(directory, parsed, dup_errors)
        for rel, body in (self.parse(workspace, p, errors) for p in overrides):
            if body is not None:
                apply_override(module, rel, body, errors)
        if dup_errors and len(parsed) > 1:
            # Files that redeclare each other's blocks are separate configurations (test inputs, examples)
            module.parts = [TfModule(directory, [f], errors) for f in parsed]
            first = dup_errors[0]
            out.note(first.file, first.line, f"{first.message.split(' (')[0]} is declared in more than one file of "
                                             f"{workspace.rel(directory)}; each file is read as its own configuration")
        else:
            errors.extend(dup_errors)
        out.errors.extend(errors)
        self._modules[directory] = module
        return module

    @staticmethod
    def parse(workspace: Workspace, path: Path, errors: list[ScanError]):
        """(relative path, Body) of one configuration file, native or JSON syntax; Body None if unreadable."""
        rel = workspace.rel(path)
        workspace.claim(path)
        try:
            text = workspace.text(path)
            return rel, (read_json_config(text, rel) if path.name.endswith(".json") else read_file(text, rel))
        except LoadError as e:
            errors.append(ScanError(rel, e.line, e.message))
        except OSError as e:
            errors.append(ScanError(rel, None, f"cannot read: {e.strerror}"))
        except RecursionError:
            errors.append(ScanError(rel, None, "invalid HCL: nested too deeply to read"))
        return rel, None

    def tfvars(self, workspace: Workspace, root: Path, out: Collector) -> dict:
        """The variable values Terraform loads by itself in a root module, later files winning:
        "terraform.tfvars, if present; terraform.tfvars.json, if present; any *.auto.tfvars or
        *.auto.tfvars.json files, processed in lexical order of their filenames"
        (https://developer.hashicorp.com/terraform/language/values/variables#variable-definition-precedence),
        then a named deployment's `-var-file`s, in their order (issue 21).
        In a `.tfvars.json` file every value is a literal JSON value, never a template."""
        inputs: dict = {}
        auto = sorted([*root.glob("*.auto.tfvars"), *root.glob("*.auto.tfvars.json")], key=lambda p: p.name)
        extra = {workspace.base / f: f for f in workspace.options.var_files}  # shown as the config names them
        for path in [root / "terraform.tfvars", root / "terraform.tfvars.json", *auto, *extra]:
            if path in extra and not path.is_file():
                out.error(extra[path], None, "var-file of the deployment: no such file")
                continue
            if not path.is_file():
                continue
            rel = extra.get(path) or workspace.rel(path)
            workspace.claim(path)
            try:
                text = workspace.text(path)
                if path.name.endswith(".json"):
                    values, _ = read_json_values(text, rel)
                    inputs.update({name: (lambda v=v: v) for name, v in values.items()})
                    continue
                body = read_file(text, rel)
            except (LoadError, OSError) as e:
                out.error(rel, getattr(e, "line", None), getattr(e, "message", str(e)))
                continue
            scope = Scope(_NoReferences(), rel, fix_heredoc_markers(text))
            for name, node in body.attrs.items():
                inputs[name] = _const(node, scope)
        return inputs

    @staticmethod
    def boundary(workspace: Workspace, directory: Path) -> Path:
        """Files and modules are followed only inside the repository (the git root, else the scan root)."""
        for parent in [directory, *directory.parents]:
            if (parent / ".git").exists():
                return parent
        for root in workspace.roots:
            base = root if root.is_dir() else root.parent
            if within(directory, [base]):
                return base
        return directory


class _NoReferences:
    def reference(self, name, steps, scope, node):
        raise EvalError("references are not allowed in .tfvars")

    def read_file(self, path, scope, node):
        raise EvalError("functions reading files are not allowed in .tfvars")

    file_exists = read_file


def _const(node, scope):
    value = evaluator().safe(node, scope)
    return lambda: value


def _literal(node, block: Block) -> str | None:
    if node is None:
        return None
    value = evaluator().safe(node, Scope(_NoReferences(), block.file, block.src))
    return value if isinstance(value, str) else None


def _named_arn(child, text: str, names: dict[str, str]) -> tuple[str, str] | None:
    """(type, name) where `text` is exactly `${<the child's prefix><type>.<name>.arn}` of a resource with one
    instance whose naming argument resolves to a string."""
    m = re.fullmatch(r"\$\{" + re.escape(child.prefix) + r"([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.arn\}", text or "")
    if not m or m.group(1) not in names:
        return None
    block = child.module.resources.get(f"{m.group(1)}.{m.group(2)}")
    if block is None or "count" in block.body.attrs or "for_each" in block.body.attrs:
        return None
    instances = child.instances("managed", block)
    if not isinstance(instances, list) or len(instances) != 1 or names[m.group(1)] not in block.body.attrs:
        return None
    value = instances[0].attr(names[m.group(1)])
    return (m.group(1), str(value)) if isinstance(value, str) and "${" not in value and value else None


def module_outputs(directory: Path, roots, names: dict[str, str] | None = None) -> dict[str, str | tuple]:
    """`module.NAME.OUTPUT` -> the string the evaluator resolves that output to, for each call of the root
    module in `directory` with one instance (no `count`, no `for_each`). Only values known in full: an output
    with an unknown part is left out. An output that is exactly the `arn` of one of the module's resources
    (known at apply time only) maps to (resource type, its name) where `names` (resource type -> the argument
    that names it) says which argument and the evaluator resolves it: the file's own resources are matched
    by name the same way."""
    from ..policy_document import Unknown
    from .modules import ModuleOutputs
    workspace = Workspace([str(r) for r in roots])
    source = TerraformSource()
    out = Collector(source.name, None)
    files = sorted(p for p in directory.iterdir() if config_suffix(p.name)) if directory.is_dir() else []
    found: dict[str, str | tuple] = {}
    try:
        with budget():
            module = source.module(workspace, directory, out, files)
            if module is None or module.parts:
                return {}
            inst = ModuleInstance(RootEnvironment(source, workspace, directory, out), module, "",
                                  source.tfvars(workspace, directory, out))
            for name, block in sorted(module.modules.items()):
                if "count" in block.body.attrs or "for_each" in block.body.attrs:
                    continue
                children = inst.children(name, block)
                if isinstance(children, Unknown) or len(children) != 1:
                    continue
                child = children[0][1]
                for output in sorted(child.module.outputs):
                    try:
                        value = ModuleOutputs(child).get(output, None)
                    except Exception:  # noqa: BLE001 - an output this reader cannot evaluate is not a reference
                        continue
                    if isinstance(value, str) and "${" not in value:
                        found[f"module.{name}.{output}"] = str(value)
                    elif isinstance(value, Unknown) and names:
                        named = _named_arn(child, value.text, names)
                        if named:
                            found[f"module.{name}.{output}"] = named
    except Exception:  # noqa: BLE001 - a configuration this reader cannot follow: the outputs found so far
        return found
    return found
