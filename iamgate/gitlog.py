"""Git's own history, read for the grant history (`iamgate.history`): the first-parent line of HEAD with the
paths each commit changed, and the files of any revision. Two long-lived `git` processes (argument lists,
never a shell): one `git log`, read only as far back as asked, and one `git cat-file --batch` that serves
every tree and file, so a revision costs no new process.
"""
from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from .diff import GIT_ENV

REGULAR = (b"100644", b"100755")  # no symbolic links (120000) or submodules (160000)


@dataclass
class Commit:
    sha: str
    ts: int  # committer time: when it landed on the first-parent line
    changed: frozenset = frozenset()  # repo paths it changed (both names of a rename)
    renames: Mapping[str, str] = field(default_factory=dict)  # new name -> old name


@dataclass(frozen=True)
class Unit:
    """Files (or folders) one or more principals are read from, as repo paths at the head."""
    paths: tuple[str, ...]
    folders: frozenset = frozenset()

    def touched_by(self, commit: Commit, names: Mapping[str, str]) -> bool:
        for p in self.paths:
            name = names.get(p, p)
            if p in self.folders:
                prefix = name.rstrip("/") + "/"
                if (name == "." and commit.changed) or any(c == name or c.startswith(prefix)
                                                           for c in commit.changed):
                    return True
            elif name in commit.changed:
                return True
        return False

    def before(self, commit: Commit, names: Mapping[str, str]) -> dict[str, str]:
        """The unit's names before `commit`, from its names after it (renames of files are followed)."""
        return {p: commit.renames.get(n, n) if p not in self.folders else n for p, n in names.items()}


def _spawn(args: list[str], root: Path, stdin=None) -> subprocess.Popen:
    return subprocess.Popen(["git", "--literal-pathspecs", *args], cwd=root, env={**os.environ, **GIT_ENV},
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


class FirstParentLog:
    """HEAD's first-parent line, newest first, read lazily (`read_until`)."""

    def __init__(self, root: Path):
        self.root = root
        self.commits: list[Commit] = []
        self.index: dict[str, int] = {}
        self._proc: subprocess.Popen | None = None
        self._log: Iterator[Commit] | None = None

    def _stream(self) -> Iterator[Commit]:
        self._proc = _spawn(["-c", "core.quotePath=false", "log", "--first-parent", "--root", "-M",
                             "--diff-merges=first-parent", "--name-status", "-z", "--format=%x01%H %ct", "HEAD",
                             "--"], self.root)
        buf = b""
        while chunk := self._proc.stdout.read(65536):
            buf += chunk
            *records, buf = buf.split(b"\x01")
            yield from (parse_commit(r) for r in records if r)
        if buf:
            yield parse_commit(buf)
        self._proc.wait()

    def read_until(self, ts: int | None = None, sha: str | None = None) -> None:
        """Read back to the first commit older than `ts` (None: all of it), or to `sha`."""
        if self._log is None:
            self._log = self._stream()

        def done() -> bool:
            if sha is not None:
                return sha in self.index
            return ts is not None and bool(self.commits) and self.commits[-1].ts < ts
        while not done():
            c = next(self._log, None)
            if c is None:
                self._log = iter(())
                return
            self.index[c.sha] = len(self.commits)
            self.commits.append(c)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def parse_commit(rec: bytes) -> Commit:
    """One record of `git log -z --name-status --format=%x01%H %ct`."""
    head, _, rest = rec.partition(b"\0")
    sha, ts = head.decode().split()
    tokens = [t.decode("utf-8", "surrogateescape") for t in rest.lstrip(b"\n").split(b"\0")]
    changed, renames, i = set(), {}, 0
    while i < len(tokens):
        status = tokens[i].strip()
        if not status:
            i += 1
        elif status[0] in "RC" and i + 2 < len(tokens):
            old, new = tokens[i + 1], tokens[i + 2]
            changed.update((old, new))
            if status[0] == "R":
                renames[new] = old
            i += 3
        else:
            if i + 1 < len(tokens):
                changed.add(tokens[i + 1])
            i += 2
    return Commit(sha, int(ts), frozenset(changed), renames)


class TreeReader:
    """The regular files of any revision, through one `git cat-file --batch`. Folders named in `skip`
    (`.terraform`, `node_modules`, ...) are not read, as the scan does not read them."""

    def __init__(self, root: Path, skip: frozenset = frozenset()):
        self.root, self.skip = root, skip
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        fmt = subprocess.run(["git", "rev-parse", "--show-object-format"], cwd=root, capture_output=True,
                             text=True, env={**os.environ, **GIT_ENV})
        self._oid_bytes = 32 if fmt.stdout.strip() == "sha256" else 20

    def _object(self, name: str) -> tuple[bytes, bytes] | None:
        """(type, content) of an object name such as `SHA:path`, or None when there is none."""
        if "\n" in name:
            return None
        if self._proc is None:
            self._proc = _spawn(["cat-file", "--batch"], self.root, stdin=subprocess.PIPE)
        with self._lock:
            self._proc.stdin.write(name.encode("utf-8", "surrogateescape") + b"\n")
            self._proc.stdin.flush()
            header = self._proc.stdout.readline().split()
            if len(header) != 3:
                return None  # "<name> missing"
            data = self._proc.stdout.read(int(header[2]))
            self._proc.stdout.read(1)
        return header[1], data

    def _entries(self, tree: bytes):
        """(mode, name, oid hex) of a tree object's entries."""
        i, n = 0, self._oid_bytes
        while i < len(tree):
            sp, nul = tree.index(b" ", i), tree.index(b"\0", i)
            yield tree[i:sp], tree[sp + 1:nul].decode("utf-8", "surrogateescape"), tree[nul + 1:nul + 1 + n].hex()
            i = nul + 1 + n

    def files(self, sha: str, path: str) -> list[tuple[str, bytes]]:
        """(repo path, content) of the regular files at `path` (a file, or every file under a folder)."""
        path = path.strip("/")
        parent, _, leaf = path.rpartition("/")
        if path in ("", "."):
            return self._walk(sha + "^{tree}", "")
        got = self._object(f"{sha}:{parent}") if parent else self._object(f"{sha}^{{tree}}")
        if got is None or got[0] != b"tree":
            return []
        for mode, name, oid in self._entries(got[1]):
            if name != leaf:
                continue
            if mode in REGULAR:
                blob = self._object(oid)
                return [(path, blob[1])] if blob else []
            if mode == b"40000":
                return self._walk(oid, path)
        return []

    def _walk(self, tree_name: str, prefix: str) -> list[tuple[str, bytes]]:
        got = self._object(tree_name)
        if got is None or got[0] != b"tree":
            return []
        out = []
        for mode, name, oid in self._entries(got[1]):
            sub = f"{prefix}/{name}" if prefix else name
            if mode in REGULAR:
                blob = self._object(oid)
                if blob:
                    out.append((sub, blob[1]))
            elif mode == b"40000" and name not in self.skip:
                out += self._walk(oid, sub)
        return out

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            self._proc.wait()
            self._proc = None
