#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: cloud_sync_job
short_description: Restart a Microsoft Entra Cloud Sync provisioning job with a full reset and wait for the cycle it started
version_added: 0.1.0
description:
  - Finds the Cloud Sync provisioning job (template C(AD2AADProvisioning)) of a service principal, restarts it with
    C(criteria.resetScope) O(reset_scope) (Microsoft Graph C(POST .../synchronization/jobs/{id}/restart), documented to answer
    C(204 No Content)), and waits until the cycle that the restart started has finished.
  - This is the Cloud Sync counterpart of a full Entra Connect cycle (M(entraid.dirsync.entra_connect_sync)), needed after
    enabling C(bypassDirSyncOverridesEnabled).
  - How the task tells that the cycle it started has finished, from what Microsoft documents of C(synchronizationStatus)
    and C(synchronizationTaskExecution) - the job's C(status.lastExecution) is an execution other than the one shown
    before the restart, whose C(timeBegan) is at or after the restart (Graph's clock, from the C(Date) header of the
    restart's answer) and whose C(timeEnded) is set (not Microsoft's unset date C(0001-01-01T00:00:00Z)). Graph has no
    C(inProgress) flag and no in-progress state; a restart during a running cycle is also answered 204, so the task never
    retries a restart.
  - The execution's C(state) is one of C(Succeeded), C(Failed) or C(EntryLevelErrors) (errors on some objects). C(Failed)
    always fails the task. For C(EntryLevelErrors), the objects and their errors are read from the provisioning logs
    (C(GET /auditLogs/provisioning), needs C(AuditLog.Read.All)) and returned in RV(object_errors); whether the task then
    fails is O(fail_on_errors).
  - A job in quarantine (C(status.code) C(Quarantine)) fails the task.
author:
  - entraid.dirsync contributors (@entraid)
options:
  service_principal_id:
    description:
      - Object id of the service principal of the Cloud Sync configuration (Enterprise applications, the application named
        after the AD domain). Must not be empty.
    type: str
    required: true
  job_id:
    description:
      - Id of the job to restart, such as V(AD2AADProvisioning.0123456789abcdef0123456789abcdef).
      - Needed only when the service principal has several C(AD2AADProvisioning) jobs.
    type: str
  reset_scope:
    description:
      - What the restart resets (C(criteria.resetScope), a comma list in Graph). V(Full) makes the next cycle a full one.
      - An empty list sends an empty C(resetScope), which Microsoft documents as allowed (a plain restart).
    type: list
    elements: str
    choices: [Watermark, Escrows, QuarantineState, Full, ForceDeletes]
    default: [Full]
  wait:
    description:
      - Whether to wait for the cycle the restart started to finish. With V(false) the task returns right after the restart.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for that cycle. When it passes the task fails; the job keeps running.
    type: int
    default: 3600
  poll_interval:
    description:
      - Seconds between two reads of the job's status.
    type: int
    default: 30
  fail_on_errors:
    description:
      - Whether the task fails when the cycle ended with C(EntryLevelErrors) (errors on some objects). The objects and their
        errors are returned in RV(object_errors) either way; with V(false) the task succeeds and warns.
      - A C(Failed) cycle always fails the task.
    type: bool
    default: true
  read_object_errors:
    description:
      - Whether to read the objects in error from the provisioning logs when the cycle ended with C(EntryLevelErrors).
        Needs C(AuditLog.Read.All); without it the task warns and returns only the execution's counts.
    type: bool
    default: true
notes:
  - Needs the Graph permission C(Synchronization.ReadWrite.All) (application or delegated, with admin consent), and
    C(AuditLog.Read.All) for RV(object_errors).
  - Microsoft does not document whether Cloud Sync honours C(bypassDirSyncOverridesEnabled); see docs/full-sync.md.
seealso:
  - module: entraid.dirsync.entra_connect_sync
  - module: entraid.dirsync.dirsync_feature
  - name: "synchronizationJob: restart"
    description: The Graph API this module calls.
    link: https://learn.microsoft.com/graph/api/synchronization-synchronizationjob-restart
  - name: synchronizationTaskExecution
    description: The execution the module waits for.
    link: https://learn.microsoft.com/graph/api/resources/synchronization-synchronizationtaskexecution
  - name: List provisioningObjectSummary
    description: The provisioning logs the object errors come from.
    link: https://learn.microsoft.com/graph/api/provisioningobjectsummary-list
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
- name: Restart the Cloud Sync job with a full reset and wait for the cycle it started
  entraid.dirsync.cloud_sync_job:
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret: "{{ vault_graph_secret }}"
    service_principal_id: 22222222-2222-2222-2222-222222222222
  register: cloud_sync

- name: Report object errors without failing, connection from module_defaults
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
  entraid.dirsync.cloud_sync_job:
    service_principal_id: 22222222-2222-2222-2222-222222222222
    job_id: AD2AADProvisioning.0123456789abcdef0123456789abcdef
    fail_on_errors: false
  register: cloud_sync

