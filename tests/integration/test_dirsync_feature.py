"""dirsync_feature, dirsync_feature_info and the dirsync_feature role in real ansible-playbook runs against the lab.

The lab is shared with other tests: these tests change only the features listed in TOUCHED (never
bypassDirSyncOverridesEnabled, which the procedure's tests use; it is only ever requested in check mode)
and put them back afterwards.
"""

import pytest

TOUCHED = ("blockSoftMatchEnabled", "softMatchOnUpnEnabled", "userWritebackEnabled")

PLAY = """
- hosts: lab
  gather_facts: false
  module_defaults:
    group/entraid.dirsync.graph: "{{ %(connection)s }}"
  tasks:
%(tasks)s
"""


def play(tasks, connection="entraid_graph_admin"):
    return PLAY % {"connection": connection, "tasks": tasks}


def tenant_features(control, tenant):
    return control.get("/state?tenant=%s" % tenant)["tenants"][0]["features"]


@pytest.fixture
def features(control, lab):
    """Current features of the main tenant (a function); the TOUCHED ones are restored after the test."""
    tenant = lab["tenant_id"]
    original = tenant_features(control, tenant)
    yield lambda: tenant_features(control, tenant)
    control.post("/features", {"tenant": tenant, "features": {name: original[name] for name in TOUCHED}})


def test_check_apply_apply_again(playbook, features, lab):
    before = features()
    wanted = {name: not before[name] for name in TOUCHED}
    # One name in each spelling: MSOnline, snake_case, Graph.
    text = play("""
    - name: declare
      entraid.dirsync.dirsync_feature:
        features:
          BlockSoftMatch: %s
          soft_match_on_upn: %s
          userWritebackEnabled: %s
""" % tuple(str(wanted[name]).lower() for name in TOUCHED))

    check = playbook(text, check=True, diff=True)
    assert check.rc == 0, check.stdout
    result = check.task("declare")["result"]
    assert result["changed"] is True
    assert sorted(change["feature"] for change in result["changes"]) == sorted(TOUCHED)
    assert all(result["diff"]["after"]["features"][name] == wanted[name] for name in TOUCHED)
    assert all(result["diff"]["before"]["features"][name] == before[name] for name in TOUCHED)
    assert {name: features()[name] for name in TOUCHED} == {name: before[name] for name in TOUCHED}

    applied = playbook(text)
    assert applied.rc == 0, applied.stdout
    assert applied.task("declare")["result"]["changed"] is True
    assert applied.task("declare")["result"]["tenant_id"] == lab["tenant_id"]
    assert {name: features()[name] for name in TOUCHED} == wanted

    again = playbook(text)
    assert again.rc == 0, again.stdout
    assert again.task("declare")["result"]["changed"] is False
    assert again.task("declare")["result"]["changes"] == []


@pytest.mark.parametrize("spelling", ["bypassDirSyncOverridesEnabled", "BYPASSDIRSYNCOVERRIDES", "bypass_dir_sync_overrides"])
def test_every_spelling_names_the_feature(playbook, features, spelling):
    current = features()["bypassDirSyncOverridesEnabled"]
    run = playbook(play("""
    - name: one feature
      entraid.dirsync.dirsync_feature:
        feature: %s
        enabled: %s
""" % (spelling, str(not current).lower())), check=True)
    assert run.rc == 0, run.stdout
    result = run.task("one feature")["result"]
    assert result["changes"] == [{"feature": "bypassDirSyncOverridesEnabled", "before": current, "after": not current}]
    assert features()["bypassDirSyncOverridesEnabled"] == current


def test_info_module_reads_every_feature(playbook, features, lab):
    run = playbook(play("""
    - name: read
      entraid.dirsync.dirsync_feature_info:
"""), check=True)
    assert run.rc == 0, run.stdout
    result = run.task("read")["result"]
    assert result["changed"] is False
    assert result["tenant_id"] == lab["tenant_id"]
    assert set(result["features"]) == set(features())


def test_unknown_name_fails_with_the_list(playbook, features):
    before = features()
    run = playbook(play("""
    - name: unknown
      entraid.dirsync.dirsync_feature:
        features:
          BypassOverrides: true
"""))
    assert run.rc != 0
    result = run.task("unknown")
    assert result["status"] == "failed"
    assert "Unknown directory synchronization feature 'BypassOverrides'" in result["result"]["msg"]
    assert "bypassDirSyncOverridesEnabled (BypassDirSyncOverrides, bypass_dir_sync_overrides)" in result["result"]["msg"]
    assert features() == before


def test_app_only_sign_in_is_refused(playbook, features):
    before = features()
    run = playbook(play("""
    - name: app only
      entraid.dirsync.dirsync_feature:
        feature: BlockSoftMatch
        enabled: %s
""" % str(not before["blockSoftMatchEnabled"]).lower(), connection="entraid_graph"))
    result = run.task("app only")
    assert result["status"] == "failed"
    assert "app-only" in result["result"]["msg"]
    assert "auth_method=device_code" in result["result"]["msg"]
    assert features()["blockSoftMatchEnabled"] == before["blockSoftMatchEnabled"]


