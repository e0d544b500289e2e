#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin of the same name (plugins/action/procedure.py) on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: procedure
short_description: Lock a tenant's BypassDirSyncOverrides procedure and remember the backup that undoes it
version_added: 0.1.0
description:
  - Keeps two small files per tenant in O(state_dir) (the backup directory) on the controller, so that the procedure is
    safe to interrupt and to run from several places.
  - V(locked) takes the tenant's lock (C(procedure_<tenant>.lock), holding the host and the ansible-playbook process id).
    A second run against the same tenant then fails with a message naming the holder, before anything is written. A lock
    left by a run that is gone (its process no longer exists on this host) is taken over with a warning.
  - V(started) records O(backup_path) as the procedure's first backup (C(procedure_<tenant>.json)), unless an unfinished
    procedure already has one. An interrupted run and its re-runs are one procedure, so RV(undo_backup) always names the
    backup taken before the procedure's first write (a re-run's own backup already holds what the interrupted run wrote).
  - V(finished) and V(rolled_back) mark the procedure ended; the next run starts a new one. V(unlocked) releases the lock
    if this run holds it.
  - Used by the C(bypass_overrides) and C(rollback) playbooks.
author:
  - entraid.dirsync contributors (@entraid)
options:
  tenant_id:
    description: The tenant the lock and state are for (its id, or the inventory host name).
    type: str
    required: true
  state_dir:
    description:
      - Directory on the controller for the lock and the state file, usually the backup directory. Created (mode C(0700))
        when missing. A relative path is relative to the directory ansible-playbook runs in.
    type: path
    required: true
  state:
    description: What to do (see the description).
    type: str
    required: true
    choices: [locked, started, finished, rolled_back, unlocked]
  backup_path:
    description: With O(state=started), the backup this run took before writing anything.
    type: path
extends_documentation_fragment:
  - entraid.dirsync._attributes
attributes:
  check_mode:
    support: full
    details:
      - Takes no lock and writes no state; V(started) reports the backup that would be recorded.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Never reports a change. The lock and state are bookkeeping on the controller, like a backup file, not state the
        playbook manages.
"""

EXAMPLES = r"""
- name: Take the tenant's lock before the first write
  entraid.dirsync.procedure:
    tenant_id: "{{ entraid_graph.tenant_id }}"
    state_dir: ./backups/{{ inventory_hostname }}
    state: locked

- name: Remember the backup that undoes the procedure
  entraid.dirsync.procedure:
    tenant_id: "{{ entraid_graph.tenant_id }}"
    state_dir: ./backups/{{ inventory_hostname }}
    state: started
    backup_path: "{{ backup_path }}"
  register: procedure

- name: Print the undo command
  ansible.builtin.debug:
    msg: "Undo: ansible-playbook entraid.dirsync.rollback -e rollback_backup_path={{ procedure.undo_backup }}"
"""

RETURN = r"""
lock:
  description: Path of the tenant's lock file.
  returned: always
  type: str
state_path:
  description: Path of the tenant's procedure state file.
  returned: always
  type: str
holder:
  description: With O(state=locked), who holds the lock now (host, pid, since).
  returned: when O(state=locked)
  type: dict
released:
  description: With O(state=unlocked), whether this run's lock was removed.
  returned: when O(state=unlocked)
  type: bool
stale:
  description: The holder of a lock left by a run that is gone, which this run took over; null otherwise.
  returned: when O(state=locked)
  type: dict
undo_backup:
  description: The backup taken before the procedure's first write; the rollback playbook restores it.
  returned: when O(state=started)
  type: str
resumed:
  description: True when an unfinished procedure (an interrupted run) was resumed.
  returned: when O(state=started)
  type: bool
procedure:
  description: The procedure's state (tenant_id, first_backup, started_at, status, finished_at).
  returned: when O(state) is V(started), V(finished) or V(rolled_back)
  type: dict
"""
