"""Stage 1: infrastructure code -> principals and their statements, each with file:line.

A source is one module with a class registered by `@SOURCES.register`: `policy_json` and
`serverless` here, `cloudformation/` (templates, SAM, CDK, on one template evaluator) and
`terraform/` (`.tf` folders and plans, on one HCL evaluator). Sources run in `priority` order over
one shared `Workspace`; a source claims the files it reads so that no file is read twice (a SAM
template is claimed before plain CloudFormation). What they share: `loaders` (JSON and YAML with
lines), `policy_document` (statements with unknown parts), `collector` (assembling principals).
"""
from __future__ import annotations

import fnmatch
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..model import Principal, ScanError, Skipped, SourceResult, Unresolved
from ..registry import Registry
from ..repo import repo_root
from .loaders import LoadError, load_document

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".terraform", ".venv", "venv", "__pycache__",
             ".tox", ".mypy_cache", ".pytest_cache", ".serverless", ".aws-sam"}
DOC_SUFFIXES = {".json", ".yaml", ".yml", ".template"}
DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ScanOptions:
    parameters: dict = field(default_factory=dict, hash=False)  # CloudFormation overrides
    managed_policy_dir: str | None = None
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    workspace: str | None = None  # in the Action: nothing whose real path leaves this folder is read
    exclude: tuple[str, ...] = ()  # the config's `exclude:` path globs, relative to the base
    # A named deployment's resolution (issue 21): its Terraform `-var-file`s (relative to the base folder,
    # read only inside the scanned paths) and its `terraform.workspace`; its parameters are in `parameters`.
    var_files: tuple[str, ...] = ()
    terraform_workspace: str | None = None
    trusted_modules: tuple[str, ...] = ()  # `.iamgate.yml` trusted-modules: remote module sources trusted unread


def excluded(rel: str, globs) -> bool:
    """Does the config exclude this path (`docs/*`, `legacy/**`, `services/api/serverless.ts`) or a folder above it?"""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(c, g.strip("/").removesuffix("/**")) or fnmatch.fnmatchcase(c, g)
               for g in globs for c in candidates)


OUTSIDE_ROOTS = "its real path leaves the scanned paths (a symbolic link); not read"


def within(path: Path, folders) -> bool:
    return any(path == f or f in path.parents for f in folders)


class Workspace:
    """The files under the scanned paths, parsed once and shared by every source."""

    def __init__(self, paths: list[str], options: ScanOptions | None = None, base: str | None = None):
        self.options = options or ScanOptions()
        self.base = Path(base or os.getcwd()).resolve()
        self.roots: list[Path] = []
        self.files: list[Path] = []
        self.errors: list[ScanError] = []
        self.skipped: list[Skipped] = []
        self._claimed: set[Path] = set()
        self._docs: dict[Path, object] = {}
        fence = Path(self.options.workspace).resolve() if self.options.workspace else None
        for p in paths:
            path = Path(p)
            if not path.exists():
                self.errors.append(ScanError(p, None, "no such file or directory"))
                continue
            if fence is not None and not within(path.resolve(), [fence]):
                self.skipped.append(Skipped(self._shown(path), "its real path leaves the workspace; not read"))
                continue
            self.roots.append(path.resolve())
        for path in self.roots:
            if path.is_file():
                self.files.append(path)
                continue
            for dirpath, dirnames, filenames in os.walk(path):
                for d in list(dirnames):  # os.walk does not follow links to folders: list those that leave
                    link = Path(dirpath, d)
                    if link.is_symlink() and not within(link.resolve(), self.roots):
                        self.skipped.append(Skipped(self._shown(link), OUTSIDE_ROOTS))
                dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
                for f in sorted(filenames):
                    real = Path(dirpath, f).resolve()
                    if within(real, self.roots):
                        self.files.append(real)
                    else:
                        self.skipped.append(Skipped(self._shown(Path(dirpath, f)), OUTSIDE_ROOTS))
        self.files = list(dict.fromkeys(self.files))
        if self.options.exclude:
            self.files = [f for f in self.files if not excluded(self.rel(f), self.options.exclude)]
        # What may be read at all: the scanned paths and the repositories around them (Terraform's
        # local modules), never a link's target elsewhere; in the Action only inside the workspace.
        readable = set(self.roots) | {r for r in map(repo_root, self.roots) if r is not None}
        self.readable = [r for r in readable if fence is None or within(r, [fence])]

    def _shown(self, path: Path) -> str:
        """A path as given (not its target): relative to the base where it is under it."""
        absolute = Path(os.path.abspath(path))
        try:
            return absolute.relative_to(self.base).as_posix()
        except ValueError:
            return absolute.as_posix()

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
        if not within(path.resolve(), self.readable):
            raise LoadError(OUTSIDE_ROOTS)
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
        if not within(path.resolve(), self.readable):
            return ""
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
    skipped_by_sources: list[Skipped] = []
    sources = sorted(SOURCES.all().values(), key=lambda s: (s.priority, s.name))
    for cls in sources:
        if only and cls.name not in only:
            continue
        result = cls().collect(workspace)
        principals.extend(result.principals)
        unresolved.extend(result.unresolved)
        errors.extend(result.errors)
        skipped_by_sources.extend(result.skipped)
    skipped = list(workspace.skipped) + skipped_by_sources
    for path, doc in workspace._docs.items():  # tried as JSON/YAML by every source, claimed by none
        if isinstance(doc, LoadError) and not workspace.is_claimed(path) and path in workspace.files:
            where = f" (line {doc.line})" if doc.line else ""
            skipped.append(Skipped(workspace.rel(path), f"not read as IaC: it does not parse{where}: {doc.message}"))
    return SourceResult(tuple(principals), tuple(unresolved), tuple(errors), tuple(skipped))
