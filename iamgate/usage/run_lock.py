"""One run per folder: a lock file holding the pid, host and start time of the run that owns it.

Written whole to a file of its own, then linked into place (the link fails if a lock exists), so
two runs cannot both take it and nobody ever reads a half-written one. A stale lock is moved aside
(atomically) before it is removed, and put back if what was moved is not the lock judged stale (a
run that broke it first has taken the folder since). A lock is stale, and broken with a message,
when its process is gone (same host), when it has outlived its run's time limit (any host: a
runner that was killed never removes its lock), or when it is unreadable.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import tempfile
from pathlib import Path

from .aws_clients import iso

LOCK_FILE = ".iamgate.lock"
GRACE = 600  # seconds past the run's own time limit before another host's lock counts as stale


class LockError(Exception):
    """Another live run holds the folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _when(text) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


class RunLock:
    """`with RunLock(folder, limit_seconds, now, note):` ...; `note(text)` is told when a stale lock is broken."""

    def __init__(self, folder: str | Path, limit_seconds: float, now: dt.datetime, note=None):
        self.path = Path(folder) / LOCK_FILE
        self.now = now
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": iso(now),
                     "expires_at": iso(now + dt.timedelta(seconds=limit_seconds + GRACE))}
        self.note = note or (lambda text: None)
        self.held = False

    def stale_reason(self, other: dict | None) -> str:
        """Why `other` (the lock's content) no longer holds the folder; "" if it does."""
        if not isinstance(other, dict):
            return "unreadable"
        pid, host = other.get("pid"), other.get("host")
        expires = _when(other.get("expires_at"))
        if expires is not None and self.now >= expires:  # no run outlives its time limit (a reused pid)
            return f"it expired at {other['expires_at']}"
        if host == self.info["host"] and isinstance(pid, int):
            return "" if _alive(pid) and pid != os.getpid() else f"process {pid} is gone"
        return "" if expires is not None else "it has no valid expiry"

    def _take(self) -> bool:
        """Link a whole lock file into place; False if a lock is there."""
        fd, name = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".new", dir=self.path.parent)
        mine = Path(name)
        os.fchmod(fd, 0o644)  # readable by a run of another user, which would otherwise take it for unreadable
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.info, f)
        try:
            os.link(mine, self.path)
        except FileExistsError:
            return False
        finally:
            mine.unlink()
        return True

    def _break(self, stale) -> None:
        """Remove the lock judged stale, and only that one."""
        aside = self.path.with_name(f"{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.stale")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:  # another run broke it first
            return
        try:
            if _read(aside) != stale:  # a run took the folder since: its lock goes back
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass
        finally:
            aside.unlink()

    def acquire(self) -> None:
        for _ in range(3):
            if self._take():
                self.held = True
                return
            other = _read(self.path)
            reason = self.stale_reason(other)
            if not reason:
                raise LockError(f"{self.path}: another run holds this folder (pid {other.get('pid')} on "
                                f"{other.get('host')}, since {other.get('started_at')}); wait for it, or delete "
                                "the file if that run is gone")
            self.note(f"{self.path}: breaking a stale lock ({reason}; held by pid {_get(other, 'pid')} on "
                      f"{_get(other, 'host')} since {_get(other, 'started_at')})")
            self._break(other)
        raise LockError(f"{self.path}: could not take the lock")

    def release(self) -> None:
        if self.held and _read(self.path) == self.info:
            try:
                self.path.unlink()
            except OSError:
                pass
        self.held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _get(data, key: str):
    return data.get(key, "?") if isinstance(data, dict) else "?"
