"""A stand-in for the ADSync cmdlets of an Entra Connect server, served on the control port.

No Windows runs here, so ``entraid.dirsync.entra_connect_sync`` talks to this instead of running
``entra_connect_cmdlet.ps1`` on a server. It answers like the cmdlets (same property names) and runs
the emulator's real sync engine, so the tenant really changes.

    GET  /adsync/scheduler         Get-ADSyncScheduler
    POST /adsync/start             Start-ADSyncSyncCycle -PolicyType {"policy_type": "Initial"|"Delta"}
    GET  /adsync/runs?n=N          Get-ADSyncRunProfileResult -NumberRequested N (newest first)
    GET  /adsync/config            the knobs below
    POST /adsync/config            {"staging_mode": bool, "scheduler_suspended": bool, "sync_cycle_enabled": bool,
                                    "busy_for_seconds": N (a scheduler cycle runs for N s from now),
                                    "result": what the next cycles' export to Entra ID reports, e.g. "completed-export-errors"}

A cmdlet's output comes back as ``{"output": ...}``; a cmdlet's failure as ``{"error": {"type", "message"}}``
(409 for "busy"), the same shape ``entra_connect_cmdlet`` returns. ``tenant`` (query or body) picks a
tenant by id or domain; default the first. Register with ``register(control_router, emulator)``.
"""

import datetime
import threading
import time
import uuid

from .http import HttpError, Response
from .state import utcnow
from .sync_engine import SyncBusy

RESULTS = ("success", "completed-no-objects", "completed-warnings", "completed-transient-objects", "completed-errors",
           "completed-export-errors", "completed-sync-errors", "completed-discovery-errors", "stopped-connectivity",
           "stopped-server", "stopped-extension-dll-exception", "stopped-deletion-threshold-exceeded", "stopped-user-termination")
BOOLEAN_KNOBS = ("staging_mode", "scheduler_suspended", "sync_cycle_enabled")
MAX_CYCLES = 50
STEPS = {
    "Initial": ("Full Import", "Full Synchronization"),
    "Delta": ("Delta Import", "Delta Synchronization"),
}


def _cmdlet_error(status, message, error_type="System.InvalidOperationException"):
    return Response(status, {"error": {"type": error_type, "message": message}})


