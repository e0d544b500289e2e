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
    modules_dir = os.path.join(ROOT, "plugins", "modules")
    if not os.path.isdir(modules_dir):
        return []
    return sorted(name[:-3] for name in os.listdir(modules_dir) if name.endswith(".py") and name != "__init__.py")


def _modules_documenting(fragment):
    """Modules whose DOCUMENTATION extends the given connection doc fragment."""
    names = []
    for name in _module_names():
        with open(os.path.join(ROOT, "plugins", "modules", name + ".py"), encoding="utf-8") as handle:
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


@pytest.mark.parametrize("relpath", ["requirements.txt", "requirements-lab.txt"])
def test_requirement_lines_parse_and_carry_a_reason(relpath):
    with open(os.path.join(ROOT, relpath), encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    requirements = [line for line in lines if line and not line.startswith(("#", "-r "))]
    assert requirements
    for line in requirements:
        spec, sep, reason = line.partition(" #")
        assert sep and reason.strip(), "%s: %r needs a '# reason' comment" % (relpath, line)
        assert Requirement(spec.strip()).specifier, "%s: %r has no version bound" % (relpath, line)


def test_execution_environment_points_at_existing_files():
    ee = _load_yaml("meta/execution-environment.yml")
    assert ee["version"] == 3
    for key in ("python", "system"):
        assert os.path.isfile(os.path.join(ROOT, ee["dependencies"][key]))


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
              if name.split("/")[0] in (".venv", ".lab", ".build", ".git", ".pytest_cache")
              or "__pycache__" in name.split("/") or name.startswith("tests/output")]
    assert not leaked
