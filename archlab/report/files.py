"""Files: every file archlab writes goes through ``write_atomic``, and plots and report pages
are written here (renderers return strings; the CLI decides where they go)."""

from __future__ import annotations

import os
import tempfile

from archlab.errors import UserError


def write_atomic(path: str, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` so that an interrupted run never leaves half a file:
    a temporary file beside the target, flushed to disk, renamed into place.

    A symbolic link is followed (the file it points to is replaced, the link stays). What is not
    a regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is written through, as a shell's
    ``>`` would: renaming over it would destroy the device node or the pipe. The new file gets
    the old one's permissions, or those the umask gives a new file (not mkstemp's 0600).
    """
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    if not path:
        raise UserError("-o needs a file name")
    if path.endswith(("/", os.sep)):
        raise UserError(f"cannot write '{path}': a file name cannot end with '/'")
    try:
        target = os.path.realpath(path)
        os.stat(path)  # a symbolic-link loop raises here (ELOOP); a missing file is fine
    except FileNotFoundError:
        pass
    except OSError as e:
        raise UserError(f"cannot write '{path}': {e.strerror or 'too many levels of symbolic links'}") from None
    if os.path.exists(target) and not os.path.isfile(target):
        if os.path.isdir(target):
            raise UserError(f"cannot write '{path}': it is a directory")
        try:
            with open(target, "wb") as f:  # a device or a pipe: no atomic replacement exists
                f.write(data)
        except OSError as e:
            raise UserError(f"cannot write '{path}': {e.strerror}") from None
        return
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):  # for a dangling link, the folder its target would be in
        raise UserError(f"cannot write '{path}': directory '{directory}' does not exist")
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(prefix=".archlab-", dir=directory)
    except OSError as e:
        raise UserError(f"cannot write '{path}': {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise UserError(f"cannot write '{path}': {e.strerror}") from None
