"""Packaging checks: what a user installing or building the collection relies on."""

import os
import re
import subprocess
import sys
import tarfile

import pytest
import yaml
from ansible.release import __version__ as ansible_version
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ansible_collections.entraid.dirsync.plugins.doc_fragments._attributes import ModuleDocFragment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load_yaml(relpath):
    with open(os.path.join(ROOT, relpath), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _module_names():
    """Every module: Python ones (name.py) and PowerShell ones (name.ps1, documented in name.yml)."""
    modules_dir = os.path.join(ROOT, "plugins", "modules")
    if not os.path.isdir(modules_dir):
        return []
    return sorted(os.path.splitext(name)[0] for name in os.listdir(modules_dir)
                  if name.endswith((".py", ".ps1")) and name != "__init__.py")


def _doc_file(name):
    base = os.path.join(ROOT, "plugins", "modules", name)
    return base + ".py" if os.path.exists(base + ".py") else base + ".yml"


def _modules_documenting(fragment):
    """Modules whose DOCUMENTATION extends the given connection doc fragment."""
    names = []
    for name in _module_names():
        with open(_doc_file(name), encoding="utf-8") as handle:
            if re.search(r"^\s+- entraid\.dirsync\.%s\s*$" % fragment, handle.read(), flags=re.M):
                names.append(name)
    return names


@pytest.mark.parametrize("group", ["graph", "ad"])
def test_action_groups_list_exactly_the_modules_with_those_options(group):
    # module_defaults: {group/entraid.dirsync.graph: ...} passes every key to every member: a module
    # missing from the group runs without the play's credentials, and a member without the options
    # fails on unsupported parameters.
    members = _load_yaml("meta/runtime.yml")["action_groups"][group]
    assert len(members) == len(set(members)), "duplicate entries in action_groups.%s" % group
    assert sorted(members) == _modules_documenting(group)


def test_action_group_fragments_name_the_real_groups():
    galaxy = _load_yaml("galaxy.yml")
    groups = _load_yaml("meta/runtime.yml")["action_groups"]
    fqcn = ["%s.%s.%s" % (galaxy["namespace"], galaxy["name"], group) for group in groups]
    for fragment in ("ACTION_GROUP_GRAPH", "ACTION_GROUP_GRAPH_AD"):
        documented = yaml.safe_load(getattr(ModuleDocFragment, fragment))["attributes"]["action_group"]["membership"]
        assert set(documented) <= set(fqcn)


@pytest.mark.parametrize("fragment", ["DOCUMENTATION", "INFO_MODULE", "ACTION_GROUP_GRAPH", "ACTION_GROUP_GRAPH_AD"])
def test_doc_fragments_are_valid_yaml_with_attributes(fragment):
    data = yaml.safe_load(getattr(ModuleDocFragment, fragment))
    assert data["options"] == {}
    assert data["attributes"]


def test_info_fragment_declares_read_only_support():
    attributes = yaml.safe_load(ModuleDocFragment.INFO_MODULE)["attributes"]
    assert attributes["check_mode"]["support"] == "full"
    assert attributes["diff_mode"]["support"] == "N/A"


def test_galaxy_metadata_parses():
    galaxy = _load_yaml("galaxy.yml")
    assert (galaxy["namespace"], galaxy["name"]) == ("entraid", "dirsync")
    assert re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?", galaxy["version"])
    assert galaxy["license"] == ["GPL-3.0-or-later"]


def test_galaxy_readme_exists():
    # Galaxy refuses to import a collection whose readme is missing.
    galaxy = _load_yaml("galaxy.yml")
    assert os.path.isfile(os.path.join(ROOT, galaxy["readme"])), "galaxy.yml names %s, which does not exist" % galaxy["readme"]


def test_requires_ansible_parses_and_accepts_the_tested_core():
    requires = SpecifierSet(_load_yaml("meta/runtime.yml")["requires_ansible"])
    assert Version(ansible_version) in requires
    assert Version("2.17.0") not in requires


def _requirements(relpath):
    """(line, requirement) for each requirement of a pip requirements file, without the files it includes."""
    with open(os.path.join(ROOT, relpath), encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    return [(line, Requirement(line.partition(" #")[0].strip()))
            for line in lines if line and not line.startswith(("#", "-r "))]


@pytest.mark.parametrize("relpath", ["requirements.txt", "requirements-ee.txt", "requirements-lab.txt", "requirements-dev.txt"])
def test_requirement_lines_parse_and_carry_a_reason(relpath):
    requirements = _requirements(relpath)
    assert requirements
    for line, requirement in requirements:
        spec, sep, reason = line.partition(" #")
        assert sep and reason.strip(), "%s: %r needs a '# reason' comment" % (relpath, line)
        assert requirement.specifier, "%s: %r has no version bound" % (relpath, line)


@pytest.mark.parametrize("relpath", ["requirements.txt", "requirements-ee.txt"])
def test_collection_requirements_set_floors_only(relpath):
    # An execution environment merges every collection's requirements: a cap (<, <=, ~=, ==) here conflicts
    # with another collection's floor and breaks the build for everybody.
    for line, requirement in _requirements(relpath):
        caps = [spec for spec in requirement.specifier if spec.operator not in (">=", ">", "!=")]
        assert not caps, "%s: %r caps the version" % (relpath, line)


def test_execution_environment_metadata_is_what_ansible_builder_reads():
    # ansible-builder reads a collection's meta/execution-environment.yml for `dependencies` (metadata format 1);
    # `version: 3` belongs to an EE definition, and there made `ansible-builder create -f` fall back to an outdated
    # base image.
    ee = _load_yaml("meta/execution-environment.yml")
    assert set(ee) == {"version", "dependencies"} and ee["version"] == 1
    for key in ("python", "system"):
        assert os.path.isfile(os.path.join(ROOT, ee["dependencies"][key]))
    python = ee["dependencies"]["python"]
    with open(os.path.join(ROOT, python), encoding="utf-8") as handle:
        assert "-r requirements.txt" in handle.read().splitlines(), "%s must include requirements.txt" % python
    # Kerberos (ad_auth_protocol=kerberos) works in the EE: the Python binding and the system libraries.
    assert "gssapi" in [requirement.name for _line, requirement in _requirements(python)]
    with open(os.path.join(ROOT, ee["dependencies"]["system"]), encoding="utf-8") as handle:
        bindep = handle.read()
    assert re.search(r"^krb5-workstation \[platform:rpm\]$", bindep, flags=re.M)
    assert re.search(r"^krb5-devel \[platform:rpm compile\]$", bindep, flags=re.M)


def test_action_groups_named_anywhere_exist():
    # The changelog once promised group/entraid.dirsync.all, which module_defaults could not resolve.
    groups = set(_load_yaml("meta/runtime.yml")["action_groups"])
    named = {}
    for name in ("README.md", "CONTRIBUTING.md"):
        if os.path.exists(os.path.join(ROOT, name)):
            with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
                named.update((group, name) for group in re.findall(r"group/entraid\.dirsync\.(\w+)", handle.read()))
    for folder in ("changelogs", "docs", "plugins", "roles", "playbooks"):
        for base, _dirs, names in os.walk(os.path.join(ROOT, folder)):
            for name in names:
                if name.endswith((".py", ".yml", ".yaml", ".md")):
                    with open(os.path.join(base, name), encoding="utf-8") as handle:
                        for group in re.findall(r"group/entraid\.dirsync\.(\w+)", handle.read()):
                            named.setdefault(group, os.path.relpath(os.path.join(base, name), ROOT))
    assert named, "no group/entraid.dirsync.* found: the search is broken"
    assert {group: path for group, path in named.items() if group not in groups} == {}


def test_built_artifact_holds_the_collection_and_no_local_state(tmp_path):
    # The tarball is what ansible-galaxy installs: it must not carry the venv, the lab's
    # keys and certificates (.lab) or build leftovers.
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", "--output-path", str(tmp_path), ROOT],
                   check=True, capture_output=True, timeout=120)
    (artifact,) = tmp_path.glob("entraid-dirsync-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    for required in ("MANIFEST.json", "meta/runtime.yml", "LICENSES/GPL-3.0-or-later.txt",
                     "plugins/module_utils/_errors.py", "requirements.txt"):
        assert required in names
    leaked = [name for name in names
              if name.split("/")[0] in (".venv", ".lab", ".build", ".git", ".pytest_cache", ".ansible", "backups", "reports")
              or "__pycache__" in name.split("/") or name.startswith("tests/output")]
    assert not leaked


def _powershell_spec(path):
    """The options of a PowerShell module's `$spec = @{ options = @{ name = @{ key = value; ... } } }`."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    body = re.search(r"^\$spec = @\{\n\s+options = @\{\n(.*?)\n\s+\}\n(.*?)\n\}", text, flags=re.S | re.M)
    assert body, "%s: no $spec = @{ options = @{ ... } } found" % path

    def value(raw):
        raw = raw.strip()
        if raw in ("$true", "$false"):
            return raw == "$true"
        if re.fullmatch(r"-?\d+", raw):
            return int(raw)
        items = re.findall(r"'([^']*)'", raw)
        return items if "," in raw else items[0]

    options = {}
    for name, pairs in re.findall(r"^\s+(\w+) = @\{ (.*) \}$", body.group(1), flags=re.M):
        options[name] = {key: value(raw) for key, raw in (pair.split("=", 1) for pair in pairs.split(";"))}
        options[name] = {key.strip(): val for key, val in options[name].items()}
    check_mode = re.search(r"supports_check_mode = (\$true|\$false)", body.group(2))
    return options, bool(check_mode and check_mode.group(1) == "$true")


POWERSHELL_MODULES = [name for name in _module_names()
                      if os.path.exists(os.path.join(ROOT, "plugins", "modules", name + ".ps1"))]


@pytest.mark.parametrize("name", POWERSHELL_MODULES)
def test_powershell_argument_spec_matches_its_documentation(name):
    # What validate-modules checks when pwsh is installed; Debian has no pwsh, so sanity.sh skips the
    # comparison for .ps1 files and this test does it (the sidecar .yml itself is validated there).
    spec, supports_check_mode = _powershell_spec(os.path.join(ROOT, "plugins", "modules", name + ".ps1"))
    doc = _load_yaml("plugins/modules/%s.yml" % name)["DOCUMENTATION"]
    assert sorted(spec) == sorted(doc["options"])
    for option, rules in spec.items():
        documented = doc["options"][option]
        assert rules.get("type", "str") == documented.get("type", "str"), option
        assert rules.get("required", False) == documented.get("required", False), option
        assert rules.get("default") == documented.get("default"), option
        assert rules.get("choices") == documented.get("choices"), option
    assert supports_check_mode == (doc["attributes"]["check_mode"]["support"] != "none")


def test_no_sanity_test_is_ignored():
    # Certification (and ansible-lint's sanity rule) refuses ignores; a finding is fixed, not listed.
    sanity = os.path.join(ROOT, "tests", "sanity")
    entries = []
    for name in sorted(os.listdir(sanity)) if os.path.isdir(sanity) else []:
        if name.startswith("ignore-") and name.endswith(".txt"):
            with open(os.path.join(sanity, name), encoding="utf-8") as handle:
                entries += ["%s: %s" % (name, line.strip()) for line in handle if line.strip()]
    assert not entries


def test_lab_state_stays_out_of_an_installed_collection(tmp_path, monkeypatch):
    # `python -m dirsync_lab up` from an installed copy once wrote the lab's keys and passwords into the
    # collection directory, where the next `ansible-galaxy collection build` would pack them.
    from dirsync_lab.__main__ import default_lab_dir  # pylint: disable=import-outside-toplevel

    checkout = tmp_path / "checkout"
    installed = tmp_path / "collections" / "ansible_collections" / "entraid" / "dirsync"
    checkout.mkdir()
    installed.mkdir(parents=True)
    (installed / "MANIFEST.json").write_text("{}")
    state = tmp_path / "state"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    assert default_lab_dir(str(checkout), {}) == str(checkout / ".lab")
    assert default_lab_dir(str(installed), {"XDG_STATE_HOME": str(state)}) == str(state / "entraid-dirsync-lab")
    assert default_lab_dir(str(installed), {}) == str(tmp_path / "home" / ".local" / "state" / "entraid-dirsync-lab")
    assert default_lab_dir(str(installed), {"DIRSYNC_LAB_DIR": "/srv/lab"}) == "/srv/lab"
