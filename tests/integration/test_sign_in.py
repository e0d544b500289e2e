"""The entraid.dirsync.sign_in action: device code sign-in inside ansible-playbook, approved through the lab's control API."""

import json
import os
import re
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

CODE_LINE = re.compile(r"entraid\.dirsync\.sign_in: .*https://\S+ .*enter the code (\S+) ")

# Connection without username/password, so auth_method=auto could not fall back to a password sign-in.
PLAY = """
- hosts: lab
  gather_facts: false
  vars:
    connection: >-
      {{ entraid_graph_admin | dict2items | rejectattr('key', 'in', ['username', 'password']) | items2dict
         | combine({'token_cache_path': token_cache, 'auth_method': 'device_code'}) }}
  module_defaults:
    entraid.dirsync.sign_in: "{{ connection }}"
    group/entraid.dirsync.graph: "{{ connection }}"
  tasks:
    - name: sign in
      entraid.dirsync.sign_in:
        wait_timeout: %(wait)d
        username: "{{ sign_in_username | default(omit) }}"
      register: signed_in

    - name: read features with the cached sign-in
      entraid.dirsync.dirsync_feature_info:
"""


def command(lab, tmp_path, wait=120, check=False, username=None):
    path = tmp_path / "sign_in_play.yml"
    path.write_text(PLAY % {"wait": wait}, encoding="utf-8")
    cmd = [ANSIBLE_PLAYBOOK, "-i", os.path.join(lab["root"], "inventory.yml"), str(path),
           "-e", json.dumps({"token_cache": str(tmp_path / "cache" / "tokens.json")})]
    if username:
        cmd += ["-e", json.dumps({"sign_in_username": username})]
    if check:
        cmd.append("--check")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".venv", "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "tests", "integration", "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="record_results", RECORD_RESULTS_FILE=str(tmp_path / "results.jsonl"))
    return cmd, env


def results(tmp_path):
    with open(tmp_path / "results.jsonl", encoding="utf-8") as handle:
        return {line["task"]: line for line in map(json.loads, handle)}


def start_and_wait_for_code(lab, tmp_path, **kwargs):
    """Start ansible-playbook; return (process, user code) once the run shows the code, while it waits."""
    cmd, env = command(lab, tmp_path, **kwargs)
    (tmp_path / "results.jsonl").unlink(missing_ok=True)
    stdout = open(tmp_path / "stdout.txt", "w", encoding="utf-8")  # pylint: disable=consider-using-with
    process = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)  # pylint: disable=consider-using-with
    stdout.close()
    shown = []
    for line in process.stderr:
        shown.append(line)
        match = CODE_LINE.search(line)
        if match:
            return process, match.group(1)
    process.wait()
    pytest.fail("ansible-playbook never showed a device code:\n%s%s" % ("".join(shown), (tmp_path / "stdout.txt").read_text()))
    return None


def finish(process, tmp_path):
    stderr = process.communicate(timeout=300)[1]
    return process.returncode, (tmp_path / "stdout.txt").read_text() + stderr


def test_device_code_sign_in_then_cached_tokens(lab, control, tmp_path):
    process, user_code = start_and_wait_for_code(lab, tmp_path)
    try:
        # The run is waiting for this very code, which the identity platform holds as pending.
        pending = [entry for entry in control.get("/device")["pending"] if entry["user_code"] == user_code]
        assert pending and pending[0]["status"] == "pending"
        assert pending[0]["client_id"] == lab["apps"]["interactive"]["client_id"]
        control.post("/device/approve", {"user_code": user_code, "userPrincipalName": lab["users"]["mfa_admin"]["username"]})
        returncode, output = finish(process, tmp_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert returncode == 0, output
    first = results(tmp_path)
    signed_in = first["sign in"]["result"]
    assert signed_in["changed"] is True
    assert signed_in["account"] == lab["users"]["mfa_admin"]["username"]
    assert signed_in["tenant_id"] == lab["tenant_id"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", signed_in["expires_on"])
    assert first["read features with the cached sign-in"]["status"] == "ok"
    assert "bypassDirSyncOverridesEnabled" in first["read features with the cached sign-in"]["result"]["features"]

    cache = tmp_path / "cache" / "tokens.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    secrets = [entry["secret"] for kind in ("AccessToken", "RefreshToken") for entry in json.loads(cache.read_text())[kind].values()]
    assert secrets
    assert not any(secret in output or secret in json.dumps(first) for secret in secrets)

    # Second run, in check mode too: no code is shown, nothing to approve, the cache serves both tasks.
    cmd, env = command(lab, tmp_path, check=True)
    (tmp_path / "results.jsonl").unlink()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "enter the code" not in again.stdout + again.stderr
    second = results(tmp_path)
    assert second["sign in"]["result"]["changed"] is False
    assert second["sign in"]["result"]["account"] == lab["users"]["mfa_admin"]["username"]
    assert second["read features with the cached sign-in"]["status"] == "ok"


def test_sign_in_nobody_completes_fails_and_stores_nothing(lab, control, tmp_path):
    process, user_code = start_and_wait_for_code(lab, tmp_path, wait=2)
    try:
        returncode, output = finish(process, tmp_path)
    finally:
        control.post("/device/deny", {"user_code": user_code})
    assert returncode != 0
    failed = results(tmp_path)["sign in"]
    assert failed["status"] == "failed"
    assert "Nobody completed the device code sign-in within 2 seconds" in failed["result"]["msg"], output
    assert "read features with the cached sign-in" not in results(tmp_path)
    assert not (tmp_path / "cache" / "tokens.json").exists()


def test_sign_in_by_another_account_than_username_is_refused(lab, control, tmp_path):
    wanted = lab["users"]["admin"]["username"]
    process, user_code = start_and_wait_for_code(lab, tmp_path, username=wanted)
    control.post("/device/approve", {"user_code": user_code, "userPrincipalName": lab["users"]["mfa_admin"]["username"]})
    returncode, output = finish(process, tmp_path)
    assert returncode != 0
    failed = results(tmp_path)["sign in"]
    assert failed["status"] == "failed", output
    assert "completed as %s, but username is %s" % (lab["users"]["mfa_admin"]["username"], wanted) in failed["result"]["msg"]
    assert not (tmp_path / "cache" / "tokens.json").exists()


def test_sign_in_refuses_a_token_cache_it_could_not_save_before_showing_a_code(lab, tmp_path):
    (tmp_path / "cache").write_text("a file where the cache directory should be")
    cmd, env = command(lab, tmp_path)
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert run.returncode != 0
    assert "enter the code" not in run.stdout + run.stderr
    failed = results(tmp_path)["sign in"]
    assert failed["status"] == "failed", run.stdout + run.stderr
    assert failed["result"]["msg"].startswith("Cannot save the token cache (token_cache_path) %s: %s is a file, not a directory."
                                              % (tmp_path / "cache" / "tokens.json", tmp_path / "cache"))
    assert failed["result"]["token_cache_path"] == str(tmp_path / "cache" / "tokens.json")
