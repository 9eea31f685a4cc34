"""Apply a remediation to the files it names: each file's text edits, the new text and its hunks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..files import write_text_atomic
from ..repo import repo_root
from ..sources import within
from . import json as fix_json
from . import resources as fix_resources
from . import terraform as fix_terraform
from . import yaml as fix_yaml
from .edits import Edit, Hunk, apply_edits, hunks, unified_diff
from .plan import Problem, Remediation, StatementFix


@dataclass(frozen=True)
class FileFix:
    file: str  # as the report shows it
    path: Path
    old: str
    new: str
    edits: tuple[Edit, ...]

    @property
    def diff(self) -> str:
        return unified_diff(self.file, self.old, self.new)

    @property
    def hunks(self) -> list[Hunk]:
        return hunks(self.file, self.old, list(self.edits))


def editor_for(path: Path, text: str):
    """The module that edits this file's syntax, by suffix (and content for `.template`)."""
    suffix = path.suffix.lower()
    if suffix in (".tf", ".tofu"):  # OpenTofu's files are the same native syntax
        return fix_terraform
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip("\ufeff \t\r\n")[:1] in "{["):
        return fix_json
    if suffix in (".yaml", ".yml", ".template"):
        return fix_yaml
    return None


def confinement(path: Path, roots) -> str | None:
    """Why `path` must not be written, if it must not: a symbolic link on the way to it (writing would
    change its target, wherever that is), a real path outside the folders the scan could read, or a
    module that `terraform init` downloaded."""
    real_roots = [Path(r).resolve() for r in roots]
    step = path.absolute()
    while True:
        if step.is_symlink():
            return f"{step.name} is a symbolic link; iamgate never writes through one"
        if step.resolve() in real_roots or step.parent == step:
            break
        step = step.parent
    if not within(path.resolve(), real_roots):
        return "the file's real path is outside the scanned paths"
    if ".terraform" in path.parts:
        return "the file is in a module `terraform init` downloaded (.terraform/); change it where it comes from"
    return None


def fix_files(remediation: Remediation, base: str | Path = ".", roots=None) -> tuple[list[FileFix], list[Problem]]:
    """`roots`: where files may be rewritten (the report's `roots`); default the repository around
    the working directory, else the working directory."""
    out: list[FileFix] = []
    problems: list[Problem] = []
    if roots is None:
        roots = [repo_root(Path.cwd()) or Path.cwd()]
    outputs_of: dict = {}  # a Terraform directory's module outputs, evaluated once for all its files
    for file in remediation.files:
        fixes: list[StatementFix] = remediation.for_file(file)
        narrow = remediation.narrowings_for(file)
        path = Path(base, file)

        def refuse(why: str) -> list[Problem]:
            return ([Problem(f.location, f"statement not rewritten: {why}") for f in fixes]
                    + [Problem(n.location, f"Resource not narrowed: {why}") for n in narrow])
        refused = confinement(path, roots)
        if refused:
            problems += refuse(refused)
            continue
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems += refuse(f"cannot read the file: {e}")
            continue
        editor = editor_for(path, text)
        if editor is None:
            problems += refuse("iamgate cannot edit this kind of file")
            continue
        edits, found = editor.edits(text, fixes) if fixes else ([], [])
        problems += found
        if narrow:
            kind = {fix_terraform: "terraform", fix_json: "json", fix_yaml: "yaml"}[editor]
            more, found = fix_resources.edits(kind, text, narrow, path, roots, outputs_of)
            taken = [(e.start, e.end) for e in edits]
            for e in more:  # never where an action edit already changes the text
                if any(e.start < b and a < e.end for a, b in taken):
                    problems.append(Problem(e.statement, "Resource not narrowed: the statement is rewritten; "
                                                         "narrow it by hand"))
                else:
                    edits.append(e)
            problems += found
        if edits:
            out.append(FileFix(file, path, text, apply_edits(text, edits), tuple(edits)))
    return out, problems


def write(fixes: list[FileFix]) -> None:
    """Each file atomically, keeping its mode; a file that cannot be written is a usage error naming it."""
    for f in fixes:
        if f.path.is_symlink():  # it became one since it was read
            raise UsageError(f"cannot write {f.path}: it is a symbolic link")
        try:
            write_text_atomic(f.path, f.new, keep_mode=True)
        except OSError as e:
            raise UsageError(f"cannot write {f.path}: {e.strerror or e}") from None
