"""Unit tests of _files.atomic_write: private from creation, complete or absent, never a stray temporary file."""

import errno
import os
import stat

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _files
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_file_is_0600_even_with_a_permissive_umask_and_replaces_the_old_one(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    old = os.umask(0)
    try:
        seen = []

        def write(handle):
            # Already private while the content is written, not only once it is complete.
            seen.append(_mode(handle.name))
            handle.write("new")
        assert _files.atomic_write(str(path), write) == str(path)
    finally:
        os.umask(old)
    assert seen == [0o600]
    assert _mode(path) == 0o600 and path.read_text() == "new"
    assert os.listdir(tmp_path) == ["secret.json"]


def test_an_exception_in_write_leaves_no_temporary_file_and_the_old_content(tmp_path):
    path = tmp_path / "report.csv"
    path.write_text("previous")

    def write(handle):
        handle.write("half a rep")
        raise KeyboardInterrupt  # not even an interrupt leaves personal data behind

    with pytest.raises(KeyboardInterrupt):
        _files.atomic_write(str(path), write)
    assert os.listdir(tmp_path) == ["report.csv"]
    assert path.read_text() == "previous"


def test_an_os_error_says_what_path_and_what_to_do_and_leaves_nothing(tmp_path):
    def write(_handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DirsyncError, match=r"Cannot write the backup .*b\.json: No space left on device\. Check that its directory is "
                                           r"writable .* and that the disk is not full\.") as caught:
        _files.atomic_write(str(tmp_path / "b.json"), write, what="backup")
    assert caught.value.details == {"path": str(tmp_path / "b.json"), "reason": "No space left on device"}
    assert os.listdir(tmp_path) == []


def test_exclusive_never_replaces_an_existing_file(tmp_path):
    path = tmp_path / "backup.json"
    path.write_text("first backup")
    with pytest.raises(FileExistsError):
        _files.atomic_write(str(path), lambda handle: handle.write("second backup"), exclusive=True)
    assert path.read_text() == "first backup"
    assert os.listdir(tmp_path) == ["backup.json"]
    fresh = _files.atomic_write(str(tmp_path / "other.json"), lambda handle: handle.write("second backup"), exclusive=True)
    assert _mode(fresh) == 0o600 and sorted(os.listdir(tmp_path)) == ["backup.json", "other.json"]


def test_a_missing_directory_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="Cannot write the report .*: the directory .*nowhere does not exist. Create it first"):
        _files.atomic_write(str(tmp_path / "nowhere" / "r.csv"), lambda handle: handle.write("x"), what="report")


def test_another_mode_can_be_asked_for_a_public_file(tmp_path):
    path = _files.atomic_write(str(tmp_path / "public.txt"), lambda handle: handle.write("x"), mode=0o644)
    assert _mode(path) == 0o644
