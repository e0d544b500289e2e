# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Entra Connect (ADSync) sync cycles: every decision on the controller, single cmdlets on the server.

No Windows runs in CI, so the Windows side (``entra_connect_cmdlet.ps1``) only runs one ADSync cmdlet
and returns its output; busy handling, staging refusal, polling, timeouts and the reading of run
results live here and are tested against a fake runner and the lab's stand-in.

A *runner* is ``run(cmdlet, args) -> parsed output`` where ``args`` uses the cmdlet's parameter names
(``{"PolicyType": "Initial"}``, ``{"NumberRequested": 50}``). It raises ``CmdletFailed`` when the cmdlet
itself failed (for example "... is busy") and another ``DirsyncError`` when it could not run it at all.
"""

from __future__ import annotations

import json
import time

from ansible.module_utils.urls import open_url

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput

SCHEDULER = "Get-ADSyncScheduler"
START = "Start-ADSyncSyncCycle"
RUN_RESULTS = "Get-ADSyncRunProfileResult"
CMDLETS = (SCHEDULER, START, RUN_RESULTS)
POLICY_TYPES = ("Initial", "Delta")
# Enough to hold every run profile of one cycle (import, sync, export per connector) on servers with many connectors.
RUN_HISTORY = 100

# Run results (the MIIS run status strings ADSync reports) that mean the run did what it should.
SUCCESS_RESULTS = ("success", "completed-no-objects")
IN_PROGRESS = "in-progress"


class CmdletFailed(DirsyncError):
    """An ADSync cmdlet ran and failed (its exception type and message)."""

    def __init__(self, cmdlet, message, error_type=None):
        super().__init__("%s failed on the Entra Connect server: %s" % (cmdlet, message), cmdlet=cmdlet, error_type=error_type)
        self.cmdlet = cmdlet
        self.message = message
        self.error_type = error_type

    @property
    def busy(self):
        """True for the error Start-ADSyncSyncCycle raises while a cycle runs (InvalidOperationException "... is busy")."""
        text = (self.message or "").lower()
        return "busy" in text or "already running" in text


def classify_result(result):
    """``success``, ``warning``, ``error``, ``stopped`` or ``running`` for a run's Result string."""
    value = (result or "").strip().lower()
    if value in SUCCESS_RESULTS:
        return "success"
    if value == IN_PROGRESS:
        return "running"
    if value.startswith("completed-"):
        # completed-errors, completed-export-errors, completed-sync-errors, completed-discovery-errors: some objects failed.
        return "error" if value.endswith("errors") else "warning"
    if value.startswith(("stopped-", "no-start-")):
        return "stopped"
    # An unknown status must not pass as success.
    return "error"


def _as_list(output):
    """PowerShell's ConvertTo-Json turns a one-item array into an object; accept both."""
    if output is None:
        return []
    return output if isinstance(output, list) else [output]


def _describe_run(run):
    return "%s on %s: %s" % (run.get("RunProfileName") or "?", run.get("ConnectorName") or "?", run.get("Result") or "?")


def summarize_runs(runs):
    """The runs (oldest first) with an ``outcome`` each, and the lists of errors and warnings a user reads."""
    summary = {"runs": [], "run_errors": [], "run_warnings": []}
    # The cmdlet lists newest first; runs of one cycle may share a StartDate, so reverse before the stable sort.
    for run in sorted(reversed(runs), key=lambda item: str(item.get("StartDate") or "")):
        outcome = classify_result(run.get("Result"))
        summary["runs"].append(dict(run, outcome=outcome))
        if outcome in ("error", "stopped"):
            summary["run_errors"].append(_describe_run(run))
        elif outcome == "warning":
            summary["run_warnings"].append(_describe_run(run))
    return summary


def check_scheduler(scheduler):
    """Raise when the server must not (or cannot) run a cycle; nothing has been started at this point."""
    if not isinstance(scheduler, dict):
        raise DirsyncError("%s returned %r instead of the scheduler settings: check that the ADSync module on the server is the one "
                           "Entra Connect installed." % (SCHEDULER, scheduler))
    if scheduler.get("StagingModeEnabled"):
        raise DirsyncError("The Entra Connect server is in staging mode: it exports nothing to Entra ID, so a sync cycle there would not "
                           "apply AD's values. Nothing was started. Run this against the active Entra Connect server (the one with "
                           "StagingModeEnabled False in Get-ADSyncScheduler).", scheduler=scheduler)
    if scheduler.get("SyncCycleEnabled") is False:
        raise DirsyncError("Sync cycles are disabled on the Entra Connect server (SyncCycleEnabled False). Nothing was started. Enable "
                           "them with Set-ADSyncScheduler -SyncCycleEnabled $true, or run the cycle from the server yourself.",
                           scheduler=scheduler)
    if scheduler.get("SchedulerSuspended"):
        raise DirsyncError("The Entra Connect scheduler is suspended (an upgrade or an administrator suspended it). Nothing was started. "
                           "Wait for the upgrade to finish or resume it with Set-ADSyncScheduler -SchedulerSuspended $false.",
                           scheduler=scheduler)


class _Deadline:
    def __init__(self, clock, seconds):
        self._clock = clock
        self.started = clock()
        self.ends = self.started + seconds

    @property
    def passed(self):
        return self._clock() >= self.ends

    @property
    def elapsed(self):
        return self._clock() - self.started