class _Server:
    """The ADSync side of one tenant: its knobs and the cycles started through it."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.knobs = {"staging_mode": False, "scheduler_suspended": False, "sync_cycle_enabled": True, "result": "success"}
        self.cycles = []
        self.ad_connector = (tenant.verified_domains or ["lab.test"])[0]
        self.aad_connector = "%s - AAD" % tenant.id


class ADSyncStandin:
    """Routes of the stand-in over the emulator's state and sync engine."""

    def __init__(self, state, sync, clock=time.monotonic):
        self.state = state
        self.sync = sync
        self.clock = clock
        self._lock = threading.Lock()
        self._servers = {}

    def add_routes(self, router):
        router.add("GET", "/adsync/scheduler", self.scheduler)
        router.add("POST", "/adsync/start", self.start)
        router.add("GET", "/adsync/runs", self.runs)
        router.add("GET", "/adsync/config", self.get_config)
        router.add("POST", "/adsync/config", self.set_config)

    def _server(self, key):
        tenant = self.state.default if key is None else self.state.tenant(key)
        if tenant is None:
            raise HttpError(404, "NotFound", "No tenant %s: use a tenant id or verified domain from the configuration." % key, kind="control")
        with self._lock:
            return self._servers.setdefault(tenant.id, _Server(tenant))

    @staticmethod
    def _body(request):
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "BadRequest", "The request body must be a JSON object.", kind="control")
        return body

    def _running(self, cycle):
        if cycle["engine_run"] is None:
            return self.clock() < cycle["ends_at"]
        run = self.sync.wait(cycle["tenant"], cycle["engine_run"], timeout=0)
        return run is not None and run["state"] == "inProgress"

    def _in_progress(self, server):
        # The engine also runs cycles for the control API and Cloud Sync restarts: the server is busy then too.
        return self.sync.running(server.tenant) is not None or any(self._running(cycle) for cycle in server.cycles)

    def scheduler(self, request):
        server = self._server(request.arg("tenant"))
        with self._lock:
            return Response(200, {"output": {
                "SyncCycleInProgress": self._in_progress(server), "SchedulerSuspended": server.knobs["scheduler_suspended"],
                "StagingModeEnabled": server.knobs["staging_mode"], "SyncCycleEnabled": server.knobs["sync_cycle_enabled"],
                "NextSyncCyclePolicyType": "Delta", "MaintenanceEnabled": True, "CurrentlyEffectiveSyncCycleInterval": "00:30:00"}})

    def _add_cycle(self, server, policy_type, engine_run=None, seconds=0.0):
        ended = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
        cycle = {"tenant": server.tenant, "policy_type": policy_type, "engine_run": engine_run, "ends_at": self.clock() + seconds,
                 "started": utcnow(), "ended": ended.strftime("%Y-%m-%dT%H:%M:%SZ"), "staging": server.knobs["staging_mode"], "result": server.knobs["result"],
                 "run_ids": [str(uuid.uuid4()) for _step in range(6)]}
        server.cycles.append(cycle)
        del server.cycles[:-MAX_CYCLES]
        return cycle

    def start(self, request):
        body = self._body(request)
        server = self._server(body.get("tenant"))
        policy_type = str(body.get("policy_type") or "Delta").capitalize()
        if policy_type not in STEPS:
            return _cmdlet_error(400, "Cannot bind parameter 'PolicyType': '%s' is not one of Initial, Delta." % body.get("policy_type"),
                                 "System.Management.Automation.ParameterBindingException")
        with self._lock:
            if not server.knobs["sync_cycle_enabled"]:
                return _cmdlet_error(400, "Sync cycle is disabled. Enable it with Set-ADSyncScheduler -SyncCycleEnabled $true.")
            if server.knobs["scheduler_suspended"]:
                return _cmdlet_error(400, "The scheduler is suspended. Resume it with Set-ADSyncScheduler -SchedulerSuspended $false.")
            if self._in_progress(server):
                return _cmdlet_error(409, "Connector: %s is busy. A sync cycle is already running." % server.ad_connector)
            if server.knobs["staging_mode"]:
                # A staging server imports and synchronizes but never exports: the tenant is left alone.
                self._add_cycle(server, policy_type, seconds=self.sync.cycle_seconds)
            else:
                try:
                    run = self.sync.start(server.tenant, policy_type.lower())
                except SyncBusy as exc:
                    return _cmdlet_error(409, "Connector: %s is busy. %s" % (server.ad_connector, exc))
                except ValueError as exc:
                    return _cmdlet_error(400, str(exc))
                self._add_cycle(server, policy_type, engine_run=run["id"])
        return Response(200, {"output": {"Result": "Success"}})

    def _cycle_runs(self, server, cycle):
        """The run profile results of one cycle, oldest first, as Get-ADSyncRunProfileResult shows them."""
        engine = None if cycle["engine_run"] is None else self.sync.wait(server.tenant, cycle["engine_run"], timeout=0)
        if engine is not None:
            state, ended, errors = engine["state"], engine["ended"], engine["errors"]
        else:
            running = self.clock() < cycle["ends_at"]
            state, ended, errors = ("inProgress" if running else "success"), (None if running else cycle["ended"]), []
        import_step, sync_step = STEPS[cycle["policy_type"]]
        steps = [(server.ad_connector, import_step), (server.aad_connector, import_step),
                 (server.ad_connector, sync_step), (server.aad_connector, sync_step)]
        if not cycle["staging"]:
            steps += [(server.aad_connector, "Export"), (server.ad_connector, "Export")]
        if state == "failed":
            # The engine could not read AD: the first import stopped and nothing after it ran.
            steps, results = steps[:1], ["stopped-connectivity"]
        else:
            export_result = cycle["result"]
            if export_result == "success" and errors:
                export_result = "completed-export-errors"
            export = (server.aad_connector, "Export")
            results = ["in-progress" if state == "inProgress" else export_result if item == export else "success" for item in steps]
        return [{"RunHistoryId": run_id, "ConnectorName": connector, "RunProfileName": step, "Result": result,
                 "IsRunComplete": result != "in-progress", "StartDate": cycle["started"], "EndDate": ended}
                for run_id, (connector, step), result in zip(cycle["run_ids"], steps, results)]

    def runs(self, request):
        server = self._server(request.arg("tenant"))
        try:
            count = int(request.arg("n", "20"))
        except ValueError:
            return _cmdlet_error(400, "Cannot bind parameter 'NumberRequested': '%s' is not a number." % request.arg("n"),
                                 "System.Management.Automation.ParameterBindingException")
        with self._lock:
            cycles = list(server.cycles)
        runs = []
        for cycle in reversed(cycles):
            runs.extend(reversed(self._cycle_runs(server, cycle)))
        return Response(200, {"output": runs[:max(count, 0)]})

    def get_config(self, request):
        server = self._server(request.arg("tenant"))
        with self._lock:
            return Response(200, dict(server.knobs, busy=self._in_progress(server)))

    def set_config(self, request):
        body = self._body(request)
        server = self._server(body.get("tenant"))
        knobs = {key: value for key, value in body.items() if key != "tenant"}
        unknown = sorted(set(knobs) - set(BOOLEAN_KNOBS) - {"result", "busy_for_seconds"})
        if unknown:
            raise HttpError(400, "BadRequest", "Unknown knobs %s; known: %s, result, busy_for_seconds." % (", ".join(unknown), ", ".join(BOOLEAN_KNOBS)),
                            kind="control")
        if any(not isinstance(knobs[name], bool) for name in BOOLEAN_KNOBS if name in knobs):
            raise HttpError(400, "BadRequest", "%s must be booleans." % ", ".join(BOOLEAN_KNOBS), kind="control")
        if "result" in knobs and knobs["result"] not in RESULTS:
            raise HttpError(400, "BadRequest", "result must be one of %s." % ", ".join(RESULTS), kind="control")
        seconds = knobs.pop("busy_for_seconds", 0)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise HttpError(400, "BadRequest", "busy_for_seconds must be a number of seconds (0 or more).", kind="control")
        with self._lock:
            server.knobs.update(knobs)
            if seconds:
                # What the server's own scheduler would do: a delta cycle that keeps the server busy.
                self._add_cycle(server, "Delta", seconds=seconds)
            return Response(200, dict(server.knobs, busy=self._in_progress(server)))


def register(router, emulator):
    """Add the /adsync routes to ``router`` (the emulator's control router); return the stand-in."""
    standin = ADSyncStandin(emulator.state, emulator.sync)
    standin.add_routes(router)
    return standin
