"""Modules that `terraform init` downloaded: `.terraform/modules/modules.json` beside a root module.

Terraform writes one entry per module call, keyed by the call path (`vpc`, `eks.node_group`), with
the folder it downloaded the module into (`Dir`, relative to the root module). iamgate only reads
this manifest; it never runs terraform and never downloads anything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..loaders import LoadError

MANIFEST = Path(".terraform") / "modules" / "modules.json"


@dataclass(frozen=True)
class Downloads:
    file: str | None  # the manifest, relative to the scan base; None when there is none
    dirs: dict  # call key ("a.b") -> Dir as written in the manifest
    error: str | None = None
    line: int | None = None

    def dir_of(self, key: str) -> str | None:
        return self.dirs.get(key)


def read_downloads(root: Path, workspace) -> Downloads:
    """The manifest of a root module, read through the workspace (never through a link leaving it);
    a manifest that cannot be read is an error, not a guess."""
    path = root / MANIFEST
    if not path.is_file():
        return Downloads(None, {})
    file = (Path(workspace.rel(root)) / MANIFEST).as_posix()  # as linked, never a link's target
    try:
        doc = json.loads(workspace.text(path))
    except LoadError as e:
        return Downloads(file, {}, f"cannot read the downloaded-module manifest: {e.message}", e.line)
    except (OSError, ValueError) as e:
        return Downloads(file, {}, f"cannot read the downloaded-module manifest: {e}", getattr(e, "lineno", None))
    entries = doc.get("Modules") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return Downloads(file, {}, "the downloaded-module manifest has no Modules list")
    dirs = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("Key"), str) and isinstance(entry.get("Dir"), str) \
                and entry["Key"]:
            dirs[entry["Key"]] = entry["Dir"]
    return Downloads(file, dirs)
