"""Atomic writes: a uniquely named temporary file beside the target, then a rename. A run killed
at any moment leaves the old file or the new one, never half of either."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def write_bytes_atomic(path: str | Path, data: bytes, keep_mode: bool = False, fsync: bool = True) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if keep_mode and path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:  # False only where a durable record can redo the write (iamgate.usage.history)
                os.fsync(f.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path: str | Path, text: str, keep_mode: bool = False) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), keep_mode)


def write_json_atomic(path: str | Path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
