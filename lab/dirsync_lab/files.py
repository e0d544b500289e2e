"""Atomic writes of the lab's files (keys, passwords, the inventory): private from the first byte.

The lab runs without the collection on its path, so this small twin of the collection's
``_files.atomic_write`` lives here.
"""

import os
import tempfile


def write_atomic(path, data, mode=0o600):
    """Write ``data`` (str or bytes) to ``path`` through a new temporary file beside it, then rename it over ``path``.

    The temporary file has a unique name and is created with mode 0600 (O_CREAT|O_EXCL, by mkstemp), so a stale or
    planted file can never receive the data; ``mode`` (e.g. 0o644 for a certificate) is set before anything is written.
    """
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".%s." % os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode != 0o600:
                os.fchmod(handle.fileno(), mode)
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already renamed; the original error is what matters
        raise
