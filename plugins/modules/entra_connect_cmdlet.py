#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Documentation of the Windows module entra_connect_cmdlet.ps1 beside this file.

from __future__ import annotations

DOCUMENTATION = r"""
module: entra_connect_cmdlet
short_description: Run one ADSync cmdlet on a Microsoft Entra Connect server and return its output
version_added: 0.1.0
description:
  - Runs one of C(Get-ADSyncScheduler), C(Start-ADSyncSyncCycle) or C(Get-ADSyncRunProfileResult) from the C(ADSync)
    PowerShell module that Microsoft Entra Connect installs, and returns its output as data.
  - A failure of the cmdlet itself (for example C(System.InvalidOperationException) "... is busy" while a cycle runs) is
    returned in RV(error) and does not fail the task; failing to load the C(ADSync) module does.
  - This is the building block of M(entraid.dirsync.entra_connect_sync), which decides what to run. Use that module
    instead of calling this one directly.
author:
  - entraid.dirsync contributors (@entraid)
options:
  cmdlet:
    description:
      - The cmdlet to run.
    type: str
    required: true
    choices: [Get-ADSyncScheduler, Start-ADSyncSyncCycle, Get-ADSyncRunProfileResult]
  policy_type:
    description:
      - C(-PolicyType) of C(Start-ADSyncSyncCycle).
    type: str
    choices: [Initial, Delta]
    default: Initial
  number_requested:
    description:
      - C(-NumberRequested) of C(Get-ADSyncRunProfileResult), the number of most recent runs to return.
    type: int
    default: 100
seealso:
  - module: entraid.dirsync.entra_connect_sync
extends_documentation_fragment:
  - entraid.dirsync._attributes
attributes:
  check_mode:
    support: full
    details:
      - C(Start-ADSyncSyncCycle) is not run in check mode; the other cmdlets only read.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - C(Start-ADSyncSyncCycle) starts a new cycle every time.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: windows
"""

EXAMPLES = r"""
- name: Read the scheduler of the Entra Connect server
  entraid.dirsync.entra_connect_cmdlet:
    cmdlet: Get-ADSyncScheduler
  register: scheduler

- name: Show whether the server is in staging mode
  ansible.builtin.debug:
    msg: "Staging mode: {{ scheduler.output.StagingModeEnabled }}"
"""

RETURN = r"""
output:
  description:
    - The cmdlet's output. For C(Get-ADSyncScheduler) a dictionary (C(SyncCycleInProgress), C(SchedulerSuspended),
      C(StagingModeEnabled), C(SyncCycleEnabled), C(MaintenanceEnabled), C(NextSyncCyclePolicyType),
      C(NextSyncCycleStartTimeInUTC), C(CurrentlyEffectiveSyncCycleInterval)); for C(Start-ADSyncSyncCycle) a dictionary
      with C(Result); for C(Get-ADSyncRunProfileResult) a list of runs, newest first (C(RunHistoryId), C(ConnectorName),
      C(RunProfileName), C(Result), C(IsRunComplete), C(StartDate), C(EndDate); dates in ISO 8601).
  returned: when the cmdlet succeeded (not for C(Start-ADSyncSyncCycle) in check mode)
  type: raw
  sample:
    SyncCycleInProgress: false
    StagingModeEnabled: false
error:
  description: The cmdlet's exception when it failed.
  returned: when the cmdlet failed
  type: dict
  contains:
    type:
      description: Full name of the exception type.
      type: str
      sample: System.InvalidOperationException
    message:
      description: The exception's message.
      type: str
      sample: "Connector: contoso.com is busy."
"""
