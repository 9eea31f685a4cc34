"""Which files of a folder make its module, and how override files merge into it.

Every rule here is Terraform's (or OpenTofu's, for `.tofu`), cited where it is applied:
- Configuration files: `.tf` (native syntax) and `.tf.json` (JSON syntax); OpenTofu also reads
  `.tofu` and `.tofu.json`, and "if both foo.tf and foo.tofu exist in the same directory, OpenTofu
  will only load foo.tofu" (https://opentofu.org/docs/language/files/ , "Extension precedence").
  Terraform ignores `.tofu` files. Which of the two tools deploys a folder is not in the code, so
  a `.tf` file that a `.tofu` file shadows is an unresolved grant: Terraform would apply it,
  iamgate reads OpenTofu's file.
- Override files (https://developer.hashicorp.com/terraform/language/files/override): a file named
  `override.tf` or `*_override.tf` (and the `.tf.json`, `.tofu`, `.tofu.json` forms) is skipped
  when the folder is loaded, then each is processed in lexicographical order of its name; each
  top-level block merges into the block with the same type and labels, which must exist:
  * an argument of the override block replaces the argument of the same name;
  * a nested block in the override replaces all nested blocks of that type in the original
    (a `dynamic "x"` block counts as a block of type `x`); block types the override does not
    name stay; nested blocks are not merged;
  * `locals`: "overrides are applied on a value-by-value basis, ignoring which locals block they
    are defined in";
  * `variable`: each argument (`default`, `type`, ...) replaces the original's; the default is
    converted to the (new) type when the variable is read;
  * `output`, `module`: argument by argument (`source`, `version` and inputs alike).
"""
from __future__ import annotations

import re
from dataclasses import replace

from lark import Token, Tree

from ...model import ScanError
from .hcl import Block, Body

SUFFIXES = (".tf.json", ".tofu.json", ".tf", ".tofu")
_OVERRIDE = re.compile(r"^(?:.*_)?override$")
MERGED_TYPES = {"resource", "data", "module", "output", "variable"}


def config_suffix(name: str) -> str | None:
    """The configuration suffix of a file name (`.tf.json` before `.json`), or None."""
    return next((s for s in SUFFIXES if name.endswith(s) and len(name) > len(s)), None)


def stem(name: str) -> str:
    suffix = config_suffix(name) or ""
    return name[: len(name) - len(suffix)]


def is_override(name: str) -> bool:
    return bool(_OVERRIDE.match(stem(name)))


def select(paths: list) -> tuple[list, list, list]:
    """(primary files, override files in processing order, shadowed .tf files) of one folder."""
    by_name = {p.name: p for p in paths if config_suffix(p.name)}
    shadowed = []
    for name, path in by_name.items():
        suffix = config_suffix(name)
        if suffix in (".tf", ".tf.json") and stem(name) + suffix.replace(".tf", ".tofu", 1) in by_name:
            shadowed.append(path)
    kept = [p for n, p in sorted(by_name.items()) if p not in shadowed]
    primary = [p for p in kept if not is_override(p.name)]
    overrides = [p for p in kept if is_override(p.name)]
    return primary, overrides, sorted(shadowed)


# -- merging -------------------------------------------------------------------

def foreign(node, file: str, src: str):
    """An expression read from another file than the block it is merged into: evaluated with its own
    file and text (the evaluator's `foreign_expr`)."""
    if isinstance(node, Tree) and node.data == "foreign_expr":
        return node
    return Tree("foreign_expr", [node, Token("FILE", file), Token("SRC", src)], meta=node.meta)


def _foreign_body(body: Body, file: str, src: str) -> Body:
    return Body({k: foreign(v, file, src) for k, v in body.attrs.items()}, dict(body.attr_lines),
                [replace(b, body=_foreign_body(b.body, file, src)) for b in body.blocks])


def _merge_body(base: Body, over: Body, file: str, src: str) -> Body:
    over = _foreign_body(over, file, src)
    attrs = {**base.attrs, **over.attrs}
    lines = {**over.attr_lines, **base.attr_lines}  # a location stays in the file of the block
    replaced = {b.labels[0] if b.type == "dynamic" and b.labels else b.type for b in over.blocks}
    kept = [b for b in base.blocks
            if (b.labels[0] if b.type == "dynamic" and b.labels else b.type) not in replaced]
    return Body(attrs, lines, kept + list(over.blocks))


def apply_override(module, file: str, body: Body, errors: list[ScanError]) -> None:
    """Merge one override file's blocks into a module's declarations (TfModule tables)."""
    tables = {"resource": module.resources, "data": module.data, "module": module.modules,
              "output": module.outputs, "variable": module.variables}
    for block in body.blocks:
        if block.type == "locals":
            for key, node in block.body.attrs.items():
                line = block.body.attr_lines.get(key)
                if key not in module.locals:
                    errors.append(ScanError(file, line, f"override of local value {key!r}, which is not declared "
                                                        "in a primary file (Terraform rejects this)"))
                    continue
                module.locals[key] = (node, file, block.src, line)
            continue
        if block.type not in MERGED_TYPES:
            continue  # terraform, provider and the like decide no grant
        name = ".".join(block.labels)
        table = tables[block.type]
        base: Block | None = table.get(name)
        if base is None:
            errors.append(ScanError(file, block.line, f"override of {block.type} {name!r}, which is not declared in "
                                                      "a primary file (Terraform rejects this); ignored"))
            continue
        table[name] = replace(base, body=_merge_body(base.body, block.body, file, block.src))