def test_user_who_is_not_a_global_administrator_gets_403_with_what_to_do(playbook, features, lab):
    before = features()
    helpdesk = lab["users"]["helpdesk"]
    run = playbook(play("""
    - name: helpdesk
      entraid.dirsync.dirsync_feature:
        feature: BlockSoftMatch
        enabled: %s
""" % str(not before["blockSoftMatchEnabled"]).lower(),
        connection="entraid_graph_admin | combine({'username': helpdesk_user, 'password': helpdesk_password, 'token_cache_path': omit})"),
        extra_vars={"helpdesk_user": helpdesk["username"], "helpdesk_password": helpdesk["password"]})
    result = run.task("helpdesk")
    assert result["status"] == "failed"
    msg = result["result"]["msg"]
    assert "Graph refused to read the directory synchronization features (403" in msg
    assert "must be a Global Administrator" in msg and "OnPremDirectorySynchronization.Read.All" in msg
    assert helpdesk["password"] not in run.stdout
    assert features()["blockSoftMatchEnabled"] == before["blockSoftMatchEnabled"]


def test_tenant_without_directory_synchronization(playbook, control, lab):
    nosync = lab["tenants"]["nosync"]
    before = tenant_features(control, nosync["tenant_id"])
    tasks = """
    - name: nosync
      entraid.dirsync.dirsync_feature:
        feature: BypassDirSyncOverrides
        enabled: true
"""
    connection = ("entraid_graph_admin | combine({'tenant_id': nosync_tenant, 'username': nosync_user, "
                  "'password': nosync_password, 'token_cache_path': omit})")
    run = playbook(play(tasks, connection=connection),
                   extra_vars={"nosync_tenant": nosync["tenant_id"], "nosync_user": nosync["admin"]["username"],
                               "nosync_password": nosync["admin"]["password"]})
    result = run.task("nosync")
    assert result["status"] == "failed"
    assert "Tenant %s has no directory synchronization" % nosync["tenant_id"] in result["result"]["msg"]
    assert tenant_features(control, nosync["tenant_id"]) == before


def test_password_writeback_cannot_be_changed(playbook, features):
    before = features()
    run = playbook(play("""
    - name: writeback
      entraid.dirsync.dirsync_feature:
        features:
          PasswordWriteback: %s
          BlockSoftMatch: %s
""" % (str(not before["passwordWritebackEnabled"]).lower(), str(not before["blockSoftMatchEnabled"]).lower())))
    result = run.task("writeback")
    assert result["status"] == "failed"
    assert "passwordWritebackEnabled cannot be changed" in result["result"]["msg"]
    assert features() == before


ROLE_PLAY = """
- hosts: lab
  gather_facts: false
  roles:
    - role: entraid.dirsync.dirsync_feature
      vars:
        dirsync_feature_features:
          BlockSoftMatch: %s
          soft_match_on_upn: %s
"""

ROLE_TASK = "entraid.dirsync.dirsync_feature : Bring the tenant's directory synchronization features to the declared state"
SUMMARY_TASK = "entraid.dirsync.dirsync_feature : Summarise the tenant's features"


def test_role_reports_drift_in_check_mode_then_applies(playbook, features, lab):
    before = features()
    wanted = {"blockSoftMatchEnabled": not before["blockSoftMatchEnabled"], "softMatchOnUpnEnabled": not before["softMatchOnUpnEnabled"]}
    text = ROLE_PLAY % (str(wanted["blockSoftMatchEnabled"]).lower(), str(wanted["softMatchOnUpnEnabled"]).lower())

    check = playbook(text, check=True, diff=True)
    assert check.rc == 0, check.stdout
    assert check.task(ROLE_TASK)["result"]["changed"] is True
    summary = check.task(SUMMARY_TASK)["result"]["msg"]
    assert summary.startswith("Tenant %s: would change blockSoftMatchEnabled %s -> %s, softMatchOnUpnEnabled"
                              % (lab["tenant_id"], str(before["blockSoftMatchEnabled"]).lower(), str(wanted["blockSoftMatchEnabled"]).lower()))
    assert "-        \"blockSoftMatchEnabled\": %s" % str(before["blockSoftMatchEnabled"]).lower() in check.stdout
    assert {name: features()[name] for name in wanted} == {name: before[name] for name in wanted}

    applied = playbook(text)
    assert applied.rc == 0, applied.stdout
    assert applied.task(ROLE_TASK)["result"]["changed"] is True
    assert {name: features()[name] for name in wanted} == wanted

    again = playbook(text)
    assert again.rc == 0, again.stdout
    assert again.task(ROLE_TASK)["result"]["changed"] is False
    assert "2 declared feature(s) as declared, nothing to change" in again.task(SUMMARY_TASK)["result"]["msg"]


def test_role_rejects_features_that_are_not_a_dict(playbook, features):
    run = playbook("""
- hosts: lab
  gather_facts: false
  roles:
    - role: entraid.dirsync.dirsync_feature
      vars:
        dirsync_feature_features: [BlockSoftMatch]
""")
    assert run.rc != 0
    assert "dirsync_feature_features" in run.stdout
    assert not any(result["task"] == ROLE_TASK for result in run.results)
