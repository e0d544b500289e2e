"""Unit tests of _files under hostile paths: only regular files are replaced, private files are trusted only when private,
and report directories are created private without ever changing an existing one."""

import os
import socket
import stat

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _files
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_numbers(handle):
    handle.write("+1 425 555 0100\n")


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _directory(tmp_path):
    path = tmp_path / "adir"
    path.mkdir()
    return path


def _socket(tmp_path):
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


@pytest.mark.parametrize("make, kind", [(_fifo, "a named pipe (FIFO)"), (_directory, "a directory"), (_socket, "a socket")])
def test_atomic_write_refuses_anything_but_a_regular_file_by_name(tmp_path, make, kind):
    path = make(tmp_path)
    before = os.lstat(path)
    with pytest.raises(InvalidInput) as caught:
        _files.atomic_write(str(path), _write_numbers, what="report")
    assert "Refusing to write the report %s: it is %s" % (path, kind) in str(caught.value)
    assert caught.value.details["path"] == str(path)
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)


def test_atomic_write_refuses_a_character_device_and_a_link_to_one(tmp_path):
    # /dev/null itself: as root, replacing it would break the machine.
    with pytest.raises(InvalidInput, match="Refusing to write the report /dev/null: it is a character device"):
        _files.atomic_write("/dev/null", _write_numbers, what="report")
    link = tmp_path / "report.csv"
    link.symlink_to("/dev/null")
    with pytest.raises(InvalidInput, match=r"report.csv \(a link to /dev/null\): it is a character device"):
        _files.atomic_write(str(link), _write_numbers, what="report")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.path.islink(link)
    assert os.listdir(tmp_path) == ["report.csv"]  # no temporary file left behind


def test_atomic_write_replaces_the_regular_file_a_link_points_to(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    assert _files.atomic_write(str(link), _write_numbers) == str(link)
    assert os.path.islink(link) and target.read_text() == "+1 425 555 0100\n" and _mode(target) == 0o600


def test_atomic_write_creates_a_missing_file(tmp_path):
    path = tmp_path / "new.json"
    _files.atomic_write(str(path), _write_numbers)
    assert path.read_text() == "+1 425 555 0100\n" and _mode(path) == 0o600


# --- check_private_file ----------------------------------------------------------------------

def test_private_file_owned_by_the_user_and_not_writable_by_others_is_accepted(tmp_path):
    path = tmp_path / "backup.json"
    path.write_text("{}")
    for mode in (0o600, 0o400, 0o644):
        os.chmod(path, mode)
        assert _files.check_private_file(str(path), "backup").st_size == 2


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_private_file_writable_by_group_or_others_is_refused(tmp_path, mode):
    path = tmp_path / "backup.json"
    path.write_text("{}")
    os.chmod(path, mode)
    with pytest.raises(InvalidInput) as caught:
        _files.check_private_file(str(path), "backup")
    assert "Refusing to use the backup %s: its mode %04o lets group or others write it" % (path, mode) in str(caught.value)
    assert "chmod go-w" in str(caught.value)


def test_private_file_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "backup.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 4242)
    with pytest.raises(InvalidInput) as caught:
        _files.check_private_file(str(path), "backup")
    assert "Refusing to use the backup %s: it is owned by user %d" % (path, me) in str(caught.value)
    assert "not by the user running the module (%d" % (me + 4242) in str(caught.value)


def test_private_file_in_a_world_writable_directory_without_sticky_bit_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    path = shared / "backup.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    os.chmod(shared, 0o777)
    with pytest.raises(InvalidInput, match="its directory %s is writable by everyone" % shared):
        _files.check_private_file(str(path), "backup")
    os.chmod(shared, 0o1777)  # sticky, as /tmp: others cannot replace the file
    _files.check_private_file(str(path), "backup")


def test_private_file_that_is_missing_or_not_regular_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="Cannot read the backup .*missing.json"):
        _files.check_private_file(str(tmp_path / "missing.json"), "backup")
    with pytest.raises(InvalidInput, match="it is a character device, not a regular file"):
        _files.check_private_file("/dev/null", "backup")


# --- ensure_directory ------------------------------------------------------------------------

def test_missing_directories_are_created_0700_and_existing_ones_never_chmod_ed(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    old = os.umask(0)
    try:
        created = _files.ensure_directory(str(shared / "a" / "b" / "report.csv"), "report")
    finally:
        os.umask(old)
    assert created == [str(shared / "a"), str(shared / "a" / "b")]
    assert _mode(shared / "a") == 0o700 and _mode(shared / "a" / "b") == 0o700
    assert _mode(shared) == 0o1777
    assert _files.ensure_directory(str(shared / "report.csv"), "report") == []
    assert _mode(shared) == 0o1777


def test_a_file_where_a_directory_should_be_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInput, match="afile exists and is not a directory"):
        _files.ensure_directory(str(tmp_path / "afile" / "report.csv"), "report")
