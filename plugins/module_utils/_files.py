# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one writer of private files (reports, backups, the token cache): phone numbers and tokens.

``atomic_write(path, write, mode=0o600, exclusive=False, what="file")`` writes through ``write(handle)`` to a
temporary file beside ``path`` that is private from its creation, syncs it to disk and then gives it its final
name, so a reader never sees a half-written file and nobody else can read it at any moment.
"""

from __future__ import annotations

import os
import tempfile

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass  # already renamed away or never fully created; the original error is what matters


def atomic_write(path, write, mode=0o600, exclusive=False, what="file"):
    """Write ``path`` (text, UTF-8) through ``write(handle)``; return its absolute path.

    The file gets its final name only once it is complete: renamed over an existing file, or, with
    ``exclusive=True``, linked to a name that must not exist yet (``FileExistsError`` when it does: an
    existing file is never replaced). The temporary file is removed whatever fails, including ``write``.
    ``what`` names the file in error messages (``report``, ``backup``...).
    """
    path = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise InvalidInput("Cannot write the %s %s: the directory %s does not exist. Create it first, or choose another path."
                           % (what, path, directory), path=path, reason="the directory %s does not exist" % directory)
    temporary = None
    try:
        # mkstemp creates the file with mode 0600 whatever the umask, so it is never readable by others.
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            if mode != 0o600:
                os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            # link() fails when the name exists, unlike rename(): two writers can never replace each other's file.
            os.link(temporary, path)
            os.unlink(temporary)
        else:
            os.replace(temporary, path)
    except OSError as exc:
        if temporary:
            _remove(temporary)
        if exclusive and isinstance(exc, FileExistsError):
            raise  # the name is taken: the caller chooses another
        raise DirsyncError("Cannot write the %s %s: %s. Check that its directory is writable by the user running the module "
                           "and that the disk is not full." % (what, path, exc.strerror or exc), path=path, reason=exc.strerror or str(exc)) from None
    except BaseException:
        if temporary:
            _remove(temporary)
        raise
    return path