def full_sync(run, policy_type="Initial", busy_timeout=1800, wait_timeout=3600, poll_interval=15, fail_on_errors=True,
              check_mode=False, clock=time.monotonic, sleep=time.sleep, log=None):
    """Start a sync cycle on an Entra Connect server and wait for it; return the task result.

    Refuses a server in staging mode, with cycles disabled or its scheduler suspended. When a cycle is
    already running, waits up to ``busy_timeout`` seconds for it and then starts ours. Polls the scheduler
    every ``poll_interval`` seconds until our cycle is idle and its runs are complete, up to ``wait_timeout``.
    The cycle's runs are those absent from the run history just before the start (run ids, so the
    clocks of the controller and the server need not agree). Raises ``DirsyncError`` on refusal,
    timeout, or (with ``fail_on_errors``) when a run ended with errors or stopped.
    """
    if policy_type not in POLICY_TYPES:
        raise InvalidInput("policy_type must be one of %s, got %r." % (", ".join(POLICY_TYPES), policy_type))
    log = log or (lambda message: None)
    scheduler = run(SCHEDULER, {})
    check_scheduler(scheduler)
    result = {"changed": True, "policy_type": policy_type, "scheduler": scheduler, "started": False, "waited_for_busy": 0.0,
              "runs": [], "run_errors": [], "run_warnings": []}
    if check_mode:
        result["msg"] = "Would start a sync cycle (policy type %s) on the Entra Connect server%s." % (
            policy_type, " after the running cycle ends" if scheduler.get("SyncCycleInProgress") else "")
        return result

    busy = _Deadline(clock, busy_timeout)
    while True:
        if scheduler.get("SyncCycleInProgress"):
            if busy.passed:
                raise DirsyncError("A sync cycle was still running on the Entra Connect server after %d s of waiting; ours was not started. "
                                   "Raise busy_timeout, or check in Synchronization Service Manager why the cycle takes so long."
                                   % busy_timeout, scheduler=scheduler, changed=False)
            log("a sync cycle is running; waiting %s s before trying again" % poll_interval)
            sleep(poll_interval)
            scheduler = run(SCHEDULER, {})
            check_scheduler(scheduler)
            continue
        before = {item.get("RunHistoryId") for item in _as_list(run(RUN_RESULTS, {"NumberRequested": RUN_HISTORY}))}
        try:
            result["start"] = run(START, {"PolicyType": policy_type})
        except CmdletFailed as exc:
            if not exc.busy:
                raise
            # Another cycle (the scheduler's) started between our check and our start.
            scheduler = dict(scheduler, SyncCycleInProgress=True)
            continue
        break
    result["started"] = True
    result["waited_for_busy"] = round(busy.elapsed, 1)
    log("started a %s sync cycle" % policy_type)

    cycle = _Deadline(clock, wait_timeout)
    while True:
        sleep(poll_interval)
        scheduler = run(SCHEDULER, {})
        ours = []
        if not scheduler.get("SyncCycleInProgress"):
            ours = [item for item in _as_list(run(RUN_RESULTS, {"NumberRequested": RUN_HISTORY})) if item.get("RunHistoryId") not in before]
            if ours and not any(classify_result(item.get("Result")) == "running" for item in ours):
                break
        if cycle.passed:
            result.update(summarize_runs(ours), scheduler=scheduler)
            raise DirsyncError("The %s sync cycle started on the Entra Connect server had not finished after %d s. It keeps running there "
                               "(it was not stopped): raise wait_timeout, or follow it in Synchronization Service Manager."
                               % (policy_type, wait_timeout), **result)
    result.update(summarize_runs(ours), scheduler=scheduler, duration=round(cycle.elapsed, 1))
    if result["run_errors"] and fail_on_errors:
        raise DirsyncError("The %s sync cycle finished, but runs ended with errors: %s. Look at these runs in Synchronization Service "
                           "Manager (Operations), fix the objects named there and run a cycle again; set fail_on_errors=false to "
                           "only report them." % (policy_type, "; ".join(result["run_errors"])), **result)
    result["msg"] = "The %s sync cycle finished: %d runs, %d with errors, %d with warnings." % (
        policy_type, len(result["runs"]), len(result["run_errors"]), len(result["run_warnings"]))
    return result


def standin_runner(base_url, timeout=30):
    """A runner that calls the lab's ADSync stand-in (HTTP JSON) instead of the cmdlets on Windows."""
    base = base_url.rstrip("/")

    def call(cmdlet, args):
        if cmdlet == SCHEDULER:
            method, path, body = "GET", "/adsync/scheduler", None
        elif cmdlet == START:
            method, path, body = "POST", "/adsync/start", {"policy_type": args["PolicyType"]}
        elif cmdlet == RUN_RESULTS:
            method, path, body = "GET", "/adsync/runs?n=%d" % int(args["NumberRequested"]), None
        else:
            raise InvalidInput("Unknown ADSync cmdlet %r; known: %s." % (cmdlet, ", ".join(CMDLETS)))
        data = None if body is None else json.dumps(body).encode("utf-8")
        try:
            response = open_url(base + path, data=data, method=method, headers={"Content-Type": "application/json"}, timeout=timeout)
            text = response.read()
        except OSError as exc:
            # HTTPError is an OSError with a readable body: the stand-in's cmdlet errors come this way.
            text = exc.read() if hasattr(exc, "read") else None
            if text is None:
                raise DirsyncError("The ADSync stand-in at %s could not be reached: %s. Check standin_url and that the lab is up." % (base, exc))
        try:
            answer = json.loads(text or b"null")
        except ValueError:
            raise DirsyncError("The ADSync stand-in at %s%s answered with something that is not JSON: check standin_url." % (base, path)) from None
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            raise CmdletFailed(cmdlet, error.get("message"), error.get("type"))
        if error is not None:
            raise DirsyncError("The ADSync stand-in at %s%s failed: %s. Check standin_url (it is the lab's control URL)." % (base, path, error))
        return answer.get("output") if isinstance(answer, dict) else answer

    return call
