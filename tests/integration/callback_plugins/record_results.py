# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: records every task result as JSON lines so tests can assert on them."""

from __future__ import annotations

DOCUMENTATION = r"""
name: record_results
type: aggregate
short_description: Record task results for the integration tests
description:
  - Appends one JSON line per task result to the file named by E(RECORD_RESULTS_FILE).
requirements: []
"""

import json
import os

from ansible.parsing.ajson import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        path = os.environ.get("RECORD_RESULTS_FILE")
        if not path:
            return
        line = {
            "host": result._host.get_name(),  # pylint: disable=protected-access
            "task": result._task.get_name(),  # pylint: disable=protected-access
            "action": result._task.action,  # pylint: disable=protected-access
            "status": status,
            "result": result._result,  # pylint: disable=protected-access
        }
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, cls=AnsibleJSONEncoder) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")
