# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tenant's procedure lock and state, on the controller (see module_utils/_procedure.py).

An action plugin, because the lock names the ansible-playbook process that holds it: a worker is forked from it, so
``os.getppid()`` here is that process, which lives as long as the run (a module's own process ends with the task).
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.entraid.dirsync.plugins.module_utils import _procedure
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_action

STATES = ("locked", "started", "finished", "rolled_back", "unlocked")
ARGUMENT_SPEC = dict(
    tenant_id=dict(type="str", required=True),
    state_dir=dict(type="path", required=True),
    state=dict(type="str", required=True, choices=list(STATES)),
    backup_path=dict(type="path"),
)


class ActionModule(ActionBase):
    """entraid.dirsync.procedure (documented in plugins/modules/procedure.py)."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        return run_action(result, lambda: self._run(params, bool(self._task.check_mode)))

    @staticmethod
    def _run(params, check_mode):
        tenant, directory, state = params["tenant_id"].strip(), params["state_dir"], params["state"]
        if not tenant:
            raise InvalidInput("tenant_id is empty: give the tenant's id (or the inventory host name) that the lock and "
                               "state are kept for. Nothing was changed.")
        pid = os.getppid()
        lock, state_path = _procedure.paths(directory, tenant)
        # Bookkeeping on the controller, like the backup file: never a change of what the playbook manages.
        out = {"changed": False, "lock": lock, "state_path": state_path}
        if state == "locked":
            if check_mode:
                return out
            taken = _procedure.acquire(directory, tenant, pid)
            out.update(holder=taken["holder"], stale=taken["stale"])
            if taken["stale"]:
                out["warnings"] = ["The procedure lock of tenant %s was left by a run that is gone (process %s on %s, since %s); "
                                   "it was taken over. That run was interrupted: this run resumes its procedure."
                                   % (tenant, taken["stale"].get("pid"), taken["stale"].get("host"), taken["stale"].get("since"))]
        elif state == "unlocked":
            out["released"] = not check_mode and _procedure.release(directory, tenant, pid)
        elif state == "started":
            if not params["backup_path"]:
                raise InvalidInput("state=started needs backup_path: the backup this run took before writing anything.")
            record = _procedure.current(directory, tenant)
            resumed = record is not None
            if not record and not check_mode:
                record, resumed = _procedure.begin(directory, tenant, params["backup_path"])
            out.update(resumed=resumed, procedure=record,
                       undo_backup=record["first_backup"] if record else os.path.abspath(params["backup_path"]))
        else:
            record = None if check_mode else _procedure.finish(directory, tenant, state)
            out.update(procedure=record)
        return out
