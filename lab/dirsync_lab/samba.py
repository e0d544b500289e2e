"""The lab's Active Directory: real Samba AD DCs from Debian's packages, one per forest (.lab/samba, .lab/samba-fabrikam).

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
# LDAP, and the KDC for Kerberos binds (port 88 and kpasswd's 464 on the forest's address); nothing else of a DC is needed, and
# fewer ports can clash.
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


def provision(target, pki, admin_password, forest=population.LAB):
    """Provision ``forest``'s domain into ``target`` (never the system's /etc/samba), listening on its address only."""
    if os.path.exists(target):
        shutil.rmtree(target)
    cmd = [
        "samba-tool", "domain", "provision",
        "--realm=" + forest.realm, "--domain=" + forest.netbios,
        "--server-role=dc", "--dns-backend=NONE", "--host-name=" + forest.dc_name,
        "--targetdir=" + target, "--adminpass=" + admin_password,
        "--option=interfaces=" + forest.address, "--option=bind interfaces only=yes",
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
        tar.add(target, arcname=os.path.basename(target))
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
    # smb.conf names its directories by absolute path: a snapshot of another lab directory would run on that lab's files.
    private = re.search(r"(?m)^\tprivate dir = (.*)$", text)
    if private and os.path.realpath(private.group(1)) != os.path.realpath(os.path.join(target, "private")):
        raise LabError("%s was provisioned in another directory (private dir = %s): delete it and the cache's snapshots "
                       "copied with it, and start the lab again" % (target, private.group(1)))
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


def ldap_service_principals(forest=population.LAB):
    """The LDAP service principal names a Windows DC registers for itself (MS-ADTS 6.3.3.1 ldap/<FQDN>, ldap/<NetBIOS>,
    ldap/<FQDN>/<domain>...). Samba adds them from its DNS update service, which the lab does not run."""
    host, name = forest.host, forest.dc_name.upper()
    return ["ldap/%s" % host, "ldap/%s" % name, "ldap/%s/%s" % (host, forest.domain), "ldap/%s/%s" % (host, forest.netbios),
            "ldap/%s/%s" % (name, forest.netbios)]


def register_spns(target, forest=population.LAB):
    """Give the DC's computer account its LDAP service principal names, offline (the DC must be stopped); idempotent."""
    sam = os.path.join(target, "private", "sam.ldb")
    found = subprocess.run(["ldbsearch", "-H", sam, "(sAMAccountName=%s$)" % forest.dc_name.upper(), "servicePrincipalName"],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise LabError("Reading the DC's service principal names failed:\n%s" % found.stderr[-2000:])
    dn = re.search(r"(?m)^dn: (.*)$", found.stdout)
    have = {value.lower() for value in re.findall(r"(?m)^servicePrincipalName: (.*)$", found.stdout)}
    missing = [name for name in ldap_service_principals(forest) if name.lower() not in have]
    if not dn or not missing:
        return
    ldif = "dn: %s\nchangetype: modify\nadd: servicePrincipalName\n%s-\n" % (
        dn.group(1), "".join("servicePrincipalName: %s\n" % name for name in missing))
    result = subprocess.run(["ldbmodify", "-H", sam], input=ldif, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError("Adding the DC's LDAP service principal names failed:\n%s" % (result.stderr or result.stdout)[-2000:])


# Samba's process models (samba -M). A Windows DC serves concurrent LDAP searches in parallel, on a pool of threads
# (MaxPoolThreads, 4 per processor: docs/lab-emulator.md); "standard" comes closest (a process per connection, so two
# connections' searches run on two cores). "single" serves every connection in one process, one request at a time;
# "prefork" hands connections to a fixed set of workers, and nearly simultaneous connections often land in one worker.
PROCESS_MODELS = ("standard", "single", "prefork")
DEFAULT_PROCESS_MODEL = "standard"


def process_model(environ=None):
    """The Samba process model LAB_SAMBA_MODEL names (default standard)."""
    value = (os.environ if environ is None else environ).get("LAB_SAMBA_MODEL") or DEFAULT_PROCESS_MODEL
    if value not in PROCESS_MODELS:
        raise LabError("LAB_SAMBA_MODEL must be one of %s, not %r" % (", ".join(PROCESS_MODELS), value))
    return value


def start(target, log_path, forest=population.LAB, model=None):
    """Start ``forest``'s samba in the foreground of its own session, in the process ``model`` (default: LAB_SAMBA_MODEL's);
    return the Popen."""
    model = model or process_model()
    confine(target)
    register_spns(target, forest)
    conf = os.path.join(target, "etc", "smb.conf")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["samba", "-s", conf, "-i", "-M", model], stdout=log, stderr=subprocess.STDOUT,
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


def wait_ready(proc, ldap, timeout=60, log_path=".lab/samba.log"):
    """Wait until an LDAPS simple bind works (Samba listens before it can serve)."""
    import ldap3  # pylint: disable=import-outside-toplevel

    def bound():
        if proc.poll() is not None:
            raise LabError("samba exited with code %s; see %s" % (proc.returncode, log_path))
        try:
            connect(ldap).unbind()
            return True
        except ldap3.core.exceptions.LDAPException:
            return False
    started = time.monotonic()
    wait_for(bound, timeout, "Samba (%s) did not accept an LDAPS bind within %ss; see %s" % (ldap["server"], timeout, log_path))
    return time.monotonic() - started


def krb5_conf(forests):
    """A krb5.conf for the lab's realms, the first forest's the default (KRB5_CONFIG points at it; the machine's
    /etc/krb5.conf is left alone).

    Each KDC is given by address and names are not canonicalized through DNS: the lab has no DNS, and the service
    principal of a DC (ldap/dc1.lab.test) must come from the name the client was given, not from a reverse lookup.
    """
    lines = [
        "# Written by 'make lab-up': the lab's Kerberos realms. Use it with KRB5_CONFIG=<this file>.",
        "[libdefaults]",
        "\tdefault_realm = %s" % forests[0].realm,
        "\tdns_lookup_kdc = false",
        "\tdns_lookup_realm = false",
        "\tdns_canonicalize_hostname = false",
        "\trdns = false",
        "",
        "[realms]",
    ]
    for forest in forests:
        lines += ["\t%s = {" % forest.realm, "\t\tkdc = %s:%d" % (forest.address, KDC_PORT), "\t\tadmin_server = %s" % forest.address, "\t}"]
    lines += ["", "[domain_realm]"]
    for forest in forests:
        lines += ["\t.%s = %s" % (forest.domain, forest.realm), "\t%s = %s" % (forest.domain, forest.realm)]
    return "\n".join(lines + [""])
