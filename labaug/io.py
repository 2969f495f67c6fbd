"""Atomic file writes (a result is written under a temporary name, then renamed into place), and
the lock files that keep two processes off one checkpoint, one GPU slot or one shared file.

A temporary file is named ``.{name}.tmp{pid}{suffix}`` beside its target. A process killed in
the middle of a write leaves it behind; the next write of the same target removes every such
file whose process is gone, so no orphan outlives the next run. A write that fails for lack of
disk space or permission raises a `labaug.errors.ResourceError` naming the target.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from labaug.errors import resource_error


def temporary_path(final: Path) -> Path:
    """This process's temporary sibling of ``final``."""
    return final.with_name(f".{final.name}.tmp{os.getpid()}{final.suffix}")


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(final: Path) -> list[Path]:
    """Remove the temporary files of ``final`` left by processes that no longer run; the paths
    removed."""
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.tmp(\d+){re.escape(final.suffix)}$")
    removed: list[Path] = []
    if not final.parent.is_dir():
        return removed
    for candidate in final.parent.iterdir():
        match = pattern.match(candidate.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it to ``path``, on error remove it.

    Orphaned temporary files of ``path`` (their process is gone) are removed first; a failure
    for lack of disk space, memory or permission is raised as a `ResourceError` naming ``path``.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(final)
    except OSError as err:
        problem = resource_error(err, final)
        raise (problem or err) from err
    tmp = temporary_path(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException as err:
        problem = resource_error(err, final)   # before the partial file is removed
        if problem is not None:
            raise problem from err
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` and move the finished file to ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


def try_lock(path: str | os.PathLike[str]) -> int | None:
    """Take an exclusive flock on ``path`` (created if missing) without waiting: the open file
    descriptor, which holds the lock until it is closed or the process ends however it ends, or
    None where another holds it."""
    import fcntl

    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing), waiting for it if another
    process holds it; released however this process ends."""
    import fcntl

    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
