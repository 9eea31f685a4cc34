"""Apply a remediation to the files it names: each file's text edits, the new text and its hunks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import fix_json, fix_terraform, fix_yaml
from .commands import UsageError
from .files import write_text_atomic
from .fix_edits import Edit, Hunk, apply_edits, hunks, unified_diff
from .remediate import Problem, Remediation, StatementFix


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
    if suffix == ".tf":
        return fix_terraform
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip("\ufeff \t\r\n")[:1] in "{["):
        return fix_json
    if suffix in (".yaml", ".yml", ".template"):
        return fix_yaml
    return None


def outside_or_linked(path: Path, base: Path) -> str | None:
    """Why `path` must not be written: outside the repository (`base`), or reached through a symlink."""
    try:
        parts = path.absolute().relative_to(base.absolute()).parts
    except ValueError:
        return "the file is outside the repository"
    step = base.absolute()
    for part in parts:
        step = step / part
        if step.is_symlink():
            return f"{step.relative_to(base.absolute()).as_posix()} is a symlink; iamgate does not write through it"
    if base.resolve() not in path.resolve().parents:
        return "the file is outside the repository"
    if ".terraform" in parts:
        return "the file is in a module `terraform init` downloaded (.terraform/); change it where it comes from"
    return None


def fix_files(remediation: Remediation, base: str | Path = ".") -> tuple[list[FileFix], list[Problem]]:
    out: list[FileFix] = []
    problems: list[Problem] = []
    for file in remediation.files:
        fixes: list[StatementFix] = remediation.for_file(file)
        path = Path(base, file)
        unsafe = outside_or_linked(path, Path(base))
        if unsafe:
            problems += [Problem(f.location, f"statement not rewritten: {unsafe}") for f in fixes]
            continue
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems += [Problem(f.location, f"statement not rewritten: cannot read the file: {e}") for f in fixes]
            continue
        editor = editor_for(path, text)
        if editor is None:
            problems += [Problem(f.location, "statement not rewritten: iamgate cannot edit this kind of file")
                         for f in fixes]
            continue
        edits, found = editor.edits(text, fixes)
        problems += found
        if edits:
            out.append(FileFix(file, path, text, apply_edits(text, edits), tuple(edits)))
    return out, problems


def write(fixes: list[FileFix]) -> None:
    """Each file atomically, keeping its mode; a file that cannot be written is a usage error naming it."""
    for f in fixes:
        try:
            write_text_atomic(f.path, f.new, keep_mode=True)
        except OSError as e:
            raise UsageError(f"cannot write {f.path}: {e.strerror or e}") from None
