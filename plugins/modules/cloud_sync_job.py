#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: cloud_sync_job
short_description: Restart a Microsoft Entra Cloud Sync provisioning job with a full reset and wait for it
version_added: 0.1.0
description:
  - Finds the Cloud Sync provisioning job (template C(AD2AADProvisioning)) of a service principal, restarts it with
    C(resetScope=Full) (Microsoft Graph C(POST .../synchronization/jobs/{id}/restart)), which makes the next cycle a full
    one, and waits until that new execution finished.
  - This is the Cloud Sync counterpart of a full Entra Connect cycle (M(entraid.dirsync.entra_connect_sync)), needed after
    enabling C(bypassDirSyncOverridesEnabled).
  - When the job is busy (Graph answers 409), the restart is tried again every O(poll_interval) seconds until O(wait_timeout).
  - The task fails when the new execution failed, or ended with errors on some objects unless O(fail_on_errors=false),
    or when the job is in quarantine.
author:
  - entraid.dirsync contributors (@entraid)
options:
  service_principal_id:
    description:
      - Object id of the service principal of the Cloud Sync configuration (Enterprise applications, the application named
        after the AD domain).
    type: str
    required: true
  job_id:
    description:
      - Id of the job to restart, such as V(AD2AADProvisioning.0123456789abcdef0123456789abcdef).
      - Needed only when the service principal has several C(AD2AADProvisioning) jobs.
    type: str
  wait:
    description:
      - Whether to wait for the restarted execution to finish. With V(false) the task returns right after the restart.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for the job (busy job before the restart, then the new execution). When it passes the task
        fails; the job keeps running.
    type: int
    default: 3600
  poll_interval:
    description:
      - Seconds between two reads of the job's status.
    type: int
    default: 30
  fail_on_errors:
    description:
      - Whether the task fails when the new execution ended with errors on some objects (C(EntryLevelErrors)). A failed
        execution always fails the task.
    type: bool
    default: true
notes:
  - Needs the Graph permission C(Synchronization.ReadWrite.All) (application or delegated, with admin consent).
seealso:
  - module: entraid.dirsync.entra_connect_sync
  - module: entraid.dirsync.dirsync_feature
  - name: "synchronizationJob: restart"
    description: The Graph API this module calls.
    link: https://learn.microsoft.com/graph/api/synchronization-synchronizationjob-restart
extends_documentation_fragment:
  - entraid.dirsync.graph
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.action_group_graph
attributes:
  check_mode:
    support: full
    details:
      - Finds the job and reports that it would be restarted; restarts nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run restarts the job and reports a change.
"""

EXAMPLES = r"""
- name: Restart the Cloud Sync job with a full reset and wait for the new execution
  entraid.dirsync.cloud_sync_job:
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret: "{{ vault_graph_secret }}"
    service_principal_id: 22222222-2222-2222-2222-222222222222
  register: cloud_sync

- name: Restart a named job without waiting, connection from module_defaults
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
  entraid.dirsync.cloud_sync_job:
    service_principal_id: 22222222-2222-2222-2222-222222222222
    job_id: AD2AADProvisioning.0123456789abcdef0123456789abcdef
    wait: false
"""

RETURN = r"""
job_id:
  description: Id of the job.
  returned: success
  type: str
  sample: AD2AADProvisioning.0123456789abcdef0123456789abcdef
template_id:
  description: Template of the job.
  returned: success
  type: str
  sample: AD2AADProvisioning
restarted:
  description: Whether the job was restarted (false in check mode).
  returned: success
  type: bool
  sample: true
execution:
  description: The job's last execution after the task (C(lastExecution) of the job's status); in check mode the one before.
  returned: success
  type: dict
  sample:
    state: Succeeded
    timeBegan: "2026-11-20T10:00:00Z"
    timeEnded: "2026-11-20T10:05:00Z"
    error: null
status:
  description: The job's synchronization status as Graph returned it last.
  returned: success
  type: dict
