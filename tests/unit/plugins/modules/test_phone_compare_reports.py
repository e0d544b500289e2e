"""phone_compare's report paths: checked before anything is read, directories created 0700 only when missing, never chmod-ed."""

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.entraid.dirsync.plugins.modules import phone_compare
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

STOP = "stopped before connecting (test)"


@pytest.fixture(autouse=True)
def no_connection(monkeypatch):
    def stop(module):
        raise InvalidInput(STOP)
    monkeypatch.setattr(phone_compare, "graph_client_from_module", stop)


def run(capsys, check=False, **args):
    args = dict({"search_bases": ["OU=Sync,DC=lab,DC=test"], "_ansible_check_mode": check}, **args)
    with patch_module_args(args), pytest.raises(SystemExit):
        phone_compare.main()
    return json.loads(capsys.readouterr().out)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("check", [False, True])
def test_missing_report_directories_are_created_0700_before_reading(capsys, tmp_path, check):
    result = run(capsys, check=check, report_csv=str(tmp_path / "new" / "sub" / "drift.csv"), report_json=str(tmp_path / "j" / "drift.json"))
    assert result["msg"] == STOP
    assert _mode(tmp_path / "new") == 0o700 and _mode(tmp_path / "new" / "sub") == 0o700 and _mode(tmp_path / "j") == 0o700


@pytest.mark.parametrize("check", [False, True])
def test_an_existing_report_directory_is_never_chmod_ed(capsys, tmp_path, check):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    result = run(capsys, check=check, report_csv=str(shared / "drift.csv"))
    assert result["msg"] == STOP and _mode(shared) == 0o1777


def test_a_device_as_report_is_refused_before_connecting(capsys, tmp_path):
    link = tmp_path / "drift.json"
    link.symlink_to("/dev/null")
    result = run(capsys, report_csv="/dev/null")
    assert result["failed"] and result["msg"].startswith("Refusing to write the report /dev/null: it is a character device")
    result = run(capsys, report_json=str(link))
    assert result["msg"].startswith("Refusing to write the report %s (a link to /dev/null)" % link)
