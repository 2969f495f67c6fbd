"""Errors that explain themselves: what failed, which file or key, and what to do about it."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class LabaugError(RuntimeError):
    """A failure with a known cause; ``fix`` says what to do (a file to delete, a key to set)."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message if not fix else f"{message}; fix: {fix}")
        self.fix = fix


class CorruptFileError(LabaugError):
    """A file exists but cannot be read; the message names it and what to do."""

    def __init__(self, path: str | os.PathLike[str], reason: str, fix: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path} is unreadable ({reason})",
                         fix or f"delete {self.path} and rerun snakemake; the rule that writes "
                                "it runs again")


class CheckpointInUseError(LabaugError):
    """Another trainer holds the lock of a checkpoint."""


def quarantine(path: str | os.PathLike[str]) -> Path | None:
    """Move an unreadable file aside to ``<path>.corrupt`` (replacing an older one); return where,
    or None when it is already gone (another job moved it)."""
    src = Path(path)
    dst = src.with_name(src.name + ".corrupt")
    try:
        os.replace(src, dst)
    except FileNotFoundError:
        return None
    return dst


def quarantined(directories: list[str | os.PathLike[str]]) -> list[Path]:
    """The files that a job moved aside (``<file>.corrupt`` under ``directories``), as the
    paths to rebuild (the workflow reruns what depends on them)."""
    found = []
    for directory in directories:
        root = Path(directory)
        if root.is_dir():
            found += [p.with_name(p.name.removesuffix(".corrupt"))
                      for p in sorted(root.rglob("*.corrupt"))]
    return found



class ResourceError(LabaugError):
    """A job ran out of something outside the project: disk space, memory, file permissions."""


class DiskFullError(ResourceError):
    """No space left on the device that a file was being written to."""


class OutOfMemoryError(ResourceError):
    """The host or GPU ran out of memory."""


class PermissionDeniedError(ResourceError):
    """A file or directory could not be written or read for lack of permission."""


DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}
LOW_SPACE_BYTES = 1 << 20
"""A write that fails where less than this is free is taken for a full disk, whatever library
reported it (torch and netCDF wrap the OS error in messages of their own)."""
MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory",
                "not enough memory")


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and every exception it was raised from or during, outermost first."""
    out: list[BaseException] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        todo += [e.__cause__, e.__context__]
    return out


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes free on the filesystem that holds ``path`` (its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def resource_error(err: BaseException, path: str | os.PathLike[str] | None = None
                   ) -> ResourceError | None:
    """What ``err`` means when it is a lack of disk space, memory or permission (looking through
    the exceptions it wraps), as one error naming ``path`` (or the file the OS named) and what
    to do; None for any other failure. A write to ``path`` that failed in another way where the
    disk is (nearly) full is taken for a full disk too."""
    errors = _chain(err)
    for e in errors:
        if isinstance(e, ResourceError):
            return e
        named = path if path is not None else getattr(e, "filename", None)
        where = f" ({named})" if named else ""
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            return disk_full(named)
        if isinstance(e, OSError) and e.errno in NO_PERMISSION:
            return PermissionDeniedError(
                f"permission denied{where}: {e.strerror or e}",
                fix="make the file and its directory writable by this user (or choose another "
                    "output_root), then rerun")
        if isinstance(e, MemoryError) or (
                isinstance(e, RuntimeError) and any(w in str(e).lower() for w in MEMORY_WORDS)):
            said = str(e).splitlines()[0][:200] if str(e) else "MemoryError"
            return OutOfMemoryError(
                f"out of memory{where}: {said}",
                fix="give the job more memory (the rule's mem_mb, a bigger SLURM allocation) or "
                    "make it smaller (resnet.batch_size, resnet.width, fewer resnet.runs_per_gpu),"
                    " then rerun; finished results are kept")
    if path is not None and isinstance(err, Exception):
        free = free_bytes(path)
        if free is not None and free < LOW_SPACE_BYTES:
            return disk_full(path)
    return None


def disk_full(path: str | os.PathLike[str] | None) -> DiskFullError:
    """The error for a full disk at ``path``."""
    free = free_bytes(path) if path is not None else None
    left = f"; {free / 2**20:.1f} MiB free there" if free is not None else ""
    return DiskFullError(
        f"no space left on the device while writing {path or 'a file'}{left}",
        fix="free disk space (or point output_root at a larger disk) and rerun; finished "
            "results are kept and nothing half-written is left behind")
