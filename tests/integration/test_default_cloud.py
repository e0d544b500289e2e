"""The collection's default configuration (cloud: global, no authority or Graph endpoint given) against the lab.

login.microsoftonline.com and graph.microsoft.com resolve to the lab only inside a private mount namespace
(``unshare --mount`` with a bind-mounted hosts file) that the test makes for its ansible-playbook run; the lab's
server certificate carries those names, and the lab CA is trusted there the way a machine trusts a CA
(REQUESTS_CA_BUNDLE), not through a module option. MSAL asks port 443 for these hosts; the lab listens there.
"""

import json
import os

from lab_play import run_with_hosts

# Options and variables that would point the modules elsewhere than Microsoft's public cloud.
OVERRIDES = ("AZURE_AUTHORITY_HOST", "ENTRAID_CLOUD", "ENTRAID_GRAPH_ENDPOINT", "ENTRAID_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def run_as_in_public_cloud(lab, tmp_path, play):
    """ansible-playbook in a mount namespace where Microsoft's host names are the lab; -> (rc, output, results)."""
    env = {key: value for key, value in os.environ.items() if key not in OVERRIDES}
    env["REQUESTS_CA_BUNDLE"] = lab["ca_file"]
    return run_with_hosts(lab, tmp_path, play, "127.0.0.1 localhost\n127.0.0.1 login.microsoftonline.com\n"
                          "127.0.0.1 graph.microsoft.com\n", env)


def test_modules_work_with_the_default_public_cloud_endpoints(lab, control, tmp_path):
    apps, admin = lab["apps"], lab["users"]["admin"]
    synced = next(user for user in control.get("/state")["tenants"][0]["users"]
                  if user.get("onPremisesSyncEnabled") and user.get("mobilePhone"))
    app = {"tenant_id": lab["tenant_id"], "client_id": apps["automation"]["client_id"], "client_secret": apps["automation"]["client_secret"]}
    delegated = {"tenant_id": lab["tenant_id"], "client_id": apps["interactive"]["client_id"], "username": admin["username"],
                 "password": admin["password"]}
    play = """
- hosts: lab
  gather_facts: false
  tasks:
    - name: app read
      entraid.dirsync.user_phone_info:
        identities: [%s]
        directories: [entra]
%s
    - name: delegated read
      entraid.dirsync.dirsync_feature_info:
%s
""" % (json.dumps(synced["userPrincipalName"]), "".join("        %s: %s\n" % (k, json.dumps(v)) for k, v in app.items()),
       "".join("        %s: %s\n" % (k, json.dumps(v)) for k, v in delegated.items()))
    assert "cloud:" not in play and "authority_host" not in play and "graph_endpoint" not in play and "ca_bundle" not in play

    rc, output, results = run_as_in_public_cloud(lab, tmp_path, play)

    assert rc == 0, output[-3000:]
    read = results["app read"]["result"]
    assert json.dumps(read).count(synced["id"]) >= 1 and synced["mobilePhone"] in json.dumps(read)
    features = results["delegated read"]["result"]
    assert "bypassDirSyncOverridesEnabled" in json.dumps(features)
    # Outside that namespace the names are Microsoft's again: nothing of the machine was changed.
    with open("/etc/hosts", encoding="utf-8") as handle:
        assert "login.microsoftonline.com" not in handle.read()
