# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start an Entra Connect sync cycle and wait for it (documented in plugins/modules/entra_connect_sync.py).

The decisions run here on the controller (module_utils/_entra_connect.py); the Entra Connect server only
runs single ADSync cmdlets through entraid.dirsync.entra_connect_cmdlet, or the lab's stand-in answers.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.entraid.dirsync.plugins.module_utils._entra_connect import (
    POLICY_TYPES,
    RUN_RESULTS,
    START,
    CmdletFailed,
    full_sync,
    standin_runner,
)
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_action

display = Display()

CMDLET_MODULE = "entraid.dirsync.entra_connect_cmdlet"
STANDIN_VAR = "entraid_entra_connect_standin_url"

ARGUMENT_SPEC = dict(
    policy_type=dict(type="str", default="Initial", choices=list(POLICY_TYPES)),
    busy_timeout=dict(type="int", default=1800),
    wait_timeout=dict(type="int", default=3600),
    poll_interval=dict(type="int", default=15),
    fail_on_errors=dict(type="bool", default=True),
    standin_url=dict(type="str"),
)
# A poll interval of 0 would hammer the server.
MINIMUM_SECONDS = {"busy_timeout": 0, "wait_timeout": 0, "poll_interval": 1}


class ActionModule(ActionBase):
    """entraid.dirsync.entra_connect_sync."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        return run_action(result, lambda: self._run(params, task_vars))

    def _run(self, params, task_vars):
        for name, least in MINIMUM_SECONDS.items():
            if params[name] < least:
                raise InvalidInput("%s must be at least %d (seconds), got %d." % (name, least, params[name]))
        standin_url = params["standin_url"] or self._templar.template(task_vars.get(STANDIN_VAR) or "")
        runner = standin_runner(standin_url) if standin_url else self._cmdlet_runner(task_vars)
        return full_sync(runner, policy_type=params["policy_type"], busy_timeout=params["busy_timeout"],
                         wait_timeout=params["wait_timeout"], poll_interval=params["poll_interval"],
                         fail_on_errors=params["fail_on_errors"], check_mode=bool(self._task.check_mode),
                         log=lambda message: display.vvv("entra_connect_sync: %s" % message))

    def _cmdlet_runner(self, task_vars):
        """Run one ADSync cmdlet on the (delegated-to) Entra Connect server."""
        def run(cmdlet, args):
            module_args = {"cmdlet": cmdlet}
            if cmdlet == START:
                module_args["policy_type"] = args["PolicyType"]
            elif cmdlet == RUN_RESULTS:
                module_args["number_requested"] = args["NumberRequested"]
            answer = self._execute_module(module_name=CMDLET_MODULE, module_args=module_args, task_vars=task_vars)
            if answer.get("failed"):
                raise DirsyncError("Running %s on the Entra Connect server failed: %s" % (cmdlet, answer.get("msg") or answer),
                                   cmdlet=cmdlet)
            error = answer.get("error")
            if error:
                raise CmdletFailed(cmdlet, error.get("message"), error.get("type"))
            return answer.get("output")
        return run