"""

import time
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import AmbiguousIdentity, DirsyncError, GraphError, IdentityNotFound
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module

TEMPLATE = "AD2AADProvisioning"


def _jobs_path(service_principal_id):
    return "servicePrincipals/%s/synchronization/jobs" % quote(service_principal_id, safe="")


def pick_job(jobs, service_principal_id, job_id=None):
    """The job named ``job_id``, else the only AD2AADProvisioning job."""
    listed = ", ".join("%s (%s)" % (job.get("id"), job.get("templateId")) for job in jobs) or "none"
    if job_id:
        for job in jobs:
            if (job.get("id") or "").lower() == job_id.lower():
                return job
        raise IdentityNotFound("Service principal %s has no synchronization job %s; its jobs: %s. Check job_id." % (service_principal_id, job_id, listed))
    found = [job for job in jobs if (job.get("templateId") or "").lower() == TEMPLATE.lower()]
    if not found:
        raise IdentityNotFound("Service principal %s has no Cloud Sync (%s) job; its jobs: %s. Check service_principal_id: it is the "
                               "service principal of the Cloud Sync configuration." % (service_principal_id, TEMPLATE, listed))
    if len(found) > 1:
        raise AmbiguousIdentity("Service principal %s has several %s jobs (%s): set job_id to the one to restart."
                                % (service_principal_id, TEMPLATE, ", ".join(job["id"] for job in found)))
    return found[0]


def _execution_key(status):
    last = (status or {}).get("lastExecution") or {}
    return last.get("activityIdentifier"), last.get("timeBegan")


def _finished(status, before):
    """The new execution when it finished, else None."""
    last = (status or {}).get("lastExecution")
    if not last or _execution_key(status) == before or not last.get("timeEnded"):
        return None
    if status.get("inProgress") or (last.get("state") or "").lower() == "inprogress":
        return None
    return last


def _check_quarantine(status, job_id):
    quarantine = (status or {}).get("quarantine")
    if quarantine or (status or {}).get("code") == "Quarantine":
        quarantine = quarantine or {}
        reason = quarantine.get("reason") or (quarantine.get("error") or {}).get("message") or "no reason given"
        raise DirsyncError("The Cloud Sync job %s is in quarantine (%s): fix the cause shown in the Entra admin center (Provisioning logs), "
                           "then restart it." % (job_id, reason), status=status)


def restart_full(client, params, check_mode, clock=time.monotonic, sleep=time.sleep):
    sp_id = params["service_principal_id"]
    path = _jobs_path(sp_id)
    job = pick_job(list(client.iter_items(path)), sp_id, params.get("job_id"))
    job_path = "%s/%s" % (path, quote(job["id"], safe=""))
    status = job.get("status") or {}
    result = {"changed": True, "job_id": job["id"], "template_id": job.get("templateId"), "restarted": False,
              "execution": status.get("lastExecution"), "status": status}
    if check_mode:
        result["msg"] = "Would restart the job %s with resetScope Full." % job["id"]
        return result
    before = _execution_key(status)
    deadline = clock() + params["wait_timeout"]
    while True:
        try:
            client.post(job_path + "/restart", json={"criteria": {"resetScope": "Full"}})
            break
        except GraphError as exc:
            if exc.status != 409 or clock() >= deadline:
                raise
            # The job is busy with an execution; the restart is accepted once it is idle.
            sleep(params["poll_interval"])
    result["restarted"] = True
    if not params["wait"]:
        result["msg"] = "Restarted the job %s with resetScope Full; not waiting for it." % job["id"]
        return result
    while True:
        sleep(params["poll_interval"])
        status = client.get(job_path).get("status") or {}
        result.update(status=status, execution=status.get("lastExecution"))
        _check_quarantine(status, job["id"])
        execution = _finished(status, before)
        if execution is not None:
            break
        if clock() >= deadline:
            raise DirsyncError("The job %s was restarted, but its new execution had not finished after %d s. It keeps running: raise "
                               "wait_timeout, or follow it in the Entra admin center (Provisioning logs)." % (job["id"], params["wait_timeout"]),
                               **result)
    state = execution.get("state") or ""
    message = (execution.get("error") or {}).get("message")
    if state.lower() == "failed" or (state.lower() == "entrylevelerrors" and params["fail_on_errors"]):
        raise DirsyncError("The restarted execution of job %s ended with %s%s. See the Provisioning logs in the Entra admin center%s."
                           % (job["id"], state, ": " + message if message else "",
                              "; set fail_on_errors=false to only report object errors" if state.lower() == "entrylevelerrors" else ""),
                           **result)
    result["msg"] = "The job %s was restarted with resetScope Full and its new execution ended with %s." % (job["id"], state or "no state")
    return result


def work(module):
    for name, least in (("wait_timeout", 0), ("poll_interval", 1)):
        if module.params[name] < least:
            raise DirsyncError("%s must be at least %d (seconds), got %d." % (name, least, module.params[name]))
    return restart_full(graph_client_from_module(module), module.params, module.check_mode)


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(
        service_principal_id=dict(type="str", required=True),
        job_id=dict(type="str"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=3600),
        poll_interval=dict(type="int", default=30),
        fail_on_errors=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()
