"""How a trial's failures read: Tune's ``error.txt`` ("Failure # N" and the error, per crash),
and which errors are the storage's (a full disk) rather than the trial's own.

A failure of the storage is not the recipe's: it is not counted against the trial's one
retry, so a search stopped by a full disk resumes every trial once space is freed.
"""

from __future__ import annotations

import errno
import re

STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)
STORAGE_WORDS = ("No space left on device", "Disk quota exceeded", "Read-only file system", "database or disk is full",
                 "File too large", "Input/output error")
_FAILURE = re.compile(r"^Failure # (\d+)", re.MULTILINE)


def storage_words(text: str) -> str | None:
    """The storage failure ``text`` reports, or None."""
    return next((word for word in STORAGE_WORDS if word in text), None)


def own_failures(error_text: str) -> int:
    """How many of the crashes in an ``error.txt`` were the trial's own (not the storage's)."""
    blocks = _FAILURE.split(error_text)[1:]  # [number, text, number, text, ...]
    if not blocks:
        return 0 if not error_text.strip() or storage_words(error_text) else 1
    return sum(1 for text in blocks[1::2] if not storage_words(text))


__all__ = ["STORAGE_ERRNOS", "STORAGE_WORDS", "own_failures", "storage_words"]
