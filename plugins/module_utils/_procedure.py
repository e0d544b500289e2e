# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One procedure per tenant: a lock against concurrent runs, and the backup to undo it with.

An interrupted run (a domain controller lost, ansible-playbook killed) and its re-runs are one procedure: the undo must
name the backup taken before the procedure's *first* write, because a re-run's own backup already holds the cloud
numbers written before the interruption. Two small files beside the backups keep this, per tenant:

- ``procedure_<tenant>.lock``: ``{"host", "pid", "since"}`` of the run holding it (``pid`` is ansible-playbook's).
  Created with O_EXCL, so two runs cannot both take it. A lock whose holder is a dead process on this host is stale
  and taken over; a lock held on another host cannot be checked from here, so the message says how to remove it.
- ``procedure_<tenant>.json``: ``{"tenant_id", "first_backup", "started_at", "status", "finished_at"}``. ``begin``
  records the first backup unless an unfinished procedure already has one; ``finish`` marks it finished.
"""

from __future__ import annotations

import datetime
import json
import os
import socket

from ansible_collections.entraid.dirsync.plugins.module_utils import _files
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError

STATE_FORMAT = "entraid.dirsync.procedure"


class ProcedureLocked(DirsyncError):
    """Another run holds the tenant's procedure lock."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _safe(text):
    return "".join(char if char.isalnum() or char in "-." else "_" for char in str(text or "unknown"))


def paths(directory, tenant):
    """(lock path, state path) of ``tenant`` in ``directory``."""
    directory = os.path.abspath(os.path.expanduser(directory))
    stem = os.path.join(directory, "procedure_%s" % _safe(tenant))
    return stem + ".lock", stem + ".json"


def pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True  # exists but not ours, or unreadable: never assume a lock is stale
    return True


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _create_lock(path, holder):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(holder, handle)


def _describe(holder):
    return "host %s, process %s, since %s" % (holder.get("host") or "?", holder.get("pid") or "?", holder.get("since") or "?")


def acquire(directory, tenant, pid, host=None, alive=pid_alive):
    """Take the tenant's lock for process ``pid`` -> ``{"lock": path, "holder": {...}, "stale": previous holder or None}``.

    Raises ProcedureLocked when a live run holds it (or one on another host, which cannot be checked from here).
    """
    host = host or socket.gethostname()
    directory = os.path.abspath(os.path.expanduser(directory))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise DirsyncError("Cannot create the directory %s for the procedure's lock and state: %s. Choose a directory the "
                           "controller's user can write (backup_dir)." % (directory, exc.strerror or exc)) from None
    lock, _state = paths(directory, tenant)
    holder = {"host": host, "pid": pid, "since": _now()}
    stale = None
    for _attempt in range(2):
        try:
            _create_lock(lock, holder)
            return {"lock": lock, "holder": holder, "stale": stale}
        except FileExistsError:
            current = _read_json(lock)
            if current is None:
                continue  # released meanwhile: try again
            if current.get("host") == host and current.get("pid") == pid:
                return {"lock": lock, "holder": current, "stale": None}  # this run holds it already
            if current.get("host") == host and not alive(current.get("pid")):
                stale = current
                try:
                    os.unlink(lock)
                except FileNotFoundError:
                    pass
                continue
            raise ProcedureLocked(
                "Another run of the procedure holds tenant %s (%s): two runs would write the same users and start two "
                "synchronization cycles. Wait for it to finish. If that run is gone (another host, or a reused process id), "
                "remove %s and run again. Nothing was changed." % (tenant, _describe(current or {}), lock),
                lock=lock, holder=current)
        except OSError as exc:
            raise DirsyncError("Cannot create the procedure lock %s: %s. Check that its directory is writable."
                               % (lock, exc.strerror or exc)) from None
    raise ProcedureLocked("Another run took the procedure lock of tenant %s at the same moment (%s). Nothing was changed."
                          % (tenant, lock), lock=lock)


def release(directory, tenant, pid, host=None):
    """Remove the lock if this process holds it -> True when removed."""
    host = host or socket.gethostname()
    lock, _state = paths(directory, tenant)
    current = _read_json(lock)
    if not current or current.get("host") != host or current.get("pid") != pid:
        return False
    try:
        os.unlink(lock)
    except FileNotFoundError:
        return False
    return True


def current(directory, tenant):
    """The unfinished procedure of ``tenant`` (its state dict), or None."""
    _lock, state = paths(directory, tenant)
    record = _read_json(state)
    if record and record.get("format") == STATE_FORMAT and record.get("status") == "running" and record.get("first_backup"):
        return record
    return None


def _write_state(path, record):
    _files.atomic_write(path, lambda handle: json.dump(record, handle, indent=1, sort_keys=True), what="procedure state")


def begin(directory, tenant, backup_path):
    """Record ``backup_path`` as the procedure's first backup unless an unfinished procedure has one -> (state, resumed)."""
    record = current(directory, tenant)
    if record:
        return record, True
    _lock, state = paths(directory, tenant)
    record = {"format": STATE_FORMAT, "tenant_id": tenant, "first_backup": os.path.abspath(os.path.expanduser(backup_path)),
              "started_at": _now(), "status": "running", "finished_at": None}
    _write_state(state, record)
    return record, False


def finish(directory, tenant, outcome="finished"):
    """Mark the unfinished procedure ``outcome`` (finished, rolled_back) -> its state, or None when there was none."""
    record = current(directory, tenant)
    if not record:
        return None
    record.update(status=outcome, finished_at=_now())
    _lock, state = paths(directory, tenant)
    _write_state(state, record)
    return record
