"""Kerberos (ad_auth_protocol: kerberos) against the lab's Samba DC, which is also the KDC of LAB.TEST.

The test gets a ticket with kinit into a ccache of its own (KRB5CCNAME, KRB5_CONFIG = the lab's krb5.conf), then a real
module binds with SASL GSSAPI over LDAPS. The ticket is for ldap/dc1.lab.test, the principal the DC registers, so the
module connects to dc1.lab.test: that name resolves to 127.0.0.1 only inside a private mount namespace (``unshare
--mount`` with a bind-mounted hosts file), as in test_default_cloud.py; the machine's /etc/hosts is not changed.
"""

import json
import os
import shutil
import ssl
import subprocess

import ldap3
import pytest

from lab_play import run_with_hosts


def kinit(lab, ccache):
    """A ticket for the lab's Administrator in ``ccache``; -> the environment that uses it."""
    if shutil.which("kinit") is None:
        pytest.fail("kinit is needed (Debian package krb5-user; make system-packages installs it)")
    kerberos = lab["kerberos"]
    env = dict(os.environ, KRB5_CONFIG=kerberos["krb5_conf"], KRB5CCNAME="FILE:%s" % ccache)
    proc = subprocess.run(["kinit", kerberos["principal"]], input=kerberos["password"] + "\n", capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run(["klist"], capture_output=True, text=True, env=env, check=False)
    assert "krbtgt/LAB.TEST@LAB.TEST" in listed.stdout, listed.stdout + listed.stderr
    return {"KRB5_CONFIG": env["KRB5_CONFIG"], "KRB5CCNAME": env["KRB5CCNAME"]}


def run_with_dc_name(lab, tmp_path, play, env):
    """ansible-playbook in a mount namespace where the DC's host name is 127.0.0.1; -> (rc, output, {task: result})."""
    run_env = {key: value for key, value in os.environ.items() if not key.startswith("KRB5")}
    run_env.update(env)
    hosts = "127.0.0.1 localhost\n%s %s dc1\n" % (lab["kerberos"]["dc_address"], lab["kerberos"]["dc_host"])
    rc, output, results = run_with_hosts(lab, tmp_path, play, hosts, run_env)
    return rc, output, {task: item["result"] for task, item in results.items()}


def a_user_with_a_mobile(lab):
    """(userPrincipalName, mobile) of a lab user, read with a simple bind (what the Kerberos read must equal)."""
    ldap = lab["ldap"]
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ldap["ca_file"])
    server = ldap3.Server(ldap["server"], port=ldap["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, ldap["username"], ldap["password"], auto_bind=True)
    try:
        conn.search(ldap["sync_scope"][0], "(&(objectClass=user)(mobile=*)(userPrincipalName=*))",
                    attributes=["userPrincipalName", "mobile"], size_limit=1)
        entry = conn.response[0]["raw_attributes"]
        return entry["userPrincipalName"][0].decode("utf-8"), entry["mobile"][0].decode("utf-8")
    finally:
        conn.unbind()


def test_kerberos_bind_reads_and_bad_tickets_are_explained(lab, tmp_path):
    upn, mobile = a_user_with_a_mobile(lab)
    env = kinit(lab, tmp_path / "ccache")
    kerberos = lab["kerberos"]
    # The inventory's AD connection without its user and password: the ticket is the credential.
    connection = {"ad_server": kerberos["dc_host"], "ad_ca_cert": lab["ldap"]["ca_file"], "ad_auth_protocol": "kerberos"}

    def task(name, extra=None, environment=None):
        options = dict(connection, **(extra or {}))
        lines = ["    - name: %s" % name, "      ignore_errors: true"]
        if environment:
            lines += ["      environment:"] + ["        %s: %s" % (key, json.dumps(value)) for key, value in environment.items()]
        lines += ["      entraid.dirsync.user_phone_info:", "        identities: [%s]" % json.dumps(upn), "        directories: [ad]"]
        lines += ["        %s: %s" % (key, json.dumps(value)) for key, value in options.items()]
        return "\n".join(lines) + "\n"
    play = "- hosts: lab\n  gather_facts: false\n  tasks:\n" + "".join([
        task("ldaps"),
        task("start_tls", {"ad_tls_mode": "start_tls"}),
        task("no ticket", environment={"KRB5CCNAME": "FILE:%s" % (tmp_path / "no-such-ccache")}),
        task("not the principal's name", {"ad_server": "localhost"}),
        task("no tls", {"ad_tls_mode": "none"}),
    ])

    rc, output, results = run_with_dc_name(lab, tmp_path, play, env)

    assert set(results) == {"ldaps", "start_tls", "no ticket", "not the principal's name", "no tls"}, output[-3000:]
    for name in ("ldaps", "start_tls"):
        assert not results[name].get("failed"), (name, results[name].get("msg"))
        ad = results[name]["users"][0]["ad"]
        assert ad, results[name]
        assert ad["user_principal_name"] == upn and ad["mobile"] == mobile
    assert "found no valid Kerberos ticket" in results["no ticket"]["msg"], results["no ticket"]
    assert "kinit" in results["no ticket"]["msg"]
    assert "does not know the service principal ldap/localhost" in results["not the principal's name"]["msg"]
    refused = results["no tls"]["msg"]
    assert "refused the Kerberos bind without SASL signing or sealing" in refused and "strongerAuthRequired" in refused
    assert rc == 0, output[-3000:]  # the failures are ignored; nothing else failed
    for name in ("no ticket", "not the principal's name", "no tls"):
        assert "Traceback" not in results[name]["msg"]


def test_lab_krb5_conf_names_the_realm_and_its_kdc(lab):
    kerberos = lab["kerberos"]
    with open(kerberos["krb5_conf"], encoding="utf-8") as handle:
        text = handle.read()
    assert "default_realm = LAB.TEST" in text and "kdc = %s" % kerberos["kdc"] in text
    assert kerberos["service_principal"] == "ldap/dc1.lab.test@LAB.TEST"
