"""Bring the whole lab up and down: PKI, a Samba AD DC per forest, the emulator, seeding, lab.json and inventory."""

import concurrent.futures
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid

import yaml

from dirsync_lab import pki as lab_pki
from dirsync_lab import population, samba
from dirsync_lab.control_client import ControlClient
from dirsync_lab.files import write_atomic
from dirsync_lab.process import LabError, address_assigned, port_owner, read_pid, pid_alive, stop_group, wait_for, write_pid

DEFAULT_COUNT = 300
DEFAULT_SEED = 42
LDAP_PORT, LDAPS_PORT, HTTPS_PORT, CONTROL_PORT = 389, 636, 443, 8450
# Each forest's DC listens on the forest's address, the emulator on 127.0.0.1.
DC_PORT_REASONS = {
    LDAP_PORT: "LDAP of the lab's Samba domain controller of %s",
    LDAPS_PORT: "LDAPS of the lab's Samba domain controller of %s",
    samba.KDC_PORT: "the Kerberos KDC of the lab's Samba domain controller of %s",
    464: "Kerberos password changes (kpasswd) of the lab's Samba domain controller of %s",
}
EMULATOR_ADDRESS = "127.0.0.1"
EMULATOR_PORT_REASONS = {
    HTTPS_PORT: "the identity platform and Graph emulator (MSAL's username/password flow always asks port 443)",
    CONTROL_PORT: "the lab's control interface",
}
GLOBAL_ADMIN = "Global Administrator"
DELEGATED = ["OnPremDirectorySynchronization.ReadWrite.All", "User.ReadWrite.All", "User-Phone.ReadWrite.All",
             "Synchronization.ReadWrite.All", "Organization.Read.All"]
APPLICATION = ["User.ReadWrite.All", "User-Phone.ReadWrite.All", "Synchronization.ReadWrite.All", "Organization.Read.All",
               "AuditLog.Read.All"]
# Emulator options where Microsoft documents nothing (docs/lab-emulator.md), chosen at lab-up from the environment,
# e.g. LAB_OVERRIDES_ON_BYPASS=kept make lab-up; POST /options on the control port changes them at run time.
OPTION_ENVIRONMENT = {"overrides_on_bypass": "LAB_OVERRIDES_ON_BYPASS", "running_execution": "LAB_RUNNING_EXECUTION",
                      "cloud_sync_bypass": "LAB_CLOUD_SYNC_BYPASS", "provisioning_cycle_id": "LAB_PROVISIONING_CYCLE_ID",
                      "delta_minimal": "LAB_DELTA_MINIMAL", "delta_unselected_changes": "LAB_DELTA_UNSELECTED_CHANGES"}
READ_ONLY_APPLICATION = ["User.Read.All", "Organization.Read.All"]


def _id(name):
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name + ".entraid-dirsync-lab"))


def lab_forests(environ=None):
    """The forests the lab runs: LAB_FORESTS of them (default all: 2; 1 keeps the first forest only)."""
    value = (os.environ if environ is None else environ).get("LAB_FORESTS") or str(len(population.FORESTS))
    if not value.isdigit() or not 1 <= int(value) <= len(population.FORESTS):
        raise LabError("LAB_FORESTS must be a number from 1 to %d, not %r" % (len(population.FORESTS), value))
    return population.FORESTS[:int(value)]


def port_reasons(forests):
    """(address, port, why the lab needs it) of every port the lab listens on."""
    reasons = [(forest.address, port, why % forest.name) for forest in forests for port, why in DC_PORT_REASONS.items()]
    return reasons + [(EMULATOR_ADDRESS, port, why) for port, why in EMULATOR_PORT_REASONS.items()]


def admin_secret(forest):
    """The name, in secrets.json, of the password of a forest's Administrator."""
    return "ad_admin" if forest == population.LAB else "ad_admin_" + forest.netbios.lower()


SECRET_NAMES = ("ad_admin", "client_secret", "readonly_secret", "admin", "mfa_admin", "helpdesk") + tuple(
    admin_secret(forest) for forest in population.FORESTS[1:])


