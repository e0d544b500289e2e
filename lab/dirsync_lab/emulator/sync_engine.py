"""The simulated sync engine: reads AD users in scope and applies Entra Connect's behaviour.

- Anchor: ``mS-DS-ConsistencyGuid`` when set, else ``objectGUID`` (bytes as AD returns them, which
  is .NET little-endian GUID order); ``onPremisesImmutableId`` = base64 of the anchor bytes.
- Users are matched by immutable id; unmatched AD users are created as synced users.
- A property with a DirSyncOverride keeps its cloud value while the tenant's
  ``bypassDirSyncOverridesEnabled`` is false; when true, AD wins, and the override marker is
  cleared or kept as the tenant's ``overrides_on_bypass`` option says (Microsoft documents neither). A Cloud Sync cycle
  (a job restart) honours the flag, or ignores it as the ``cloud_sync_bypass`` option says (Microsoft documents the
  flag for Entra Connect only).
  With the flag on, every cycle (delta too) also puts back the AD value of users edited in the
  cloud, from the engine's copy of what it last read from AD (the how-to's "next sync cycle" rule).
- A tenant has one source per forest (``ldap_sources``), read one after another in each cycle; users are matched by
  immutable id across all of them (Entra Connect joins users of several forests by sourceAnchor).
- Delta cycles read entries with ``uSNChanged`` above the previous cycle's watermark of each source; initial
  (full) cycles read everything in scope and delete synced users whose anchor no source returned.

All LDAP access is in ``LdapSource.read`` so tests can pass a fake source with the same method.
"""

import base64
import itertools
import ssl
import threading
import time
from urllib.parse import urlsplit

import ldap3

import uuid

from .state import UNSET_DATE, User, utcnow

USER_FILTER = "(&(objectCategory=person)(objectClass=user))"
ATTRIBUTES = ("objectGUID", "mS-DS-ConsistencyGuid", "userPrincipalName", "displayName", "givenName", "sn", "mail", "mobile",
              "otherMobile", "userAccountControl", "objectSid", "distinguishedName", "sAMAccountName", "uSNChanged")
BINARY = ("objectGUID", "mS-DS-ConsistencyGuid", "objectSid")
MULTI = ("otherMobile",)
APPLY_BATCH = 500
MAX_RUNS = 50
MAX_ERRORS = 100


class SyncBusy(Exception):
    """A cycle is already running for the tenant."""


class LdapSource:
    """Reads the users of a tenant's sync scope from AD over LDAPS (or LDAP + StartTLS) with ldap3."""

    def __init__(self, config):
        self.config = config

    def _connect(self):
        url = urlsplit(self.config["url"])
        use_ssl = url.scheme == "ldaps"
        tls = ldap3.Tls(ca_certs_file=self.config.get("ca_file"), validate=ssl.CERT_REQUIRED)
        server = ldap3.Server(url.hostname, port=url.port or (636 if use_ssl else 389), use_ssl=use_ssl, tls=tls, get_info=ldap3.NONE)
        connection = ldap3.Connection(server, user=self.config["username"], password=self.config["password"],
                                      authentication=ldap3.SIMPLE, raise_exceptions=True, read_only=True)
        if not use_ssl:
            connection.open()
            connection.start_tls()
        connection.bind()
        return connection

    def read(self, since_usn=None):
        """(highest committed USN before the read, iterator of entry dicts) for users changed after ``since_usn``.

        An entry maps each name in ``ATTRIBUTES`` to bytes (binary ones), a list of str (otherMobile),
        int (userAccountControl, uSNChanged), str or None.
        """
        connection = self._connect()
        connection.search("", "(objectClass=*)", ldap3.BASE, attributes=["highestCommittedUSN"])
        highest = int(connection.response[0]["raw_attributes"]["highestCommittedUSN"][0])
        search_filter = USER_FILTER if since_usn is None else "(&%s(uSNChanged>=%d))" % (USER_FILTER, since_usn + 1)
        scopes = self.config.get("sync_scope") or [self.config["base_dn"]]

        def entries():
            try:
                for base in scopes:
                    for item in connection.extend.standard.paged_search(base, search_filter, ldap3.SUBTREE, attributes=list(ATTRIBUTES),
                                                                        paged_size=1000, generator=True):
                        if item.get("type") == "searchResEntry":
                            yield convert_entry(item["dn"], item["raw_attributes"])
            finally:
                connection.unbind()
        return highest, entries()


