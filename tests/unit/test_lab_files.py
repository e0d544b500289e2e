"""The lab's atomic writer of its keys, passwords and inventory: private from creation, nothing left behind."""

import os
import stat

import pytest

from dirsync_lab.files import write_atomic


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secret_is_private_from_creation_and_replaces_a_readable_file(tmp_path, monkeypatch):
    path = tmp_path / "secrets.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    created = []
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        created.append(stat.S_IMODE(os.fstat(fd).st_mode))  # the mode before a byte is written
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)
    old = os.umask(0)
    try:
        write_atomic(str(path), '{"password": "x"}')
    finally:
        os.umask(old)
    assert created == [0o600]
    assert _mode(path) == 0o600 and path.read_text() == '{"password": "x"}'
    assert os.listdir(tmp_path) == ["secrets.json"]


def test_a_stale_temporary_file_of_the_old_scheme_is_never_written_to(tmp_path):
    # The old writer reused "<name>.tmp" with O_TRUNC: a readable leftover kept its mode and received the key.
    stale = tmp_path / "ca.key.tmp"
    stale.write_text("")
    os.chmod(stale, 0o644)
    write_atomic(str(tmp_path / "ca.key"), b"-----BEGIN RSA PRIVATE KEY-----\n")
    assert stale.read_text() == ""
    assert _mode(tmp_path / "ca.key") == 0o600


def test_a_certificate_gets_its_public_mode_and_a_failure_leaves_nothing(tmp_path):
    write_atomic(str(tmp_path / "ca.pem"), b"cert", 0o644)
    assert _mode(tmp_path / "ca.pem") == 0o644
    with pytest.raises(TypeError):
        write_atomic(str(tmp_path / "inventory.yml"), 42)
    assert os.listdir(tmp_path) == ["ca.pem"]
