"""The lab's Active Directory: a real Samba AD DC from Debian's packages, under .lab/samba.

Provisioned once, seeded offline with ``ldbadd`` in batch mode (faster than LDAP adds), and cached
as a snapshot keyed by the seed description so a large population is built only once.
"""

import os
import re
import shutil
import subprocess
import tarfile
import time

from dirsync_lab import population
from dirsync_lab.process import LabError, wait_for

SAMBA_PACKAGES = ("samba", "samba-ad-dc", "ldb-tools")
# LDAP, and the KDC for Kerberos binds (port 88 and kpasswd's 464 on 127.0.0.1); nothing else of a DC is needed, and
# fewer ports can clash. In the single process model (start()) the KDC runs inside the one samba process.
# Samba's default (yes) refuses a SASL bind without signing or sealing even over TLS, and refuses signing over TLS:
# a Kerberos bind over LDAPS then cannot work at all. Windows with "LDAP server signing requirements: require signing"
# accepts it over TLS, which is what allow_sasl_over_tls does (simple binds still need TLS). docs/ad-connection.md.
SERVER_OPTIONS = {"server services": "ldap, kdc", "ldap server require strong auth": "allow_sasl_over_tls"}
KDC_PORT = 88


def samba_version():
    try:
        return subprocess.run(["samba", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LabError("Samba is not installed (%s). Install Debian's packages: apt-get install %s"
                       % (exc, " ".join(SAMBA_PACKAGES))) from exc


def provision(target, pki, admin_password):
    """Provision a new domain into ``target`` (never the system's /etc/samba)."""
    if os.path.exists(target):
        shutil.rmtree(target)
    cmd = [
        "samba-tool", "domain", "provision",
        "--realm=" + population.REALM, "--domain=" + population.NETBIOS,
        "--server-role=dc", "--dns-backend=NONE", "--host-name=dc1",
        "--targetdir=" + target, "--adminpass=" + admin_password,
        "--option=interfaces=127.0.0.1", "--option=bind interfaces only=yes",
        "--option=log file = " + os.path.join(target, "log.%m"),
        "--option=tls certfile = " + pki["server_cert"],
        "--option=tls keyfile = " + pki["server_key"],
        "--option=tls cafile = " + pki["ca_cert"],
    ] + ["--option=%s = %s" % item for item in list(SERVER_OPTIONS.items()) + list(confined_dirs(target).items())]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError("samba-tool domain provision failed:\n%s" % result.stderr[-2000:])


def add_ldif(target, text):
    """Add LDIF offline, straight into sam.ldb through Samba's own modules (the DC must be stopped).

    ldbadd adds everything in one transaction. By default ldb wraps each add in a nested
    transaction whose rollback copy of every index record it touches is O(users): the index
    records of values all users share (objectClass=user, objectCategory, the OU's one-level
    index...) make seeding quadratic (10,000 users: 5 minutes). ``batch_mode`` drops the nested
    transactions (a failed add fails the whole run, which seeding does anyway), and a larger
    in-memory index cache keeps its hash chains short (about ten index keys per entry).
    With both, 100,000 users take about 4 minutes; the run needs about 25 KB of memory per user.
    """
    path = os.path.join(target, "seed.ldif")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    entries = sum(1 for line in text.splitlines() if line.startswith("dn: "))
    cmd = ["ldbadd", "-H", os.path.join(target, "private", "sam.ldb"), "-o", "batch_mode",
           "-o", "transaction_index_cache_size=%d" % max(10007, 10 * entries), path]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    os.unlink(path)
    if result.returncode != 0:
        raise LabError("Seeding the directory failed:\n%s" % (result.stderr or result.stdout)[-2000:])


def snapshot(target, archive):
    os.makedirs(os.path.dirname(archive), exist_ok=True)
    tmp = archive + ".tmp"
    with tarfile.open(tmp, "w") as tar:
        tar.add(target, arcname="samba")
    os.replace(tmp, archive)


def restore(target, archive):
    if os.path.exists(target):
        shutil.rmtree(target)
    with tarfile.open(archive) as tar:
        tar.extractall(os.path.dirname(target), filter="tar")


def confined_dirs(target):
    """Directories Samba would otherwise share with every other Samba on the machine (/run/samba): the pid file and the
    sockets stay in the lab, so labs of two clones (in two network namespaces) and a distribution Samba coexist."""
    run = os.path.join(target, "run")
    return {"pid directory": run, "ncalrpc dir": os.path.join(run, "ncalrpc"), "winbindd socket directory": os.path.join(run, "winbindd")}


def confine(target):
    """Make sure ``target``'s smb.conf keeps its run-time files under ``target`` and has SERVER_OPTIONS (snapshots of
    older labs lack them)."""
    conf = os.path.join(target, "etc", "smb.conf")
    with open(conf, encoding="utf-8") as handle:
        original = text = handle.read()
    for name in SERVER_OPTIONS:
        text = re.sub(r"(?m)^\t%s = .*\n" % re.escape(name), "", text)
    wanted = dict(SERVER_OPTIONS, **{name: path for name, path in confined_dirs(target).items() if "\t%s = " % name not in text})
    lines = "".join("\t%s = %s\n" % item for item in wanted.items())
    text = text.replace("[global]\n", "[global]\n" + lines, 1)
    if text != original:
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(text)
    for path in confined_dirs(target).values():
        os.makedirs(path, mode=0o755, exist_ok=True)


def ldap_service_principals():
    """The LDAP service principal names a Windows DC registers for itself (MS-ADTS 6.3.3.1 ldap/<FQDN>, ldap/<NetBIOS>,
    ldap/<FQDN>/<domain>...). Samba adds them from its DNS update service, which the lab does not run."""
    host = "dc1." + population.DOMAIN
    return ["ldap/%s" % host, "ldap/DC1", "ldap/%s/%s" % (host, population.DOMAIN), "ldap/%s/%s" % (host, population.NETBIOS),
            "ldap/DC1/%s" % population.NETBIOS]


def register_spns(target):
    """Give the DC's computer account its LDAP service principal names, offline (the DC must be stopped); idempotent."""
    sam = os.path.join(target, "private", "sam.ldb")
    found = subprocess.run(["ldbsearch", "-H", sam, "(sAMAccountName=DC1$)", "servicePrincipalName"],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise LabError("Reading the DC's service principal names failed:\n%s" % found.stderr[-2000:])
    dn = re.search(r"(?m)^dn: (.*)$", found.stdout)
    have = {value.lower() for value in re.findall(r"(?m)^servicePrincipalName: (.*)$", found.stdout)}
    missing = [name for name in ldap_service_principals() if name.lower() not in have]
    if not dn or not missing:
        return
    ldif = "dn: %s\nchangetype: modify\nadd: servicePrincipalName\n%s-\n" % (
        dn.group(1), "".join("servicePrincipalName: %s\n" % name for name in missing))
    result = subprocess.run(["ldbmodify", "-H", sam], input=ldif, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError("Adding the DC's LDAP service principal names failed:\n%s" % (result.stderr or result.stdout)[-2000:])


def start(target, log_path):
    """Start samba in the foreground of its own session; return the Popen."""
    confine(target)
    register_spns(target)
    conf = os.path.join(target, "etc", "smb.conf")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["samba", "-s", conf, "-i", "-M", "single"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return proc


def connect(ldap, **options):
    """An ldap3 connection bound as the lab's administrator over LDAPS (``ldap``: lab.json's ``ldap``); ``options``
    go to ldap3.Connection."""
    import ldap3  # pylint: disable=import-outside-toplevel
    import ssl  # pylint: disable=import-outside-toplevel
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ldap["ca_file"])
    server = ldap3.Server(ldap["server"], port=ldap["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE, connect_timeout=2)
    return ldap3.Connection(server, ldap["username"], ldap["password"], auto_bind=True, **options)


def wait_ready(proc, ldap, timeout=60):
    """Wait until an LDAPS simple bind works (Samba listens before it can serve)."""
    import ldap3  # pylint: disable=import-outside-toplevel

    def bound():
        if proc.poll() is not None:
            raise LabError("samba exited with code %s; see .lab/samba.log" % proc.returncode)
        try:
            connect(ldap).unbind()
            return True
        except ldap3.core.exceptions.LDAPException:
            return False
    started = time.monotonic()
    wait_for(bound, timeout, "Samba did not accept an LDAPS bind within %ss; see .lab/samba.log" % timeout)
    return time.monotonic() - started


def krb5_conf(realm, kdc_host="127.0.0.1"):
    """A krb5.conf for the lab's realm (KRB5_CONFIG points at it; the machine's /etc/krb5.conf is left alone).

    The KDC is given by address and names are not canonicalized through DNS: the lab has no DNS, and the service
    principal of the DC (ldap/dc1.lab.test) must come from the name the client was given, not from a reverse lookup.
    """
    domain = realm.lower()
    return "\n".join([
        "# Written by 'make lab-up': the lab's Kerberos realm. Use it with KRB5_CONFIG=<this file>.",
        "[libdefaults]",
        "\tdefault_realm = %s" % realm,
        "\tdns_lookup_kdc = false",
        "\tdns_lookup_realm = false",
        "\tdns_canonicalize_hostname = false",
        "\trdns = false",
        "",
        "[realms]",
        "\t%s = {" % realm,
        "\t\tkdc = %s:%d" % (kdc_host, KDC_PORT),
        "\t\tadmin_server = %s" % kdc_host,
        "\t}",
        "",
        "[domain_realm]",
        "\t.%s = %s" % (domain, realm),
        "\t%s = %s" % (domain, realm),
        "",
    ])
