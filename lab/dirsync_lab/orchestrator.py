"""Bring the whole lab up and down: PKI, Samba AD DC, the emulator, seeding, lab.json and inventory."""

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
from dirsync_lab.process import LabError, port_owner, read_pid, pid_alive, stop_group, wait_for, write_pid

DEFAULT_COUNT = 300
DEFAULT_SEED = 42
LDAP_PORT, LDAPS_PORT, HTTPS_PORT, CONTROL_PORT = 389, 636, 443, 8450
PORT_REASONS = {
    LDAP_PORT: "LDAP of the lab's Samba domain controller",
    LDAPS_PORT: "LDAPS of the lab's Samba domain controller",
    HTTPS_PORT: "the identity platform and Graph emulator (MSAL's username/password flow always asks port 443)",
    CONTROL_PORT: "the lab's control interface",
    samba.KDC_PORT: "the Kerberos KDC of the lab's Samba domain controller",
    464: "Kerberos password changes (kpasswd) of the lab's Samba domain controller",
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


class Lab:
    """Paths and settings of one lab directory (default: .lab/ at the repository root)."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.pki_dir = os.path.join(self.root, "pki")
        self.samba_dir = os.path.join(self.root, "samba")
        self.cache_dir = os.path.join(self.root, "cache")
        self.lab_json = os.path.join(self.root, "lab.json")
        self.krb5_conf = os.path.join(self.root, "krb5.conf")
        self.inventory = os.path.join(self.root, "inventory.yml")
        self.emulator_json = os.path.join(self.root, "emulator.json")
        self.secrets_json = os.path.join(self.root, "secrets.json")
        self.samba_pid = os.path.join(self.root, "samba.pid")
        self.emulator_pid = os.path.join(self.root, "emulator.pid")
        self.control = ControlClient("http://127.0.0.1:%d" % CONTROL_PORT)

    # -- secrets, generated once per lab directory -------------------------------------------------
    def secrets(self):
        if os.path.exists(self.secrets_json):
            with open(self.secrets_json, encoding="utf-8") as handle:
                return json.load(handle)
        values = {name: "Lab-" + secrets.token_urlsafe(18) for name in
                  ("ad_admin", "client_secret", "readonly_secret", "admin", "mfa_admin", "helpdesk")}
        _write_json(self.secrets_json, values)
        return values

    # -- status -------------------------------------------------------------------------------------
    def running(self):
        return {name: pid for name, pid in (("samba", read_pid(self.samba_pid)), ("emulator", read_pid(self.emulator_pid)))
                if pid and pid_alive(pid)}

    def describe(self):
        with open(self.lab_json, encoding="utf-8") as handle:
            return json.load(handle)

    # -- up -------------------------------------------------------------------------------------------
    def up(self, count=DEFAULT_COUNT, seed=DEFAULT_SEED, log=print):
        started = time.monotonic()
        running = self.running()
        if running and os.path.exists(self.lab_json):
            info = self.describe()
            if info["seed"] == {"count": count, "seed": seed} and len(running) == 2:
                log("The lab is already up (%s)." % ", ".join("%s pid %d" % kv for kv in running.items()))
                return info
            self.down(log=log)
        elif running:
            self.down(log=log)
        for port, reason in PORT_REASONS.items():
            owner = port_owner(port)
            if owner:
                raise LabError("Port %d is taken by %s; the lab needs it for %s. Stop that process (or run "
                               "'make lab-down' if it is an old lab) and try again." % (port, owner, reason))
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        samba.samba_version()
        pki = lab_pki.ensure_pki(self.pki_dir)
        shutil.copyfile(pki["ca_cert"], os.path.join(self.root, "ca.pem"))
        values = self.secrets()
        info = self._description(pki, values, count, seed)

        restored = self._prepare_directory(pki, values, count, seed, log)
        proc = samba.start(self.samba_dir, os.path.join(self.root, "samba.log"))
        write_pid(self.samba_pid, proc.pid)
        samba.wait_ready(proc, info["ldap"])

        write_atomic(self.krb5_conf, samba.krb5_conf(population.REALM))

        _write_json(self.emulator_json, self._emulator_config(pki, values))
        self._start_emulator()
        # The first cycle reads the whole sync scope: about a minute at 100,000 users.
        first = self.control.post("/sync", {"type": "initial", "wait": True}, timeout=3600)
        scenarios = self._seed_tenant(count, seed, info["ldap"])
        # Where each edge case is, so that tests and rehearsals can find them.
        info["edge_cases"] = [{"case": case["case"], "dn": case["dn"]} for case in scenarios["edge_cases"]]
        _write_json(self.lab_json, info)
        self._write_inventory(info)
        log(self._summary(info, first, scenarios, restored, time.monotonic() - started))
        return info

    def _prepare_directory(self, pki, values, count, seed, log):
        """Restore the seeded directory from the cache, or build and cache it. Returns True if restored."""
        archive = os.path.join(self.cache_dir, "samba-%s.tar" % population.seed_key(count, seed))
        if os.path.exists(archive):
            samba.restore(self.samba_dir, archive)
            return True
        base = os.path.join(self.cache_dir, "samba-provisioned.tar")
        if os.path.exists(base):
            samba.restore(self.samba_dir, base)
        else:
            log("Provisioning the Samba domain %s (once)..." % population.REALM)
            samba.provision(self.samba_dir, pki, values["ad_admin"])
            samba.snapshot(self.samba_dir, base)
        log("Seeding %d users (seed %d); cached for next time..." % (count, seed))
        samba.add_ldif(self.samba_dir, population.ldif(population.generate_users(count, seed)))
        samba.snapshot(self.samba_dir, archive)
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

    def _seed_tenant(self, count, seed, ldap):
        state = self.control.get("/state")
        tenant = state["tenants"][0]
        synced = [u for u in tenant["users"] if u.get("onPremisesSyncEnabled")]
        scenarios = population.tenant_scenarios(synced, count, seed)
        self.control.post("/seed/overrides", {"overrides": scenarios["overrides"]})
        self.control.post("/seed/delete", {"ids": scenarios["pending"]})
        self.control.post("/seed/users", {"users": scenarios["orphans"] + scenarios["cloud_only"]})
        self._apply_ad_changes(scenarios["edge_cases"], ldap)
        return scenarios

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

    # -- the domain controller alone (rehearsing a lost DC) -----------------------------------------------
    def stop_dc(self):
        """Kill the domain controller as a crash would (the emulator keeps running)."""
        pid = read_pid(self.samba_pid)
        if pid and pid_alive(pid):
            os.killpg(pid, 9)
            stop_group(pid)  # reaps it when it is our child; returns at once when it is gone

    def start_dc(self):
        """Start the domain controller again on its current directory (nothing is restored or seeded)."""
        proc = samba.start(self.samba_dir, os.path.join(self.root, "samba.log"))
        write_pid(self.samba_pid, proc.pid)
        samba.wait_ready(proc, self.describe()["ldap"])

    # -- down ---------------------------------------------------------------------------------------
    def down(self, log=print):
        stopped = []
        for name, pid_file in (("emulator", self.emulator_pid), ("samba", self.samba_pid)):
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
        return {
            "seed": {"count": count, "seed": seed},
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
            "ldap": {
                "server": "localhost", "ldap_port": LDAP_PORT, "ldaps_port": LDAPS_PORT, "ca_file": pki["ca_cert"],
                "username": "Administrator@" + population.REALM, "password": values["ad_admin"],
                "base_dn": population.BASE_DN, "realm": population.REALM, "netbios": population.NETBIOS,
                "sync_scope": [population.SYNC_SCOPE], "out_of_scope": [population.OUT_OF_SCOPE_OU],
            },
            # Kerberos binds: kinit the user into a ccache of your own with KRB5_CONFIG=krb5_conf, and connect to
            # ad_server=dc_host (it must resolve to 127.0.0.1, e.g. in a private mount namespace: docs/lab.md).
            "kerberos": {
                "realm": population.REALM, "krb5_conf": self.krb5_conf, "kdc": "127.0.0.1:%d" % samba.KDC_PORT,
                "dc_host": "dc1." + population.REALM.lower(), "dc_address": "127.0.0.1",
                "service_principal": "ldap/dc1.%s@%s" % (population.REALM.lower(), population.REALM),
                "principal": "Administrator@" + population.REALM, "password": values["ad_admin"],
            },
            "cloud_sync": {"service_principal_id": _id("cloud-sync-sp"), "job_id": "AD2AADProvisioning." + uuid.UUID(_id("job")).hex},
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
        ldap = info["ldap"]
        return {
            "listen": {"host": "127.0.0.1", "port": HTTPS_PORT},
            "control": {"host": "127.0.0.1", "port": CONTROL_PORT},
            "public_host": "localhost",
            "tls": {"cert": pki["server_cert"], "key": pki["server_key"]},
            "signing_key": pki["signing_key"],
            "graph_audiences": ["https://localhost", "00000003-0000-0000-c000-000000000000", "https://graph.microsoft.com"],
            "token_lifetime": 3600,
            "sync_cycle_seconds": 1.0,
            "options": {name: os.environ[variable] for name, variable in OPTION_ENVIRONMENT.items() if os.environ.get(variable)},
            "tenants": [
                {"id": info["tenant_id"], "display_name": "Contoso Lab", "verified_domains": [population.DOMAIN, info["initial_domain"]],
                 "initial_domain": info["initial_domain"], "directory_sync": True,
                 "ldap": {"url": "ldaps://localhost:%d" % LDAPS_PORT, "ca_file": pki["ca_cert"], "username": ldap["username"],
                          "password": ldap["password"], "base_dn": ldap["base_dn"], "sync_scope": ldap["sync_scope"]},
                 "apps": apps,
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
            "entraid_cloud_sync_service_principal_id": info["cloud_sync"]["service_principal_id"],
            # The lab's tenant is synced by its Cloud Sync job; the Entra Connect stand-in answers like the
            # ADSync cmdlets of an Entra Connect server (set full_sync_engine: entra_connect to use it).
            "full_sync_engine": "cloud_sync",
            "entraid_entra_connect_standin_url": self.control.url,
        }
        inventory = {"all": {"children": {"tenants": {"hosts": {"lab": host}}}}}
        write_atomic(self.inventory, "# Written by 'make lab-up': the lab as an Ansible inventory (one host per tenant). Holds lab secrets.\n"
                     + yaml.safe_dump(inventory, default_flow_style=False, sort_keys=False))

    def _summary(self, info, first, scenarios, restored, seconds):
        return "\n".join([
            "Lab is up in %.1f s (directory %s)." % (seconds, "restored from cache" if restored else "seeded and cached"),
            "  Active Directory  ldaps://localhost:%d  base %s  sync scope %s" % (LDAPS_PORT, info["ldap"]["base_dn"], info["ldap"]["sync_scope"][0]),
            "  Entra ID / Graph  %s  tenant %s" % (info["authority"], info["tenant_id"]),
            "  Users             %d in AD, %d synced by the first cycle; %d overrides, %d pending, %d orphans, %d cloud-only"
            % (info["seed"]["count"], first.get("created", 0) if isinstance(first, dict) else 0, len(scenarios["overrides"]),
               len(scenarios["pending"]), len(scenarios["orphans"]), len(scenarios["cloud_only"])),
            "  CA file           %s" % info["ca_file"],
            "  Described in      %s and %s (lab secrets: keep them local)" % (self.lab_json, self.inventory),
            "  Control           %s  (python -m dirsync_lab --help)" % self.control.url,
        ])


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _write_json(path, data):
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True))
