"""Files the CLI writes for a technician (backups, exports, bundles): private and careful.

They hold employees' punches, so (issue 12):

* each is created with mode 0600 by ``os.open`` (never chmod after: no window in which
  another user can open it), written beside its name as ``NAME.partial``, fsynced, then
  renamed into place: an interrupted export never leaves a half file under the real name,
  and an existing file of another mode is replaced, not truncated in place;
* a path that cannot work (its folder is missing, it is a directory, no permission) is one
  line and exit 2 *before* any work, and no directory is ever created for it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn, TextIO

from gateway.cli.local import fail

FILE_MODE = 0o600
EXIT_BAD_PATH = 2
#: OSErrors that mean "this path cannot be written" (exit 2), not "the work failed" (exit 1).
PATH_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EROFS,
        errno.ELOOP,
        errno.EEXIST,
    }
)


def check(args: argparse.Namespace, text: str, what: str = "--output") -> Path:
    """The output path, or exit 2 with one line saying why it cannot be written."""
    p = Path(text).expanduser()
    if p.is_dir():
        fail(args, f"{what} {p}: is a directory; give a file name", EXIT_BAD_PATH)
    folder = p.parent
    if not folder.is_dir():
        fail(
            args,
            f"{what} {p}: folder {folder} does not exist (it is not created for you)",
            EXIT_BAD_PATH,
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(args, f"{what} {p}: no permission to write in {folder}", EXIT_BAD_PATH)
    if p.exists() and not p.is_file():
        fail(args, f"{what} {p}: exists and is not a regular file", EXIT_BAD_PATH)
    return p


def failed(args: argparse.Namespace, path: Path, err: OSError) -> NoReturn:
    """An output file could not be written after all (e.g. the disk filled): one line."""
    why = err.strerror or str(err)
    fail(args, f"cannot write {path}: {why}", EXIT_BAD_PATH)


@contextlib.contextmanager
def private(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` (binary) as a 0600 file that appears whole under its name or not at all."""
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def private_text(path: Path) -> Iterator[TextIO]:
    """``private`` for UTF-8 text (CSV: ``newline=""``, the csv module writes its own)."""
    with private(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        yield text
        text.flush()
        text.detach()  # the binary file stays open for private()'s fsync and rename
