"""Where the repository is: the enclosing git work tree, found without running git."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root(start: str | Path | None = None) -> Path | None:
    """The enclosing git work tree of `start` (default: the working directory)."""
    p = Path(start or os.getcwd()).resolve()
    for d in (p, *p.parents):
        if (d / ".git").exists():
            return d
    return None


def repo_relative(file: str, root: Path | None = None) -> str:
    """A report path (relative to the working directory, or absolute) relative to the repository root."""
    root = root or repo_root()
    path = Path(file)
    absolute = path if path.is_absolute() else Path(os.getcwd(), path)
    if root is not None:
        try:
            return Path(os.path.normpath(absolute)).relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()
