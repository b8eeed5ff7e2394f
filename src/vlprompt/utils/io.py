"""Atomic file writes: a reader never sees a half-written file.

Every file vlprompt writes for later reading (checkpoints, run records, weights, feature
cache entries, few-shot manifests, split files, reports) goes through here: the bytes go
to a temporary file in the same folder, are fsynced, and the file is renamed over the
target, so a process killed at any instant (SIGKILL included) leaves either the old file
or the new one. The folder is fsynced after the rename so the new name also survives a
power loss. A kill can leave a `.<name>.*.tmp` file behind; readers never open those and
`remove_stale_temp` deletes them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import UserError

TEMP_SUFFIX = ".tmp"
#: The file that says an output folder was made by vlprompt (see `claim_output_dir`).
MARKER = ".vlprompt"


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    The file gets the permissions of any new file (0666 less the umask), not mkstemp's 0600.
    If another process deletes the temporary file before the rename (a resumed run cleaning
    its folder while an identical run writes there), the write is done again.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o666 & ~_umask()
    for attempt in range(3):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            break
        except FileNotFoundError:
            if attempt == 2 or not path.parent.is_dir():
                raise
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def run_lock(path: str | Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive lock on `path` (created; never deleted): yields whether it was taken.

    With `blocking=False` it yields False at once when another process holds it. Processes
    of concurrent identical grids use it so that one of them runs a run and the others
    skip it or wait for it. Where `fcntl` is missing (Windows), it always yields True.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield True
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def remove_stale_temp(folder: str | Path, names: Iterable[str], older_than: float = 0.0) -> int:
    """Delete the temporary files a killed writer of `names` left in `folder`; returns how many.

    Only `.<name>.*.tmp`, as `atomic_write_bytes` names them, is touched, so a folder shared
    with other files loses nothing else. Folders written by one process at a time (a run
    folder) use `older_than=0`; shared folders pass an age so a file in flight is left alone.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    prefixes = tuple(f".{name}." for name in names)
    removed = 0
    now = time.time()
    for entry in folder.iterdir():
        if not (entry.name.startswith(prefixes) and entry.name.endswith(TEMP_SUFFIX)):
            continue
        try:
            if now - entry.stat().st_mtime >= older_than:
                entry.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def os_error_message(exc: OSError) -> str:
    """One line for an OS error: the path, what went wrong, and what to do about it."""
    path = exc.filename if exc.filename is not None else None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    where = f"{path}" if path else "a file"
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return (f"cannot write {where}: no space left on its disk (or quota exceeded); free space there "
                "or choose a folder on another disk (--out, --db, $VLPROMPT_CACHE)")
    if code == errno.EROFS:
        return f"cannot write {where}: it is on a read-only file system; choose a writable folder (--out, --db)"
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied for {where}; choose a folder you can write to (--out, --db) "
                "or change its permissions")
    if code == errno.ENOENT:
        return f"{where} does not exist (or vanished while in use); check the path"
    if code == errno.ENOTDIR:
        return f"{where}: a part of this path is a file, not a folder; choose another path"
    if code == errno.EISDIR:
        return f"{where} is a folder where a file was expected; choose a file path"
    if code == errno.EEXIST:
        return f"{where} already exists; remove it or choose another path"
    return f"{where}: {exc.strerror or exc}; check the path and its disk"


class ForeignFolderError(UserError):
    """An output folder holds files vlprompt did not write (the CLI shows it as one line)."""


def claim_output_dir(path: str | Path, what: str, *, force: bool = False,
                     legacy: Iterable[str] = ()) -> bool:
    """Make `path` an output folder of vlprompt; returns whether it already was one.

    vlprompt writes only into a folder that is new, empty, or holds the `MARKER` file it
    writes there, so a user's own `config.json` or `index.html` is never replaced. Folders
    written before the marker existed are recognised by `legacy` (paths that must all be
    there). `force` writes into any folder; the files vlprompt writes replace theirs.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ForeignFolderError(f"{path} is a file; {what} needs a folder")
    ours = (path / MARKER).is_file()
    if path.is_dir() and not ours:
        # a writer killed while writing the marker leaves its `..vlprompt.*.tmp`: not the user's
        entries = sorted(e.name for e in os.scandir(path)
                         if not (e.name.startswith(f".{MARKER}.") and e.name.endswith(TEMP_SUFFIX)))
        legacy = tuple(legacy)
        ours = bool(entries) and bool(legacy) and all((path / rel).exists() for rel in legacy)
        if entries and not ours and not force:
            raise ForeignFolderError(
                f"{path} holds files that vlprompt did not write (e.g. {entries[0]}); choose a new or empty "
                f"folder, or pass --force to write the {what} into it (files of the same names are replaced)")
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).is_file():
        atomic_write_text(path / MARKER, f"This folder was written by vlprompt ({what}). vlprompt writes only "
                                         "into new or empty folders and folders holding this file.\n")
    return ours


def release_output_dir(path: str | Path) -> None:
    """Remove a folder `claim_output_dir` made for work that then failed before writing
    anything: it holds only the marker, and an empty folder left behind would only confuse."""
    path = Path(path)
    try:
        if path.is_dir() and [e.name for e in os.scandir(path)] == [MARKER]:
            (path / MARKER).unlink()
            path.rmdir()
    except OSError:
        pass  # a folder we cannot tidy is harmless