def convert_entry(dn, raw):
    """An entry dict from ldap3 raw attributes (attribute name -> list of bytes)."""
    lowered = {name.lower(): values for name, values in raw.items()}
    entry = {}
    for name in ATTRIBUTES:
        values = lowered.get(name.lower()) or []
        if name in BINARY:
            entry[name] = bytes(values[0]) if values else None
        elif name in MULTI:
            entry[name] = [value.decode("utf-8") for value in values]
        elif name in ("userAccountControl", "uSNChanged"):
            entry[name] = int(values[0]) if values else 0
        else:
            entry[name] = values[0].decode("utf-8") if values else None
    entry["distinguishedName"] = entry["distinguishedName"] or dn
    return entry


def sid_to_string(sid):
    """S-R-I-S-S... text form of a binary SID."""
    if isinstance(sid, str) or sid is None:
        return sid
    count = sid[1]
    authority = int.from_bytes(sid[2:8], "big")
    subs = [int.from_bytes(sid[8 + 4 * index:12 + 4 * index], "little") for index in range(count)]
    return "S-%d-%d%s" % (sid[0], authority, "".join("-%d" % sub for sub in subs))


def dns_domain(dn):
    return ".".join(part.split("=", 1)[1] for part in (dn or "").split(",") if part.strip().lower().startswith("dc="))


def immutable_id(entry):
    anchor = entry.get("mS-DS-ConsistencyGuid") or entry["objectGUID"]
    return base64.b64encode(anchor).decode("ascii")


def cloud_values(entry, tenant):
    """What Entra should hold for an AD entry (Graph names; ``alternateMobilePhones`` is private state)."""
    domain = dns_domain(entry.get("distinguishedName"))
    on_prem_upn = entry.get("userPrincipalName")
    upn = on_prem_upn or "%s@%s" % (entry.get("sAMAccountName"), domain)
    prefix, dummy, suffix = upn.rpartition("@")
    verified = [name.lower() for name in tenant.verified_domains]
    if verified and suffix.lower() not in verified:
        # Entra replaces a UPN suffix that is not a verified domain with the tenant's initial domain.
        upn = "%s@%s" % (prefix, tenant.initial_domain)
    return {
        "userPrincipalName": upn, "displayName": entry.get("displayName"), "givenName": entry.get("givenName"),
        "surname": entry.get("sn"), "mail": entry.get("mail"), "mobilePhone": entry.get("mobile") or None,
        "accountEnabled": not int(entry.get("userAccountControl") or 0) & 2, "onPremisesSyncEnabled": True,
        "onPremisesImmutableId": immutable_id(entry), "onPremisesSecurityIdentifier": sid_to_string(entry.get("objectSid")),
        "onPremisesDistinguishedName": entry.get("distinguishedName"), "onPremisesSamAccountName": entry.get("sAMAccountName"),
        "onPremisesDomainName": domain or None, "onPremisesUserPrincipalName": on_prem_upn,
        "alternateMobilePhones": sorted(entry.get("otherMobile") or []),
    }


def _same(name, current, wanted):
    if name == "alternateMobilePhones":
        return sorted(current or []) == sorted(wanted or [])
    return current == wanted


