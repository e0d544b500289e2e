# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one writer of private files (reports, backups, the token cache): phone numbers and tokens.

``atomic_write(path, write, mode=0o600, exclusive=False, what="file")`` writes through ``write(handle)`` to a
temporary file beside ``path`` that is private from its creation, syncs it to disk and then gives it its final
name, so a reader never sees a half-written file and nobody else can read it at any moment. It only ever replaces
a regular file (``writable_target``).

``check_private_file(path, what)`` refuses a file someone else could have written (as ssh treats private keys);
``ensure_directory(path, what)`` creates a file's missing directories with mode 0700 and never changes existing ones.
"""

from __future__ import annotations

import os
import pwd
import stat
import tempfile

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass  # already renamed away or never fully created; the original error is what matters


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode):
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def writable_target(path, what="file"):
    """The absolute path ``path`` names once symbolic links are followed; InvalidInput unless it is a regular file or absent.

    Only a regular file is ever replaced: a device (a copy of /dev/null), a FIFO, a socket or a directory, directly or
    through a symbolic link, is refused by name, so a report can never turn /dev/null into a file of phone numbers.
    """
    path = os.path.abspath(os.path.expanduser(path))
    target = os.path.realpath(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise DirsyncError("Cannot write the %s %s: %s. Check that its directory is writable by the user running the module "
                           "and that the disk is not full." % (what, path, exc.strerror or exc), path=path, reason=exc.strerror or str(exc)) from None
    if not stat.S_ISREG(mode):
        shown = path if target == path else "%s (a link to %s)" % (path, target)
        raise InvalidInput("Refusing to write the %s %s: it is %s, not a regular file. Give the path of a regular file, or of "
                           "one that does not exist yet; nothing was written." % (what, shown, _kind(mode)),
                           path=path, reason="it is %s" % _kind(mode))
    return target


def _user(uid):
    try:
        return "%d (%s)" % (uid, pwd.getpwuid(uid).pw_name)
    except KeyError:
        return str(uid)


def check_private_file(path, what="file"):
    """Refuse to trust ``path`` unless only the running user can have written it (as ssh treats private keys).

    The file must be a regular file owned by the effective user and not writable by group or others, and its
    directory must not be writable by others unless it has the sticky bit (as /tmp has): otherwise anyone could
    have replaced or edited it. Returns ``os.stat`` of the file; raises InvalidInput naming the path and the fix.
    """
    path = os.path.abspath(os.path.expanduser(path))
    try:
        info = os.stat(path)
    except OSError as exc:
        raise InvalidInput("Cannot read the %s %s: %s." % (what, path, exc.strerror or exc), path=path, reason=exc.strerror or str(exc)) from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput("Refusing to use the %s %s: it is %s, not a regular file." % (what, path, _kind(info.st_mode)),
                           path=path, reason="it is %s" % _kind(info.st_mode))
    uid = os.geteuid()
    if info.st_uid != uid:
        raise InvalidInput("Refusing to use the %s %s: it is owned by user %s, not by the user running the module (%s), so it "
                           "may have been written by someone else. Check its content, then take it over (cp it to a new file) "
                           "as the user running the module." % (what, path, _user(info.st_uid), _user(uid)),
                           path=path, reason="owned by user %s" % _user(info.st_uid))
    if info.st_mode & 0o022:
        raise InvalidInput("Refusing to use the %s %s: its mode %04o lets group or others write it, so anyone could have changed "
                           "it. Check its content, then run chmod go-w on it." % (what, path, stat.S_IMODE(info.st_mode)),
                           path=path, reason="writable by group or others")
    directory = os.path.dirname(path)
    dir_mode = os.stat(directory).st_mode
    if dir_mode & 0o002 and not dir_mode & stat.S_ISVTX:
        raise InvalidInput("Refusing to use the %s %s: its directory %s is writable by everyone (mode %04o, no sticky bit), so "
                           "anyone could have replaced it. Move it to a directory only you can write." % (what, path, directory, stat.S_IMODE(dir_mode)),
                           path=path, reason="its directory is writable by everyone")
    return info


def ensure_directory(path, what="file"):
    """Create the missing directories of ``path`` (the file's directory and its parents) with mode 0700.

    Existing directories are left exactly as they are: never chmod-ed (a report pointed at /tmp must not change /tmp).
    Returns the list of directories created. Raises InvalidInput when a component exists but is not a directory.
    """
    directory = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
    missing = []
    while not os.path.isdir(directory):
        if os.path.lexists(directory):
            raise InvalidInput("Cannot write the %s %s: %s exists and is not a directory. Choose another path."
                               % (what, path, directory), path=path, reason="%s is not a directory" % directory)
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    created = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # created meanwhile by someone else: left as it is
        except OSError as exc:
            raise DirsyncError("Cannot create the directory %s for the %s %s: %s. Create it first, or choose another path."
                               % (directory, what, path, exc.strerror or exc), path=path, reason=exc.strerror or str(exc)) from None
        created.append(directory)
    return created


def atomic_write(path, write, mode=0o600, exclusive=False, what="file"):
    """Write ``path`` (text, UTF-8) through ``write(handle)``; return its absolute path.

    The file gets its final name only once it is complete: renamed over an existing file, or, with
    ``exclusive=True``, linked to a name that must not exist yet (``FileExistsError`` when it does: an
    existing file is never replaced). The temporary file is removed whatever fails, including ``write``.
    ``what`` names the file in error messages (``report``, ``backup``...). Symbolic links are followed; anything but a
    regular file at the end is refused (``writable_target``). Returns the absolute ``path`` as given.
    """
    path = os.path.abspath(os.path.expanduser(path))
    # exclusive never replaces anything (link() fails on any existing name), so only a replacement needs the check.
    target = path if exclusive else writable_target(path, what)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise InvalidInput("Cannot write the %s %s: the directory %s does not exist. Create it first, or choose another path."
                           % (what, path, directory), path=path, reason="the directory %s does not exist" % directory)
    temporary = None
    try:
        # mkstemp creates the file with mode 0600 whatever the umask, so it is never readable by others.
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(target), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            if mode != 0o600:
                os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            # link() fails when the name exists, unlike rename(): two writers can never replace each other's file.
            os.link(temporary, target)
            os.unlink(temporary)
        else:
            os.replace(temporary, target)
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
