# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one place where a module's errors become ``fail_json`` (``run_module``), and an action plugin's a failed result
(``run_action``)."""

from __future__ import annotations

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError


def run_module(module, work):
    """Run ``work(module)`` and exit with its result dict, or fail once with a clear message.

    ``work`` returns the result dict (it must contain ``changed``). Any ``DirsyncError`` it
    raises becomes ``fail_json(msg=..., **details)``.
    """
    try:
        result = work(module)
    except DirsyncError as error:
        module.fail_json(msg=str(error), **error.details)
    module.exit_json(**result)


def run_action(result, work):
    """For action plugins: merge ``work()``'s dict into ``result``, or mark it failed once with a clear message.

    Any ``DirsyncError`` that ``work`` raises becomes ``failed=True, msg=..., **details`` in ``result``.
    """
    try:
        result.update(work())
    except DirsyncError as error:
        result.update(error.details, failed=True, msg=str(error))
    return result
