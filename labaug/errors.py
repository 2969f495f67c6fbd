"""Errors that explain themselves: what failed, which file or key, and what to do about it."""

from __future__ import annotations

import os
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

