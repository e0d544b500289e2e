"""The lab's DC serves concurrent LDAP connections in parallel, as a Windows DC does (docs/lab.md)."""

import os

import pytest

from dirsync_lab import samba


def _group_members(pgid):
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name, encoding="utf-8") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                members.append(int(name))
    return members


def test_two_connections_are_served_by_two_processes(lab):
    if lab.get("samba_process_model", "single") != "standard":
        pytest.skip("the lab's DC runs in Samba's %s process model (LAB_SAMBA_MODEL)" % lab.get("samba_process_model"))
    with open(os.path.join(lab["root"], "samba.pid"), encoding="utf-8") as handle:
        pgid = int(handle.read().strip())
    before = set(_group_members(pgid))
    connections = [samba.connect(lab["forests"][0]["ldap"]) for _index in range(2)]
    try:
        for connection in connections:
            assert connection.search(lab["forests"][0]["ldap"]["base_dn"], "(objectClass=domain)", search_scope="BASE")
        new = set(_group_members(pgid)) - before
        assert len(new) >= 2, "the DC served two connections without a process for each: %s" % sorted(new)
    finally:
        for connection in connections:
            connection.unbind()
