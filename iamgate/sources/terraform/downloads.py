"""Modules that `terraform init` downloaded: `.terraform/modules/modules.json` beside a root module.

Terraform writes one entry per module call, keyed by the call path (`vpc`, `eks.node_group`), with
the folder it downloaded the module into (`Dir`, relative to the root module), the `Source` it was
installed from and the `Version` chosen. iamgate only reads this manifest; it never runs terraform
and never downloads anything. It trusts the folder only as Terraform would:
- a `.terraform/` that git tracks was committed by the author, not downloaded by `terraform init`
  (Terraform's own `.gitignore` advice keeps it out of the repository): it is ignored, with a note;
- an entry whose `Source` is not the module block's source, or whose `Version` does not meet the
  block's `version` constraint, is one `terraform plan` would refuse ("Module source has changed",
  "Module version requirements have changed"; run `terraform init`): it is ignored.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..loaders import LoadError

MANIFEST = Path(".terraform") / "modules" / "modules.json"


@dataclass(frozen=True)
class Downloads:
    file: str | None  # the manifest, relative to the scan base; None when there is none
    dirs: dict  # call key ("a.b") -> Dir as written in the manifest
    error: str | None = None
    line: int | None = None
    installed: dict = field(default_factory=dict)  # call key -> (Source, Version) as written in the manifest
    tracked: bool = False  # git tracks the .terraform folder: the author's files, not a download

    def dir_of(self, key: str) -> str | None:
        return self.dirs.get(key)

    def mismatch(self, key: str, source: str, constraint) -> str | None:
        """Why the entry is not the download of this module block (None when it is)."""
        got_source, got_version = self.installed.get(key, (None, None))
        if got_source is not None and normal_source(got_source) != normal_source(source):
            return f"it was installed from {got_source!r}, not from {source!r}"
        if isinstance(constraint, str) and constraint.strip():
            if not isinstance(got_version, str) or not meets(got_version, constraint):
                return f"its version {got_version!r} does not meet the constraint {constraint!r}"
        return None


_REGISTRY = re.compile(r"^[0-9A-Za-z-]+/[0-9A-Za-z_-]+/[0-9a-z]+(//.*)?$")


def normal_source(source: str) -> str:
    """A module source as Terraform records it: registry addresses with their host, GitHub
    shorthand as the git URL it stands for."""
    s = source.strip()
    if _REGISTRY.match(s):
        return "registry.terraform.io/" + s
    if s.startswith("github.com/"):
        return "git::https://" + s.split("//", 1)[0] + ".git" + ("//" + s.split("//", 1)[1] if "//" in s else "")
    return s


def _version(text: str):
    m = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(-[0-9A-Za-z.-]+)?$", text.strip())
    if m is None:
        return None
    return tuple(int(g or 0) for g in m.groups()[:3]), m.group(4) or ""


def meets(version: str, constraint: str) -> bool:
    """Terraform's version constraint syntax (=, !=, >, >=, <, <=, ~>), comma-separated; a
    constraint or version iamgate cannot read is not met."""
    got = _version(version)
    if got is None:
        return False
    for part in constraint.split(","):
        m = re.match(r"^\s*(=|!=|>=|<=|>|<|~>)?\s*(\S+)\s*$", part)
        want = _version(m.group(2)) if m else None
        if want is None:
            return False
        op, (g, gpre), (w, wpre) = m.group(1) or "=", got, want
        if gpre and not (op == "=" and gpre == wpre):
            return False  # a pre-release only by its exact version
        ok = {"=": g == w and gpre == wpre, "!=": g != w, ">": g > w, ">=": g >= w, "<": g < w, "<=": g <= w}.get(op)
        if op == "~>":
            parts = len(m.group(2).lstrip("v").split("-")[0].split("."))
            upper = (w[0] + 1, 0, 0) if parts <= 2 else (w[0], w[1] + 1, 0)
            ok = w <= g < upper
        if not ok:
            return False
    return True


def git_tracks(folder: Path) -> bool:
    """Whether git tracks any file under `folder` (git through its binary, arguments as a list)."""
    try:
        done = subprocess.run(["git", "--literal-pathspecs", "-c", "core.fsmonitor=false", "-C", str(folder.parent),
                               "ls-files", "-z", "--", folder.name], capture_output=True, timeout=30, check=False,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and bool(done.stdout.strip(b"\0"))


def read_downloads(root: Path, workspace) -> Downloads:
    """The manifest of a root module, read through the workspace (never through a link leaving it);
    a manifest that cannot be read is an error, not a guess."""
    path = root / MANIFEST
    if not path.is_file():
        return Downloads(None, {})
    file = (Path(workspace.rel(root)) / MANIFEST).as_posix()  # as linked, never a link's target
    if git_tracks(root / ".terraform"):
        return Downloads(file, {}, tracked=True)
    try:
        doc = json.loads(workspace.text(path))
    except LoadError as e:
        return Downloads(file, {}, f"cannot read the downloaded-module manifest: {e.message}", e.line)
    except (OSError, ValueError) as e:
        return Downloads(file, {}, f"cannot read the downloaded-module manifest: {e}", getattr(e, "lineno", None))
    entries = doc.get("Modules") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return Downloads(file, {}, "the downloaded-module manifest has no Modules list")
    dirs, installed = {}, {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("Key"), str) and isinstance(entry.get("Dir"), str) \
                and entry["Key"]:
            dirs[entry["Key"]] = entry["Dir"]
            installed[entry["Key"]] = (entry.get("Source") if isinstance(entry.get("Source"), str) else None,
                                       entry.get("Version"))
    return Downloads(file, dirs, installed=installed)
