"""Documentation a user relies on: ansible-doc renders every plugin and role, links resolve."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collections_path():
    # Under ansible-test the collection itself sits at .../ansible_collections/entraid/dirsync; in a
    # checkout, the Makefile links it into .venv/collections.
    parts = ROOT.split(os.sep)
    if parts[-3:-2] == ["ansible_collections"]:
        return os.sep.join(parts[:-3])
    return os.path.join(ROOT, ".venv", "collections")


def _ansible_doc_command():
    # ansible-test runs the tests with a python that is not in the venv's bin; ansible-doc is then on PATH.
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    return beside if os.path.exists(beside) else shutil.which("ansible-doc") or beside


ANSIBLE_DOC = _ansible_doc_command()
ENV = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collections_path(), ANSIBLE_NOCOLOR="1")


def _names(folder, *suffixes):
    path = os.path.join(ROOT, folder)
    if not os.path.isdir(path):
        return []
    return sorted({os.path.splitext(n)[0] for n in os.listdir(path) if n.endswith(suffixes) and not n.startswith("_")})


# Python modules and PowerShell ones (documented in a .yml beside the .ps1).
MODULES = _names("plugins/modules", ".py", ".ps1")
ROLES = sorted(n for n in os.listdir(os.path.join(ROOT, "roles")) if os.path.isdir(os.path.join(ROOT, "roles", n))) \
    if os.path.isdir(os.path.join(ROOT, "roles")) else []


def _ansible_doc(*args):
    result = subprocess.run([ANSIBLE_DOC, *args], capture_output=True, text=True, env=ENV, check=False, timeout=120)
    # ansible-doc emboldens names even without colour; compare plain text.
    result.stdout = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    return result


def test_ansible_doc_lists_every_module():
    listed = json.loads(_ansible_doc("-l", "entraid.dirsync", "--json").stdout)
    assert sorted(name.split(".")[-1] for name in listed) == MODULES


def test_ansible_doc_lists_every_role():
    result = _ansible_doc("-t", "role", "-l", "entraid.dirsync", "--json")
    listed = json.loads(result.stdout or "{}")
    assert sorted(name.split(".")[-1] for name in listed) == ROLES


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders_without_warnings(module):
    result = _ansible_doc("entraid.dirsync." + module)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    for section in ("EXAMPLES", "RETURN VALUES", "ATTRIBUTES"):
        assert section in result.stdout, "%s has no %s" % (module, section)


@pytest.mark.parametrize("role", ROLES)
def test_role_doc_renders_without_warnings(role):
    result = _ansible_doc("-t", "role", "entraid.dirsync." + role)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    assert re.search(r"ENTRY POINT: \W*main\b", result.stdout), result.stdout[:500]


def _markdown_files():
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "CONTRIBUTING.md")]
    for base, _dirs, names in os.walk(os.path.join(ROOT, "docs")):
        files += [os.path.join(base, n) for n in names if n.endswith(".md")]
    return files


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    broken = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), target))):
            broken.append(target)
    assert not broken, "broken links in %s: %s" % (os.path.relpath(path, ROOT), broken)