class SyncEngines:
    """Runs sync cycles for every tenant, one at a time per tenant, each in its own thread."""

    def __init__(self, cycle_seconds=2.0, source_factory=LdapSource):
        self.cycle_seconds = float(cycle_seconds)
        self.source_factory = source_factory
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._running = {}
        self._done = {}
        # Tenants whose Cloud Sync job was restarted while a cycle ran: a full cycle follows it.
        self._queued = set()

    def start(self, tenant, cycle_type, engine="entra_connect"):
        """Start a cycle of ``engine`` (``entra_connect`` or ``cloud_sync``) in the background; the run dict (a copy).
        Raises SyncBusy or ValueError."""
        if cycle_type not in ("initial", "delta"):
            raise ValueError("type must be 'initial' or 'delta', not %r" % cycle_type)
        if not tenant.directory_sync:
            raise ValueError("tenant %s has no directory synchronization (directory_sync is false)" % tenant.id)
        with self._lock:
            current = self._running.get(tenant.id)
            if current is not None:
                raise SyncBusy("A sync cycle (%s, run %d) is already running for tenant %s: wait for it to finish (GET /sync)."
                               % (current["type"], current["id"], tenant.id))
            run = {"id": next(self._ids), "activity": str(uuid.uuid4()), "tenant": tenant.id, "type": cycle_type, "engine": engine,
                   "state": "inProgress",
                   "started": utcnow(), "ended": None, "read": 0, "sources": {}, "created": 0, "updated": 0, "unchanged": 0, "deleted": 0,
                   "overrides_kept": 0, "overrides_cleared": 0, "overrides_bypassed": 0, "errors": [], "error": None}
            self._running[tenant.id] = run
            self._done[run["id"]] = threading.Event()
        with tenant.lock:
            tenant.runs.append(run)
            del tenant.runs[:-MAX_RUNS]
        threading.Thread(target=self._cycle, args=(tenant, run), name="sync-%s-%d" % (tenant.id, run["id"]), daemon=True).start()
        return dict(run)

    def restart(self, tenant):
        """A Cloud Sync job restart: a full cycle now, or right after the running one (never refused)."""
        try:
            return self.start(tenant, "initial", engine="cloud_sync")
        except SyncBusy:
            with self._lock:
                self._queued.add(tenant.id)
            return None

    def wait(self, tenant, run_id, timeout=None):
        """The run after it finished (or as it is when ``timeout`` passed)."""
        done = self._done.get(run_id)
        if done is not None:
            done.wait(timeout)
        with tenant.lock:
            for run in tenant.runs:
                if run["id"] == run_id:
                    return dict(run)
        return None

    def running(self, tenant):
        with self._lock:
            run = self._running.get(tenant.id)
            return dict(run) if run else None

    @staticmethod
    def _execution(run, running=False):
        """A Graph synchronizationTaskExecution of a run."""
        if running:
            state, ended = None, UNSET_DATE
        elif run["state"] == "failed":
            state, ended = "Failed", run["ended"]
        else:
            state, ended = ("EntryLevelErrors" if run["errors"] else "Succeeded"), run["ended"]
        escrowed = len(run["errors"])
        exported = run["created"] + run["updated"] + run["deleted"]
        error = None
        if run["state"] == "failed":
            error = {"code": "SynchronizationFailed", "message": run["error"], "tenantActionable": True}
        elif escrowed and not running:
            error = {"code": "EntryLevelErrors", "message": "%d object(s) could not be synchronized; see the provisioning logs." % escrowed,
                     "tenantActionable": True}
        return {"activityIdentifier": run["activity"], "countEntitled": run["read"], "countEntitledForProvisioning": run["read"],
                "countEscrowed": escrowed, "countEscrowedRaw": escrowed, "countExported": exported, "countExports": exported + escrowed,
                "countImported": run["read"], "countImportedDeltas": run["read"] if run["type"] == "delta" else 0,
                "countImportedReferenceDeltas": 0, "error": error, "state": state, "timeBegan": run["started"], "timeEnded": ended}

    def job_status(self, tenant, job):
        """Graph synchronizationStatus of a Cloud Sync job (the tenant's cycles are the job's executions). Caller holds the lock."""
        finished = [run for run in tenant.runs if run["state"] != "inProgress"]
        running = [run for run in tenant.runs if run["state"] == "inProgress"]
        successes = [run for run in finished if run["state"] == "success" and not run["errors"]]
        with_exports = [run for run in finished if run["state"] == "success" and run["created"] + run["updated"] + run["deleted"]]
        last = self._execution(finished[-1]) if finished else None
        if running and tenant.options.get("running_execution") == "placeholder":
            last = self._execution(running[-1], running=True)
        failures = 0
        for run in reversed(finished):
            if run["state"] != "failed":
                break
            failures += 1
        return {"code": "Active" if tenant.runs else "NotRun", "countSuccessiveCompleteFailures": failures, "escrowsPruned": False,
                "lastExecution": last,
                "lastSuccessfulExecution": self._execution(successes[-1]) if successes else None,
                "lastSuccessfulExecutionWithExports": self._execution(with_exports[-1]) if with_exports else None,
                "progress": [], "quarantine": None,
                "steadyStateFirstAchievedTime": successes[0]["ended"] if successes else UNSET_DATE,
                "steadyStateLastAchievedTime": successes[-1]["ended"] if successes else UNSET_DATE,
                "troubleshootingUrl": None}

    def _cycle(self, tenant, run):
        began = time.monotonic()
        reading = None
        try:
            if not tenant.ldap_sources:
                raise ValueError("the tenant has no 'ldap_sources' (or 'ldap') in the emulator configuration")
            seen, highest = set(), {}
            # Entries read, per source (set in full now: GET /sync may copy the run while it goes).
            run["sources"] = {config["name"]: 0 for config in tenant.ldap_sources}
            for config in tenant.ldap_sources:
                reading = config["name"]
                highest[reading] = self._read_source(tenant, config, run, seen)
            reading = None
            self._reapply_cloud_edits(tenant, run, seen)
            if run["type"] == "initial":
                self._delete_unseen(tenant, run, seen)
            # Only after every source was read: a failed cycle reads the same changes again next time.
            with tenant.lock:
                tenant.watermarks.update(highest)
            outcome, error = "success", None
        # Any failure ends the run as failed, with its reason (and the source's name when there are several).
        except Exception as exc:  # pylint: disable=broad-except
            outcome, error = "failed", "%s: %s" % (type(exc).__name__, exc)
            if reading is not None and len(tenant.ldap_sources) > 1:
                error = "source %s: %s" % (reading, error)
        remaining = self.cycle_seconds - (time.monotonic() - began)
        if remaining > 0:
            time.sleep(remaining)
        with tenant.lock:
            run.update({"state": outcome, "error": error, "ended": utcnow()})
        with self._lock:
            self._running.pop(tenant.id, None)
            done = self._done.pop(run["id"], None)
            queued = tenant.id in self._queued
            self._queued.discard(tenant.id)
        if done is not None:
            done.set()
        if queued:
            try:
                self.start(tenant, "initial", engine="cloud_sync")
            except SyncBusy:
                with self._lock:
                    self._queued.add(tenant.id)

    def _read_source(self, tenant, config, run, seen):
        """Apply one source's users (changed since its watermark, in a delta cycle); its highest committed USN."""
        since = tenant.watermarks.get(config["name"]) if run["type"] == "delta" else None
        highest, entries = self.source_factory(config).read(since)
        batch = []
        for entry in entries:
            batch.append(entry)
            if len(batch) >= APPLY_BATCH:
                self._apply(tenant, batch, run, seen, config["name"])
                batch = []
        self._apply(tenant, batch, run, seen, config["name"])
        return highest

    @staticmethod
    def _error(run, entry, message, code="AttributeValueMustBeUnique", upn=None):
        if len(run["errors"]) < MAX_ERRORS:
            run["errors"].append({"distinguishedName": entry.get("distinguishedName"), "error": message, "code": code,
                                  "userPrincipalName": upn or entry.get("userPrincipalName"), "time": utcnow(),
                                  "immutableId": immutable_id(entry) if entry.get("objectGUID") else None})

    @staticmethod
    def _bypass(tenant, run):
        """Whether this run bypasses overrides: the flag is on, and the run's engine honours it."""
        if not tenant.features.get("bypassDirSyncOverridesEnabled", False):
            return False
        return run.get("engine") != "cloud_sync" or tenant.options.get("cloud_sync_bypass") != "ignored"

    def _reapply_cloud_edits(self, tenant, run, seen):
        """With the flag on, users with cloud edits get AD's values back, even when AD did not change them."""
        with tenant.lock:
            if not self._bypass(tenant, run):
                return
            for user in list(tenant.users.values()):
                if user.overrides and user.source is not None and user.props.get("onPremisesImmutableId") not in seen:
                    entry = {"distinguishedName": user.source.get("onPremisesDistinguishedName")}
                    self._update(tenant, user, entry, dict(user.source), run, True)

    def _apply(self, tenant, entries, run, seen, source):
        with tenant.lock:
            bypass = self._bypass(tenant, run)
            for entry in entries:
                run["read"] += 1
                run["sources"][source] += 1
                values = cloud_values(entry, tenant)
                immutable = values["onPremisesImmutableId"]
                seen.add(immutable)
                user = tenant.users.get(tenant.by_immutable.get(immutable, ""))
                if user is None:
                    self._create(tenant, entry, values, run)
                else:
                    self._update(tenant, user, entry, values, run, bypass)

    def _create(self, tenant, entry, values, run):
        source = dict(values)
        alternate = values.pop("alternateMobilePhones")
        values["onPremisesLastSyncDateTime"] = utcnow()
        if values["userPrincipalName"].lower() in tenant.by_upn:
            self._error(run, entry, "AttributeValueMustBeUnique: another object in the tenant already has userPrincipalName %s."
                        % values["userPrincipalName"])
            return
        user = User(values, alternate_mobile_phones=alternate)
        user.source = source
        tenant.add_user(user)
        run["created"] += 1

    def _update(self, tenant, user, entry, values, run, bypass):
        user.source = dict(values)
        changed = False
        for name, wanted in values.items():
            if name in user.overrides:
                if not bypass:
                    run["overrides_kept"] += 1
                    continue
                if tenant.options.get("overrides_on_bypass") == "kept":
                    run["overrides_bypassed"] += 1
                else:
                    user.overrides.discard(name)
                    run["overrides_cleared"] += 1
            if _same(name, user.get(name), wanted):
                continue
            if name == "userPrincipalName":
                if not tenant.rename(user, wanted):
                    self._error(run, entry, "AttributeValueMustBeUnique: another object in the tenant already has userPrincipalName %s." % wanted)
                    continue
            else:
                user.set(name, wanted)
            changed = True
        if changed:
            user.props["onPremisesLastSyncDateTime"] = utcnow()
            run["updated"] += 1
        else:
            run["unchanged"] += 1

    @staticmethod
    def _delete_unseen(tenant, run, seen):
        with tenant.lock:
            gone = [user.id for user in tenant.users.values() if user.synced and user.props.get("onPremisesImmutableId") not in seen]
            for user_id in gone:
                tenant.remove_user(user_id)
            run["deleted"] += len(gone)