- name: Show the objects the cycle could not synchronize
  ansible.builtin.debug:
    msg: "{{ cloud_sync.object_errors }}"
  when: cloud_sync.object_errors | default([]) | length > 0
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
restarted_at:
  description: When Graph accepted the restart (its C(Date) header; the controller's clock when absent), UTC.
  returned: when restarted
  type: str
  sample: "2026-11-20T10:00:00Z"
execution:
  description:
    - The cycle the restart started (a C(synchronizationTaskExecution) - C(state), C(timeBegan), C(timeEnded), counts,
      C(error)) once it finished; before that (V(wait=false), check mode, timeout) the job's C(lastExecution) as last read.
  returned: success
  type: dict
  sample:
    state: Succeeded
    timeBegan: "2026-11-20T10:00:01Z"
    timeEnded: "2026-11-20T10:05:00Z"
    countEscrowed: 0
    error: null
object_errors:
  description:
    - The objects the cycle could not synchronize (state C(EntryLevelErrors)), from the provisioning logs. Empty when the
      cycle had none; null when they could not be read (see the warning).
  returned: when the task waited
  type: list
  elements: dict
  sample:
    - object: jdoe@contoso.com
      distinguished_name: CN=John Doe,OU=Users,DC=contoso,DC=com
      error_code: AttributeValueMustBeUnique
      reason: Another object in the tenant already has userPrincipalName jdoe@contoso.com.
      time: "2026-11-20T10:02:00Z"
status:
  description: The job's synchronization status as Graph returned it last.
  returned: success
  type: dict
"""

import datetime
import time
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import (
    AmbiguousIdentity, DirsyncError, GraphError, IdentityNotFound, InvalidInput)
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import GraphClient, graph_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._graph_settings import build_session
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module

TEMPLATE = "AD2AADProvisioning"
# Microsoft's value of a date that is not set.
UNSET_DATE = "0001-01-01T00:00:00Z"
REPORTED_ERRORS = 10


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


def parse_time(value):
    """A Graph DateTimeOffset as an aware datetime; None when absent or Microsoft's unset date."""
    if not value or str(value).startswith("0001-01-01"):
        return None
    text = str(value).replace("Z", "+00:00")
    # Graph may send 7 fractional digits; fromisoformat takes at most 6.
    if "." in text:
        head, dummy, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = "%s.%s%s" % (head, digits[:6].ljust(6, "0"), rest[len(digits):])
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(execution):
    execution = execution or {}
    return execution.get("activityIdentifier"), execution.get("timeBegan")


def started_cycle(status, before, restarted_at):
    """The job's lastExecution when it is the finished cycle our restart started, else None."""
    last = (status or {}).get("lastExecution")
    if not last or _key(last) == before:
        return None
    began, ended = parse_time(last.get("timeBegan")), parse_time(last.get("timeEnded"))
    # Graph's Date header and timeBegan have whole seconds: allow one second of rounding.
    if began is None or ended is None or began < restarted_at.replace(microsecond=0) - datetime.timedelta(seconds=1):
        return None
    return last


def _check_quarantine(status, job_id, result):
    if (status or {}).get("code") == "Quarantine":
        quarantine = status.get("quarantine") or {}
        reason = quarantine.get("reason") or (quarantine.get("error") or {}).get("message") or "no reason given"
        raise DirsyncError("The Cloud Sync job %s is in quarantine (%s): fix the cause shown in the Entra admin center (Provisioning logs), "
                           "then restart it." % (job_id, reason), **result)


def read_object_errors(client, job_id, execution):
    """The objects in error during ``execution``, from the provisioning logs."""
    began, ended = execution.get("timeBegan"), execution.get("timeEnded")
    params = {"$filter": "jobId eq '%s' and activityDateTime ge %s" % (job_id.replace("'", "''"), began)}
    errors = []
    for event in client.iter_items("auditLogs/provisioning", params=params):
        info = event.get("provisioningStatusInfo") or {}
        if (info.get("status") or "").lower() != "failure":
            continue
        when = parse_time(event.get("activityDateTime"))
        if when is not None and parse_time(ended) is not None and when > parse_time(ended):
            continue
        source = event.get("sourceIdentity") or {}
        details = source.get("details") or {}
        error = info.get("errorInformation") or {}
        errors.append({"object": source.get("displayName") or details.get("userPrincipalName") or source.get("id"),
                       "distinguished_name": details.get("distinguishedName"), "source_id": source.get("id"),
                       "error_code": error.get("errorCode"), "reason": error.get("reason"),
                       "recommended_action": error.get("recommendedAction"), "time": event.get("activityDateTime")})
    return errors


def _describe(errors):
    shown = "; ".join("%s: %s %s" % (item["object"], item["error_code"] or "", item["reason"] or "") for item in errors[:REPORTED_ERRORS])
    more = " (and %d more)" % (len(errors) - REPORTED_ERRORS) if len(errors) > REPORTED_ERRORS else ""
    return shown + more


def restart_full(client, params, check_mode, warn=lambda message: None, server_date=lambda: None, clock=time.monotonic, sleep=time.sleep,
                 now=lambda: datetime.datetime.now(datetime.timezone.utc)):
    sp_id = params["service_principal_id"]
    path = _jobs_path(sp_id)
    job = pick_job(list(client.iter_items(path)), sp_id, params.get("job_id"))
    job_path = "%s/%s" % (path, quote(job["id"], safe=""))
    status = job.get("status") or {}
    scope = ",".join(params.get("reset_scope") or [])
    result = {"changed": True, "job_id": job["id"], "template_id": job.get("templateId"), "restarted": False,
              "execution": status.get("lastExecution"), "status": status}
    if check_mode:
        result["msg"] = "Would restart the job %s with resetScope '%s'." % (job["id"], scope)
        return result
    before = _key(status.get("lastExecution"))
    deadline = clock() + params["wait_timeout"]
    local = now()
    # Documented answer: 204, also while a cycle runs; any error is final.
    client.post(job_path + "/restart", json={"criteria": {"resetScope": scope}})
    restarted_at = server_date() or local
    result.update(restarted=True, restarted_at=_iso(restarted_at))
    if not params["wait"]:
        result["msg"] = "Restarted the job %s with resetScope '%s'; not waiting for the cycle." % (job["id"], scope)
        return result
    result["object_errors"] = []
    while True:
        sleep(params["poll_interval"])
        status = client.get(job_path).get("status") or {}
        result.update(status=status, execution=status.get("lastExecution"))
        _check_quarantine(status, job["id"], result)
        execution = started_cycle(status, before, restarted_at)
        if execution is not None:
            break
        if clock() >= deadline:
            raise DirsyncError("The job %s was restarted at %s, but no cycle that began after the restart had finished after %d s. It keeps "
                               "running: raise wait_timeout, or follow it in the Entra admin center (Provisioning logs)."
                               % (job["id"], result["restarted_at"], params["wait_timeout"]), **result)
    state = execution.get("state") or ""
    message = (execution.get("error") or {}).get("message")
    if state.lower() == "failed":
        raise DirsyncError("The cycle started by the restart of job %s failed%s. See the Provisioning logs in the Entra admin center, fix "
                           "the cause and run again." % (job["id"], ": " + message if message else ""), **result)
    if state.lower() == "entrylevelerrors":
        count = execution.get("countEscrowed")
        if params["read_object_errors"]:
            try:
                result["object_errors"] = read_object_errors(client, job["id"], execution)
            except GraphError as exc:
                if exc.status != 403:
                    raise
                result["object_errors"] = None
                warn("The objects in error could not be read from the provisioning logs (403): grant the app AuditLog.Read.All, or "
                     "see them in the Entra admin center (Provisioning logs).")
        else:
            result["object_errors"] = None
        errors = result["object_errors"]
        counted = len(errors) if errors else (count if count is not None else "some")
        summary = "%s object(s) could not be synchronized%s" % (counted, ": " + _describe(errors) if errors else "")
        if params["fail_on_errors"]:
            raise DirsyncError("The cycle started by the restart of job %s ended with EntryLevelErrors: %s. Fix those objects in AD (see "
                               "object_errors and the Provisioning logs), or set fail_on_errors=false to only report them." % (job["id"], summary),
                               **result)
        warn("The cycle started by the restart of job %s ended with EntryLevelErrors: %s." % (job["id"], summary))
    result["msg"] = "The job %s was restarted with resetScope '%s' and the cycle it started ended with %s." % (job["id"], scope, state or "no state")
    return result


def work(module):
    params = module.params
    if not (params["service_principal_id"] or "").strip():
        raise InvalidInput("service_principal_id is empty: give the object id of the Cloud Sync configuration's service principal "
                           "(Enterprise applications in the Entra admin center). Nothing was restarted.")
    for name, least in (("wait_timeout", 0), ("poll_interval", 1)):
        if params[name] < least:
            raise InvalidInput("%s must be at least %d (seconds), got %d." % (name, least, params[name]))
    if not params.get("validate_certs", True):
        module.warn("validate_certs=false: the TLS certificates of the identity platform and Graph are not checked. Use ca_bundle instead.")
    session = build_session(params)
    dates = {}

    def remember_restart_date(response, *args, **kwargs):
        if response.request.method == "POST" and response.url.rstrip("/").endswith("/restart") and response.headers.get("Date"):
            dates["restart"] = response.headers["Date"]

    session.hooks["response"].append(remember_restart_date)
    client = GraphClient.from_params(params, session=session, log=module.debug)

    def server_date():
        try:
            return parsedate_to_datetime(dates["restart"]) if "restart" in dates else None
        except (TypeError, ValueError):
            return None
    return restart_full(client, params, module.check_mode, warn=module.warn, server_date=server_date)


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(
        service_principal_id=dict(type="str", required=True),
        job_id=dict(type="str"),
        reset_scope=dict(type="list", elements="str", default=["Full"],
                         choices=["Watermark", "Escrows", "QuarantineState", "Full", "ForceDeletes"]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=3600),
        poll_interval=dict(type="int", default=30),
        fail_on_errors=dict(type="bool", default=True),
        read_object_errors=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()
