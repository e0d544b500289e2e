"""The collection's default configuration (cloud: global, no authority or Graph endpoint given) against the lab.

login.microsoftonline.com and graph.microsoft.com resolve to the lab only inside a private mount namespace
(``unshare --mount`` with a bind-mounted hosts file) that the test makes for its ansible-playbook run; the lab's
server certificate carries those names, and the lab CA is trusted there the way a machine trusts a CA
(REQUESTS_CA_BUNDLE), not through a module option. MSAL asks port 443 for these hosts; the lab listens there.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
# Options and variables that would point the modules elsewhere than Microsoft's public cloud.
OVERRIDES = ("AZURE_AUTHORITY_HOST", "ENTRAID_CLOUD", "ENTRAID_GRAPH_ENDPOINT", "ENTRAID_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def run_as_in_public_cloud(lab, tmp_path, play):
    """ansible-playbook in a mount namespace where Microsoft's host names are the lab; -> (rc, output, results)."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to resolve Microsoft's host names to the lab in a private namespace")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 login.microsoftonline.com\n127.0.0.1 graph.microsoft.com\n")
    path, results_file = tmp_path / "play.yml", tmp_path / "results.jsonl"
    path.write_text(play)
    env = {key: value for key, value in os.environ.items() if key not in OVERRIDES}
    env.update({
        "REQUESTS_CA_BUNDLE": lab["ca_file"],
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, ".venv", "collections"),
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(ROOT, "tests", "integration", "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "record_results", "RECORD_RESULTS_FILE": str(results_file), "ANSIBLE_NOCOLOR": "1",
    })
    script = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(hosts),
           ANSIBLE_PLAYBOOK, "-i", os.path.join(lab["root"], "inventory.yml"), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    results = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    return proc.returncode, proc.stdout + proc.stderr, {item["task"]: item for item in results}


def test_modules_work_with_the_default_public_cloud_endpoints(lab, control, tmp_path):
    apps, admin = lab["apps"], lab["users"]["admin"]
    synced = next(user for user in control.get("/state")["tenants"][0]["users"] if user.get("onPremisesSyncEnabled"))
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
