#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin of the same name (plugins/action/entra_connect_sync.py) on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: entra_connect_sync
short_description: Run a full (or delta) Microsoft Entra Connect sync cycle and wait for its results
version_added: 0.1.0
description:
  - Starts a sync cycle on a Microsoft Entra Connect (Azure AD Connect) server, waits until it is idle again and reports the
    results of the cycle's runs (import, synchronization and export per connector).
  - After enabling C(bypassDirSyncOverridesEnabled) (M(entraid.dirsync.dirsync_feature)) a full cycle (V(Initial)) is needed
    so that the values in Active Directory replace the cloud overrides.
  - A server in staging mode exports nothing, so the task refuses it with an error and starts nothing. It also refuses a
    server whose sync cycles are disabled or whose scheduler is suspended.
  - When a cycle is already running, the task waits for it (up to O(busy_timeout)) and then starts its own.
  - The task fails when a run of the cycle ended with errors (C(completed-export-errors) and the like) or stopped
    (C(stopped-*)), unless O(fail_on_errors=false). Warnings (C(completed-warnings)) are only reported.
  - Run the task against the Entra Connect server, for example with C(delegate_to). The decisions run on the controller;
    the server only runs single ADSync cmdlets through M(entraid.dirsync.entra_connect_cmdlet) (Windows PowerShell with
    the C(ADSync) module that Entra Connect installs, over the host's Windows connection such as WinRM or SSH).
author:
  - entraid.dirsync contributors (@entraid)
options:
  policy_type:
    description:
      - V(Initial) runs a full cycle (full import and full synchronization of every connector), V(Delta) a delta cycle.
    type: str
    choices: [Initial, Delta]
    default: Initial
  busy_timeout:
    description:
      - How many seconds to wait for a cycle that is already running before starting this one. V(0) fails at once when
        the server is busy.
    type: int
    default: 1800
  wait_timeout:
    description:
      - How many seconds to wait for the started cycle to finish. When it passes the task fails; the cycle keeps running on
        the server.
    type: int
    default: 3600
  poll_interval:
    description:
      - Seconds between two checks of the scheduler (C(Get-ADSyncScheduler)).
    type: int
    default: 15
  fail_on_errors:
    description:
      - Whether the task fails when a run of the cycle ended with errors or stopped. With V(false) they are only reported
        in RV(run_errors).
    type: bool
    default: true
  standin_url:
    description:
      - URL of a stand-in that answers like the ADSync cmdlets over HTTP (the lab's control URL, see C(docs/lab.md)).
        When set, no cmdlet runs on the target host.
      - If not set, the inventory variable C(entraid_entra_connect_standin_url) is used; normally neither is set.
    type: str
notes:
  - The account that connects to the Entra Connect server must be allowed to run the ADSync cmdlets (a member of
    C(ADSyncAdmins), or a local administrator).
  - The runs of the cycle are recognised by their run history ids (the runs that did not exist just before the start), so
    the clocks of the controller and the server need not agree.
seealso:
  - module: entraid.dirsync.dirsync_feature
  - module: entraid.dirsync.cloud_sync_job
  - name: Microsoft Entra Connect Sync scheduler
    description: Get-ADSyncScheduler, Start-ADSyncSyncCycle and staging mode.
    link: https://learn.microsoft.com/entra/identity/hybrid/connect/how-to-connect-sync-feature-scheduler
extends_documentation_fragment:
  - entraid.dirsync._attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details:
      - Reads the scheduler, refuses as it would for real, and reports that a cycle would start; starts nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run starts a new cycle and reports a change.
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
"""

EXAMPLES = r"""
- name: Run a full sync cycle on the Entra Connect server and wait for it
  entraid.dirsync.entra_connect_sync:
    policy_type: Initial
  delegate_to: aadconnect01.contoso.com
  register: full_cycle

- name: Show the runs of the cycle
  ansible.builtin.debug:
    var: full_cycle.runs

- name: Only report export errors, wait at most an hour for a running cycle
  entraid.dirsync.entra_connect_sync:
    busy_timeout: 3600
    fail_on_errors: false
  delegate_to: aadconnect01.contoso.com

- name: Against the lab's stand-in (no Windows)
  entraid.dirsync.entra_connect_sync:
    standin_url: http://127.0.0.1:8450
    poll_interval: 1
"""

RETURN = r"""
policy_type:
  description: The policy type of the cycle.
  returned: always
  type: str
  sample: Initial
started:
  description: Whether a cycle was started (false in check mode and when the task gave up waiting for a busy server).
  returned: always
  type: bool
  sample: true
waited_for_busy:
  description: Seconds spent waiting for a cycle that was already running.
  returned: always
  type: float
  sample: 42.0
duration:
  description: Seconds from the start of the cycle until it was seen finished.
  returned: when the cycle finished
  type: float
  sample: 310.5
scheduler:
  description: The last C(Get-ADSyncScheduler) output read.
  returned: always
  type: dict
  sample:
    SyncCycleInProgress: false
    StagingModeEnabled: false
    SchedulerSuspended: false
    SyncCycleEnabled: true
    NextSyncCyclePolicyType: Delta
start:
  description: The output of C(Start-ADSyncSyncCycle).
  returned: when a cycle was started
  type: dict
  sample:
    Result: Success
runs:
  description: The runs of the started cycle, oldest first, as C(Get-ADSyncRunProfileResult) returns them.
  returned: always
  type: list
  elements: dict
  contains:
    RunHistoryId:
      description: Id of the run.
      type: str
    ConnectorName:
      description: The connector the run profile ran on.
      type: str
      sample: contoso.com
    RunProfileName:
      description: The run profile.
      type: str
      sample: Export
    Result:
      description: The run's result as ADSync reports it.
      type: str
      sample: completed-export-errors
    StartDate:
      description: When the run started (server time).
      type: str
    EndDate:
      description: When the run ended (server time).
      type: str
    outcome:
      description: How the task reads C(Result).
      type: str
      choices: [success, warning, error, stopped, running]
run_errors:
  description: One line per run that ended with errors or stopped (profile, connector, result).
  returned: always
  type: list
  elements: str
  sample: ["Export on contoso.onmicrosoft.com - AAD: completed-export-errors"]
run_warnings:
  description: One line per run that completed with warnings.
  returned: always
  type: list
  elements: str
  sample: []
"""