def _ensure_address(address, log):
    """Samba listens only on an address an interface has (interfaces = <address>); 127.0.0.2 is routed to lo, but lo
    has only 127.0.0.1 unless told."""
    if address_assigned(address):
        return
    if os.geteuid() != 0:
        raise LabError("The second forest's domain controller listens on %s, which no interface has. Add it (sudo ip addr add "
                       "%s/8 dev lo), or run one forest only (LAB_FORESTS=1), and try again." % (address, address))
    result = subprocess.run(["ip", "addr", "add", address + "/8", "dev", "lo"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError("Adding %s to lo failed: %s" % (address, result.stderr.strip()))
    log("Added %s to lo for the second forest's domain controller." % address)


class Lab:
    """Paths and settings of one lab directory (default: .lab/ at the repository root)."""

    def __init__(self, root, forests=None):
        self.root = os.path.abspath(root)
        self.forests = tuple(forests) if forests is not None else lab_forests()
        self.pki_dir = os.path.join(self.root, "pki")
        # The first forest's DC, as it has always been named; dc_paths() for any forest.
        self.samba_dir, self.samba_pid, _log = self.dc_paths(population.LAB)
        self.cache_dir = os.path.join(self.root, "cache")
        self.lab_json = os.path.join(self.root, "lab.json")
        self.krb5_conf = os.path.join(self.root, "krb5.conf")
        self.inventory = os.path.join(self.root, "inventory.yml")
        self.emulator_json = os.path.join(self.root, "emulator.json")
        self.secrets_json = os.path.join(self.root, "secrets.json")
        self.emulator_pid = os.path.join(self.root, "emulator.pid")
        self.control = ControlClient("http://127.0.0.1:%d" % CONTROL_PORT)

    def dc_paths(self, forest):
        """(Samba directory, pid file, log) of a forest's DC."""
        return tuple(os.path.join(self.root, forest.slug + suffix) for suffix in ("", ".pid", ".log"))

    # -- secrets, generated once per lab directory (an older lab's file gets the names it lacks) ---------------------
    def secrets(self):
        values = {}
        if os.path.exists(self.secrets_json):
            with open(self.secrets_json, encoding="utf-8") as handle:
                values = json.load(handle)
        missing = [name for name in SECRET_NAMES if name not in values]
        if missing:
            values.update({name: "Lab-" + secrets.token_urlsafe(18) for name in missing})
            _write_json(self.secrets_json, values)
        return values

    # -- status -------------------------------------------------------------------------------------
    def running(self):
        """Name -> pid of the lab's live processes: every forest's DC (those of any LAB_FORESTS) and the emulator."""
        pids = [(forest.slug, read_pid(self.dc_paths(forest)[1])) for forest in population.FORESTS]
        return {name: pid for name, pid in pids + [("emulator", read_pid(self.emulator_pid))] if pid and pid_alive(pid)}

    def describe(self):
        with open(self.lab_json, encoding="utf-8") as handle:
            return json.load(handle)

    # -- up -------------------------------------------------------------------------------------------
    def up(self, count=DEFAULT_COUNT, seed=DEFAULT_SEED, log=print):
        started = time.monotonic()
        model = samba.process_model()  # checked before anything stops or starts
        running = self.running()
        if running and os.path.exists(self.lab_json):
            info = self.describe()
            if (info["seed"] == {"count": count, "seed": seed} and info.get("samba_process_model") == model
                    and set(running) == {"emulator"} | {f.slug for f in self.forests}):
                log("The lab is already up (%s)." % ", ".join("%s pid %d" % kv for kv in running.items()))
                return info
            self.down(log=log)
        elif running:
            self.down(log=log)
        for address, port, reason in port_reasons(self.forests):
            owner = port_owner(port, address)
            if owner:
                raise LabError("Port %d is taken by %s on %s; the lab needs it for %s. Stop that process (or run "
                               "'make lab-down' if it is an old lab) and try again." % (port, owner, address, reason))
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        samba.samba_version()
        for forest in self.forests[1:]:
            _ensure_address(forest.address, log)
        pki = lab_pki.ensure_pki(self.pki_dir)
        shutil.copyfile(pki["ca_cert"], os.path.join(self.root, "ca.pem"))
        values = self.secrets()
        info = self._description(pki, values, count, seed)

        # The DCs are independent until the first cycle: provision, seed and start them side by side.
        with concurrent.futures.ThreadPoolExecutor(len(self.forests)) as pool:
            restored = all(list(pool.map(lambda forest: self._start_forest(forest, pki, values, count, seed, info, log), self.forests)))

        write_atomic(self.krb5_conf, samba.krb5_conf(self.forests))

        _write_json(self.emulator_json, self._emulator_config(pki, values))
        self._start_emulator()
        # The first cycle reads every forest's whole sync scope: about a minute at 100,000 users.
        first = self.control.post("/sync", {"type": "initial", "wait": True}, timeout=3600)
        scenarios = self._seed_tenant(count, seed, info)
        # Where each edge case is, so that tests and rehearsals can find them.
        info["edge_cases"] = [{"case": case["case"], "dn": case["dn"], "forest": case["forest"]} for case in scenarios["edge_cases"]]
        _write_json(self.lab_json, info)
        self._write_inventory(info)
        log(self._summary(info, first, scenarios, restored, time.monotonic() - started))
        return info

    def _start_forest(self, forest, pki, values, count, seed, info, log):
        """Restore or build a forest's directory and start its DC; True if the directory was restored from the cache."""
        directory, pid_file, log_path = self.dc_paths(forest)
        restored = self._prepare_directory(forest, pki, values[admin_secret(forest)], count, seed, log)
        proc = samba.start(directory, log_path, forest)
        write_pid(pid_file, proc.pid)
        samba.wait_ready(proc, _forest_info(info, forest)["ldap"], log_path=log_path)
        return restored

    def _prepare_directory(self, forest, pki, admin_password, count, seed, log):
        """Restore a forest's seeded directory from the cache, or build and cache it. Returns True if restored."""
        directory = self.dc_paths(forest)[0]
        archive = os.path.join(self.cache_dir, "%s-%s.tar" % (forest.slug, population.seed_key(count, seed, forest)))
        if os.path.exists(archive):
            samba.restore(directory, archive)
            return True
        base = os.path.join(self.cache_dir, "%s-provisioned.tar" % forest.slug)
        if os.path.exists(base):
            samba.restore(directory, base)
        else:
            log("Provisioning the Samba domain %s (once)..." % forest.realm)
            samba.provision(directory, pki, admin_password, forest)
            samba.snapshot(directory, base)
        users = population.generate_users(count, seed, forest)
        log("Seeding %d users of %s (seed %d); cached for next time..." % (len(users), forest.name, seed))
        samba.add_ldif(directory, population.ldif(users, forest))
        samba.snapshot(directory, archive)
        return False

    def _start_emulator(self):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(self.root, "emulator.log"), "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "dirsync_lab.emulator", "--config", self.emulator_json],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        write_pid(self.emulator_pid, proc.pid)

        def healthy():
            if proc.poll() is not None:
                raise LabError("The emulator exited with code %s; see %s/emulator.log" % (proc.returncode, self.root))
            try:
                return bool(self.control.get("/health"))
            except LabError:
                return False
        wait_for(healthy, 30, "The emulator did not answer on its control port within 30 s; see .lab/emulator.log")

    def _seed_tenant(self, count, seed, info):
        """Each forest's tenant scenarios (the first forest's before the others: they use its untouched users)."""
        state = self.control.get("/state")
        tenant = state["tenants"][0]
        synced = [u for u in tenant["users"] if u.get("onPremisesSyncEnabled")]
        merged = {"overrides": [], "pending": [], "orphans": [], "cloud_only": [], "edge_cases": []}
        foreign = None
        for forest in self.forests:
            suffix = "," + forest.base_dn.lower()
            mine = [u for u in synced if (u.get("onPremisesDistinguishedName") or "").lower().endswith(suffix)]
            scenarios = population.tenant_scenarios(mine, population.size(count, forest), seed, forest, foreign)
            foreign = foreign if foreign is not None else scenarios["untouched"]
            for name, values in merged.items():
                values.extend(scenarios[name])
            self._apply_ad_changes(scenarios["edge_cases"], _forest_info(info, forest)["ldap"])
        self.control.post("/seed/overrides", {"overrides": merged["overrides"]})
        self.control.post("/seed/delete", {"ids": merged["pending"]})
        self.control.post("/seed/users", {"users": merged["orphans"] + merged["cloud_only"]})
        return merged

    @staticmethod
    def _apply_ad_changes(edge_cases, ldap):
        """Write the population's AD edge cases over LDAPS (after the first cycle: the tenant still has the old values)."""
        if not edge_cases:
            return
        import ldap3  # pylint: disable=import-outside-toplevel
        connection = samba.connect(ldap, raise_exceptions=True)
        try:
            for case in edge_cases:
                values = {name: (ldap3.MODIFY_REPLACE, value if isinstance(value, list) else [value])
                          for name, value in case["changes"].items()}
                connection.modify(case["dn"], values)
        finally:
            connection.unbind()

    # -- a domain controller alone (rehearsing a lost DC) -----------------------------------------------
    def stop_dc(self, forest=population.LAB):
        """Kill a forest's domain controller as a crash would (the emulator and the other DCs keep running)."""
        pid = read_pid(self.dc_paths(forest)[1])
        if pid and pid_alive(pid):
            os.killpg(pid, 9)
            stop_group(pid)  # reaps it when it is our child; returns at once when it is gone

    def start_dc(self, forest=population.LAB):
        """Start a forest's domain controller again on its current directory (nothing is restored or seeded)."""
        directory, pid_file, log_path = self.dc_paths(forest)
        proc = samba.start(directory, log_path, forest)
        write_pid(pid_file, proc.pid)
        samba.wait_ready(proc, _forest_info(self.describe(), forest)["ldap"], log_path=log_path)

    # -- down ---------------------------------------------------------------------------------------
    def down(self, log=print):
        """Stop the emulator and every forest's DC that runs (whatever LAB_FORESTS says now)."""
        stopped = []
        dcs = [(forest.slug, self.dc_paths(forest)[1]) for forest in population.FORESTS]
        for name, pid_file in [("emulator", self.emulator_pid)] + dcs:
            pid = read_pid(pid_file)
            if pid and pid_alive(pid):
                stop_group(pid)
                stopped.append(name)
            if os.path.exists(pid_file):
                os.unlink(pid_file)
        if os.path.exists(self.lab_json):
            os.unlink(self.lab_json)
        log("Lab stopped (%s)." % (", ".join(stopped) or "nothing was running"))

    # -- descriptions ---------------------------------------------------------------------------------
    def _description(self, pki, values, count, seed):
        tenant_id = _id("tenant")
        forests = [self._forest_description(forest, pki, values[admin_secret(forest)]) for forest in self.forests]
        return {
            "seed": {"count": count, "seed": seed},
            "samba_process_model": samba.process_model(),
            "root": self.root,
            "ca_file": os.path.join(self.root, "ca.pem"),
            "tenant_id": tenant_id,
            "authority_host": "https://localhost",
            "authority": "https://localhost/" + tenant_id,
            "graph_endpoint": "https://localhost",
            "graph_scope": "https://localhost/.default",
            "initial_domain": "lab.onmicrosoft.com",
            "control_url": self.control.url,
            "apps": {
                "automation": {"client_id": _id("automation-app"), "client_secret": values["client_secret"],
                               "certificate_path": pki["app_bundle"],
                               "thumbprint": lab_pki.thumbprint(_read(pki["app_cert"])),
                               "application_permissions": APPLICATION},
                "readonly": {"client_id": _id("readonly-app"), "client_secret": values["readonly_secret"],
                             "application_permissions": READ_ONLY_APPLICATION},
                "interactive": {"client_id": _id("interactive-app"), "public_client": True, "delegated_permissions": DELEGATED},
            },
            "users": {
                "admin": {"username": "admin@lab.test", "password": values["admin"], "roles": [GLOBAL_ADMIN], "mfa_required": False},
                "mfa_admin": {"username": "mfa-admin@lab.test", "password": values["mfa_admin"], "roles": [GLOBAL_ADMIN], "mfa_required": True},
                "helpdesk": {"username": "helpdesk@lab.test", "password": values["helpdesk"], "roles": ["Helpdesk Administrator"],
                             "mfa_required": False},
            },
            "tenants": {
                "nosync": {"tenant_id": _id("nosync-tenant"), "authority": "https://localhost/" + _id("nosync-tenant"),
                           "admin": {"username": "admin@nosync.test", "password": values["admin"]}},
            },
            # The first forest's, as in a one-forest lab; every forest's (that one first) under "forests".
            "ldap": forests[0]["ldap"],
            "kerberos": forests[0]["kerberos"],
            "forests": forests,
            "cloud_sync": {"service_principal_id": _id("cloud-sync-sp"), "job_id": "AD2AADProvisioning." + uuid.UUID(_id("job")).hex},
        }

    def _forest_description(self, forest, pki, password):
        """lab.json's description of one forest: {"name", "ldap", "kerberos"}."""
        # The first forest's DC is reached as localhost, as it always was; the others by their address.
        server = "localhost" if forest == population.LAB else forest.address
        return {
            "name": forest.name,
            "ldap": {
                "server": server, "ldap_port": LDAP_PORT, "ldaps_port": LDAPS_PORT, "ca_file": pki["ca_cert"],
                "username": "Administrator@" + forest.realm, "password": password,
                "base_dn": forest.base_dn, "realm": forest.realm, "netbios": forest.netbios,
                "sync_scope": [forest.sync_scope], "out_of_scope": [forest.out_of_scope_ou],
            },
            # Kerberos binds: kinit the user into a ccache of your own with KRB5_CONFIG=krb5_conf, and connect to
            # ad_server=dc_host (it must resolve to dc_address, e.g. in a private mount namespace: docs/lab.md).
            "kerberos": {
                "realm": forest.realm, "krb5_conf": self.krb5_conf, "kdc": "%s:%d" % (forest.address, samba.KDC_PORT),
                "dc_host": forest.host, "dc_address": forest.address,
                "service_principal": "ldap/%s@%s" % (forest.host, forest.realm),
                "principal": "Administrator@" + forest.realm, "password": password,
            },
        }

    def _emulator_config(self, pki, values):
        info = self._description(pki, values, 0, 0)
        apps = [
            {"client_id": info["apps"]["automation"]["client_id"], "display_name": "entraid.dirsync automation",
             "client_secret": values["client_secret"], "certificate_pem": _read(pki["app_cert"]),
             "application_permissions": APPLICATION + ["OnPremDirectorySynchronization.ReadWrite.All"], "delegated_permissions": []},
            {"client_id": info["apps"]["readonly"]["client_id"], "display_name": "entraid.dirsync read-only",
             "client_secret": values["readonly_secret"], "application_permissions": READ_ONLY_APPLICATION, "delegated_permissions": []},
            {"client_id": info["apps"]["interactive"]["client_id"], "display_name": "entraid.dirsync interactive",
             "public_client": True, "application_permissions": [], "delegated_permissions": DELEGATED},
        ]

        def account(upn, password, roles, mfa=False):
            return {"userPrincipalName": upn, "displayName": upn.split("@")[0], "password": password, "roles": roles, "mfa_required": mfa}
        # Entra Connect's "multiple forests, single tenant": one source per forest, each with its own bind account.
        sources = [{"name": forest["name"], "url": "ldaps://%s:%d" % (forest["ldap"]["server"], LDAPS_PORT),
                    "ca_file": pki["ca_cert"], "username": forest["ldap"]["username"], "password": forest["ldap"]["password"],
                    "base_dn": forest["ldap"]["base_dn"], "sync_scope": forest["ldap"]["sync_scope"]} for forest in info["forests"]]
        domains = [population.DOMAIN, info["initial_domain"]] + [forest.domain for forest in self.forests[1:]]
        return {
            "listen": {"host": EMULATOR_ADDRESS, "port": HTTPS_PORT},
            "control": {"host": EMULATOR_ADDRESS, "port": CONTROL_PORT},
            "public_host": "localhost",
            "tls": {"cert": pki["server_cert"], "key": pki["server_key"]},
            "signing_key": pki["signing_key"],
            "graph_audiences": ["https://localhost", "00000003-0000-0000-c000-000000000000", "https://graph.microsoft.com"],
            "token_lifetime": 3600,
            "sync_cycle_seconds": 1.0,
            "options": {name: os.environ[variable] for name, variable in OPTION_ENVIRONMENT.items() if os.environ.get(variable)},
            "tenants": [
                {"id": info["tenant_id"], "display_name": "Contoso Lab", "verified_domains": domains,
                 "initial_domain": info["initial_domain"], "directory_sync": True, "ldap_sources": sources, "apps": apps,
                 "users": [account("admin@lab.test", values["admin"], [GLOBAL_ADMIN]),
                           account("mfa-admin@lab.test", values["mfa_admin"], [GLOBAL_ADMIN], True),
                           account("helpdesk@lab.test", values["helpdesk"], ["Helpdesk Administrator"])],
                 "cloud_sync": info["cloud_sync"]},
                {"id": info["tenants"]["nosync"]["tenant_id"], "display_name": "Cloud-only Lab", "verified_domains": ["nosync.test"],
                 "initial_domain": "nosync.onmicrosoft.com", "directory_sync": False, "apps": apps,
                 "users": [account("admin@nosync.test", values["admin"], [GLOBAL_ADMIN])]},
            ],
        }

    def _write_inventory(self, info):
        """One host per tenant; connection settings as dicts that plays hand to module_defaults."""
        ldap = info["ldap"]
        endpoints = {"tenant_id": info["tenant_id"], "cloud": "custom", "authority_host": info["authority_host"],
                     "graph_endpoint": info["graph_endpoint"], "ca_bundle": info["ca_file"]}
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            # Application sign-in: users, Cloud Sync jobs.
            "entraid_graph": dict(endpoints, client_id=info["apps"]["automation"]["client_id"],
                                  client_secret=info["apps"]["automation"]["client_secret"]),
            # Delegated Global Administrator: the directory synchronization features.
            "entraid_graph_admin": dict(endpoints, client_id=info["apps"]["interactive"]["client_id"],
                                        username=info["users"]["admin"]["username"], password=info["users"]["admin"]["password"],
                                        token_cache_path=os.path.join(info["root"], "token-cache.json")),
            "entraid_ad": {"ad_server": ldap["server"], "ad_port": ldap["ldaps_port"], "ad_ca_cert": ldap["ca_file"],
                           "ad_username": ldap["username"], "ad_password": ldap["password"]},
            "entraid_ad_search_bases": ldap["sync_scope"],
            "entraid_ad_forests": len(info["forests"]),
            "entraid_cloud_sync_service_principal_id": info["cloud_sync"]["service_principal_id"],
            # The lab's tenant is synced by its Cloud Sync job; the Entra Connect stand-in answers like the
            # ADSync cmdlets of an Entra Connect server (set full_sync_engine: entra_connect to use it).
            "full_sync_engine": "cloud_sync",
            "entraid_entra_connect_standin_url": self.control.url,
        }
        if len(info["forests"]) > 1:
            # One source per forest: the first one inherits the connection of entraid_ad's top-level keys.
            first, others = info["forests"][0], info["forests"][1:]
            host["entraid_ad"]["ad_sources"] = [{"name": first["name"], "search_bases": list(first["ldap"]["sync_scope"])}] + [
                {"name": forest["name"], "ad_server": forest["ldap"]["server"], "ad_port": forest["ldap"]["ldaps_port"],
                 "ad_ca_cert": forest["ldap"]["ca_file"], "ad_username": forest["ldap"]["username"],
                 "ad_password": forest["ldap"]["password"], "search_bases": forest["ldap"]["sync_scope"]} for forest in others]
        inventory = {"all": {"children": {"tenants": {"hosts": {"lab": host}}}}}
        write_atomic(self.inventory, "# Written by 'make lab-up': the lab as an Ansible inventory (one host per tenant). Holds lab secrets.\n"
                     + yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False))

    def _summary(self, info, first, scenarios, restored, seconds):
        forests = [("  Active Directory" if index == 0 else "").ljust(20) + "%s  ldaps://%s:%d  base %s  sync scope %s"
                   % (forest["name"], forest["ldap"]["server"], LDAPS_PORT, forest["ldap"]["base_dn"], forest["ldap"]["sync_scope"][0])
                   for index, forest in enumerate(info["forests"])]
        in_ad = ", ".join("%d in %s" % (population.size(info["seed"]["count"], forest), forest.name) for forest in self.forests)
        return "\n".join([
            "Lab is up in %.1f s (%s %s)." % (seconds, "directory" if len(self.forests) == 1 else "directories",
                                              "restored from cache" if restored else "seeded and cached"),
        ] + forests + [
            "  Entra ID / Graph  %s  tenant %s" % (info["authority"], info["tenant_id"]),
            "  Users             %s, %d synced by the first cycle; %d overrides, %d pending, %d orphans, %d cloud-only"
            % (in_ad, first.get("created", 0) if isinstance(first, dict) else 0, len(scenarios["overrides"]),
               len(scenarios["pending"]), len(scenarios["orphans"]), len(scenarios["cloud_only"])),
            "  CA file           %s" % info["ca_file"],
            "  Described in      %s and %s (lab secrets: keep them local)" % (self.lab_json, self.inventory),
            "  Control           %s  (python -m dirsync_lab --help)" % self.control.url,
        ])


def _forest_info(info, forest):
    """A forest's entry of lab.json's "forests"."""
    return next(entry for entry in info["forests"] if entry["name"] == forest.name)


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _write_json(path, data):
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True))
