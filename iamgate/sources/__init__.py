"""Stage 1: infrastructure code -> principals and their statements, each with file:line.

A source is one module in this package with a class registered by `@SOURCES.register`.
Sources run in `priority` order over one shared `Workspace`; a source claims the files it
reads so that no file is read twice (a SAM template is claimed before plain CloudFormation).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..loaders import LoadError, load_document
from ..model import Principal, ScanError, SourceResult, Unresolved
from ..registry import Registry

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".terraform", ".venv", "venv", "__pycache__",
             ".tox", ".mypy_cache", ".pytest_cache", ".serverless", ".aws-sam"}
DOC_SUFFIXES = {".json", ".yaml", ".yml", ".template"}
DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ScanOptions:
    parameters: dict = field(default_factory=dict, hash=False)  # CloudFormation overrides
    managed_policy_dir: str | None = None
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


class Workspace:
    """The files under the scanned paths, parsed once and shared by every source."""

    def __init__(self, paths: list[str], options: ScanOptions | None = None, base: str | None = None):
        self.options = options or ScanOptions()
        self.base = Path(base or os.getcwd()).resolve()
        self.roots: list[Path] = []
        self.files: list[Path] = []
        self.errors: list[ScanError] = []
        self._claimed: set[Path] = set()
        self._docs: dict[Path, object] = {}
        for p in paths:
            path = Path(p)
            if not path.exists():
                self.errors.append(ScanError(p, None, "no such file or directory"))
                continue
            self.roots.append(path.resolve())
            if path.is_file():
                self.files.append(path.resolve())
            else:
                for dirpath, dirnames, filenames in os.walk(path):
                    dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
                    self.files.extend(Path(dirpath, f).resolve() for f in sorted(filenames))
        self.files = list(dict.fromkeys(self.files))

    def rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.base).as_posix()
        except ValueError:
            return path.as_posix()

    def unclaimed(self, suffixes: set[str] | None = None) -> list[Path]:
        return [f for f in self.files if f not in self._claimed
                and (suffixes is None or f.suffix.lower() in suffixes)]

    def claim(self, path: Path) -> None:
        self._claimed.add(path.resolve())

    def is_claimed(self, path: Path) -> bool:
        return path.resolve() in self._claimed

    def text(self, path: Path) -> str:
        size = path.stat().st_size
        if size > self.options.max_file_bytes:
            raise LoadError(f"file is {size / 1048576:.1f} MiB, over the "
                            f"{self.options.max_file_bytes / 1048576:.0f} MiB limit; not read")
        data = path.read_bytes()
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise LoadError(f"not UTF-8 text (byte {e.start})") from None

    def document(self, path: Path):
        """The parsed JSON/YAML document, or a LoadError instance."""
        if path not in self._docs:
            try:
                self._docs[path] = load_document(self.text(path), path.suffix.lower())
            except LoadError as e:
                self._docs[path] = e
            except OSError as e:
                self._docs[path] = LoadError(f"cannot read: {e.strerror}")
        return self._docs[path]

    def read_claimed(self, path: Path, accepts, looks_like, on_error):
        """The document if `accepts` it (the file is then claimed), else None. A file that does not
        parse but whose text `looks_like` the format is claimed and reported through `on_error`."""
        doc = self.document(path)
        if isinstance(doc, LoadError):
            if looks_like(self.head(path)):
                self.claim(path)
                on_error(self.rel(path), doc.line, doc.message)
            return None
        if not accepts(doc):
            return None
        self.claim(path)
        return doc

    def head(self, path: Path, size: int = 65536) -> str:
        try:
            with open(path, "rb") as f:
                return f.read(size).decode("utf-8", "replace")
        except OSError:
            return ""


class Source(ABC):
    name: ClassVar[str]
    priority: ClassVar[int] = 100
    description: ClassVar[str] = ""

    @abstractmethod
    def collect(self, workspace: Workspace) -> SourceResult:
        """Read the files this source understands and claim them."""


SOURCES: Registry[Source] = Registry(__name__)


def scan(workspace: Workspace, only: list[str] | None = None) -> SourceResult:
    principals: list[Principal] = []
    unresolved: list[Unresolved] = []
    errors: list[ScanError] = list(workspace.errors)
    sources = sorted(SOURCES.all().values(), key=lambda s: (s.priority, s.name))
    for cls in sources:
        if only and cls.name not in only:
            continue
        result = cls().collect(workspace)
        principals.extend(result.principals)
        unresolved.extend(result.unresolved)
        errors.extend(result.errors)
    return SourceResult(tuple(principals), tuple(unresolved), tuple(errors))
