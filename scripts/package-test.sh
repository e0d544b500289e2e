#!/usr/bin/env bash
# The collection as users and the ecosystem's tools get it. Parts (default: all, in this order):
#   changelog  antsibull-changelog lint, and a release on a copy (the repository's version and fragments stay):
#              no plugin both under "New ..." and in a change entry, only action groups that exist
#   ee         ansible-builder accepts the sample EE definition in docs/execution-environment.md (`create`: the build
#              context only, no container engine)
#   installed  build the tarball, check it holds no local state (venv, lab secrets, phone backups, reports,
#              caches) though the tree it is built from has them all, install it into an empty collections path and
#              use it from there: ansible-doc for every module, ansible-builder's view of its requirements, where
#              its lab keeps its state, and the drift_report playbook against the running lab (make lab-up)
# Usage: scripts/package-test.sh [changelog|ee|installed]...      Work files: .build/package/
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=$root/.venv/bin
py=$bin/python
work=$root/.build/package
export PATH="$bin:$PATH"
fail() { echo "package-test.sh: $*" >&2; exit 1; }

# A copy of the files git knows about (tracked, plus untracked ones not ignored), as DEST/ansible_collections/entraid/dirsync.
copy_collection() {
    local dest=$1/ansible_collections/entraid/dirsync
    rm -rf "$1"; mkdir -p "$dest"
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' path; do [ -e "$path" ] && printf '%s\0' "$path"; done \
        | tar --null --files-from=- -cf - | tar -xf - -C "$dest"
    echo "$dest"
}

part_changelog() {
    antsibull-changelog lint
    local src; src=$(copy_collection "$work/changelog")
    # antsibull-changelog runs ansible-doc on the copy to list the plugins that are new in this version.
    (cd "$src" && ANSIBLE_COLLECTIONS_PATH="$work/changelog" antsibull-changelog release >/dev/null)
    "$py" - "$src/CHANGELOG.rst" "$src/meta/runtime.yml" <<'PYEOF'
import re, sys, yaml
text = open(sys.argv[1], encoding="utf-8").read()
groups = set(yaml.safe_load(open(sys.argv[2], encoding="utf-8"))["action_groups"])
problems = []
# Sections are RST titles underlined with '-'; entries start with '- '.
sections = dict(re.findall(r"^([^\n]+)\n-+\n\n(.*?)(?=^[^\n]+\n[-=]+\n|\Z)", text, flags=re.S | re.M))
new = {m.group(1).split(".")[-1] for title, body in sections.items() if title.startswith("New ")
       for m in re.finditer(r"^- ([\w.]+) - ", body, flags=re.M)}
for title, body in sections.items():
    if title.startswith("New "):
        continue
    for entry in re.findall(r"^- (.+)$", body, flags=re.M):
        subject = re.split(r" - ", entry, maxsplit=1)[0]
        if re.search(r"\b(roles?|playbooks?)$", subject):  # a role may share a module's name
            continue
        named = set(re.findall(r"[\w.]+", subject.replace(" and ", ",")))
        twice = sorted(n.split(".")[-1] for n in named if n.split(".")[-1] in new)
        if twice:
            problems.append("%s: %s already under New ...: %s" % (title, ", ".join(twice), entry[:80]))
for group in re.findall(r"group/entraid\.dirsync\.(\w+)", text):
    if group not in groups:
        problems.append("names group/entraid.dirsync.%s, which meta/runtime.yml does not define" % group)
if not new:
    problems.append("no New Modules section: the release found no new plugin")
print("\n".join(problems) or "changelog: %d new plugins, each listed once" % len(new))
sys.exit(1 if problems else 0)
PYEOF
}

part_ee() {
    local dir=$work/ee
    rm -rf "$dir"; mkdir -p "$dir"
    # The sample is the ```yaml block that starts with '# execution-environment.yml'.
    "$py" - docs/execution-environment.md "$dir/execution-environment.yml" <<'PYEOF'
import re, sys
blocks = [b for b in re.findall(r"```ya?ml\n(.*?)```", open(sys.argv[1], encoding="utf-8").read(), flags=re.S)
          if b.startswith("# execution-environment.yml")]
if len(blocks) != 1:
    sys.exit("%s: expected one ```yaml block starting with '# execution-environment.yml', found %d" % (sys.argv[1], len(blocks)))
open(sys.argv[2], "w", encoding="utf-8").write(blocks[0])
PYEOF
    (cd "$dir" && ansible-builder create --file execution-environment.yml --context context --output-filename Containerfile -v 1)
    [ -f "$dir/context/Containerfile" ] || fail "ansible-builder create wrote no Containerfile"
    grep -q "entraid.dirsync" "$dir/context/_build/requirements.yml" || fail "the EE's galaxy requirements do not name entraid.dirsync"
}

part_installed() {
    local src tarball collections=$work/installed/collections run=$work/installed/run
    src=$(copy_collection "$work/build")
    # Everything a checkout accumulates that must not ship, as the real run left it: the venv, the lab's
    # secrets, the phone backups and reports the playbooks write where they run, ansible-lint's cache.
    for leftover in .venv/bin/python .lab/lab.json .lab/pki/ca.key backups/lab/phone-backup_1.json \
                    reports/lab/drift-1.csv playbooks/backups/lab/phone-backup_2.json playbooks/reports/lab/drift-2.csv \
                    .ansible/collections/ansible_collections/entraid/dirsync/galaxy.yml .build/x tests/output/junit/x.xml \
                    plugins/modules/__pycache__/x.pyc .pytest_cache/v entraid-dirsync-0.0.1.tar.gz; do
        mkdir -p "$src/$(dirname "$leftover")"; echo '{"secret": "must not ship"}' > "$src/$leftover"
    done
    mkdir -p "$work/dist"; rm -f "$work"/dist/*.tar.gz
    ansible-galaxy collection build --output-path "$work/dist" "$src" >/dev/null
    tarball=$(ls "$work"/dist/entraid-dirsync-*.tar.gz)
    local listing leaked
    listing=$(tar -tzf "$tarball")
    leaked=$(grep -E '(^|/)(\.venv|\.lab|\.build|\.git|\.ansible|\.pytest_cache|backups|reports|__pycache__)(/|$)|^tests/output(/|$)|\.(tar\.gz|pyc)$' <<<"$listing" || true)
    [ -z "$leaked" ] || fail "the tarball holds local state:
$leaked"
    for required in README.md meta/runtime.yml meta/execution-environment.yml requirements.txt requirements-ee.txt bindep.txt \
                    plugins/modules/entra_connect_cmdlet.ps1 plugins/modules/entra_connect_cmdlet.yml playbooks/drift_report.yml \
                    lab/dirsync_lab/__main__.py; do
        grep -qx "$required" <<<"$listing" || fail "the tarball lacks $required"
    done
    echo "tarball: $(wc -l <<<"$listing") entries, none of them local state"

    rm -rf "$collections" "$run"; mkdir -p "$collections" "$run"
    # From here on, only the installed copy: not the checkout's .venv/collections link, not the working directory.
    export ANSIBLE_COLLECTIONS_PATH=$collections ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_NOCOLOR=1
    ansible-galaxy collection install --offline -p "$collections" "$tarball" >/dev/null
    local installed=$collections/ansible_collections/entraid/dirsync
    cd "$run"

    local modules count=0 module out
    modules=$(find "$installed/plugins/modules" -maxdepth 1 -type f -printf '%f\n' | sed -nE 's/^([a-z][a-z0-9_]*)\.(py|ps1)$/\1/p' | sort -u)
    for module in $modules; do
        out=$(ansible-doc "entraid.dirsync.$module" 2>"$run/ansible-doc.err") || fail "ansible-doc entraid.dirsync.$module: $(cat "$run/ansible-doc.err")"
        ! grep -q WARNING "$run/ansible-doc.err" || fail "ansible-doc entraid.dirsync.$module warns: $(cat "$run/ansible-doc.err")"
        grep -qF "$installed/plugins/modules/" <<<"$out" || fail "ansible-doc entraid.dirsync.$module did not read the installed copy"
        count=$((count + 1))
    done
    [ "$count" -ge 12 ] || fail "only $count modules in the installed collection"
    echo "ansible-doc: $count modules from $installed"

    # What ansible-builder collects from the installed collection for an execution environment.
    local introspect
    introspect=$("$py" "$("$py" -c 'import ansible_builder, os; print(os.path.dirname(ansible_builder.__file__))')/_target_scripts/introspect.py" \
        introspect "$collections")
    for wanted in "msal>=" "ldap3>=" "requests>=" "gssapi>=" "krb5-workstation" "libkrb5-dev"; do
        grep -qF -- "$wanted" <<<"$introspect" || fail "ansible-builder does not read '$wanted' from the installed collection:
$introspect"
    done
    echo "ansible-builder introspect: Python and system requirements found (gssapi for Kerberos included)"

    # The lab started from the installed copy keeps its secrets in the user's state directory, not in the collection.
    local lab_dir
    lab_dir=$(PYTHONPATH="$installed/lab" XDG_STATE_HOME="$work/installed/state" "$py" -c \
        'from dirsync_lab.__main__ import _parser; print(_parser().parse_args(["status"]).dir)')
    [ "$lab_dir" = "$work/installed/state/entraid-dirsync-lab" ] || fail "the installed lab would keep its state in $lab_dir"
    echo "lab from the installed collection: state in \$XDG_STATE_HOME/entraid-dirsync-lab"

    local inventory=$root/.lab/inventory.yml
    [ -f "$inventory" ] || fail "the lab is not running ($inventory missing): start it with make lab-up"
    ansible-playbook -i "$inventory" entraid.dirsync.drift_report >"$run/drift_report.log" 2>&1 \
        || { tail -n 40 "$run/drift_report.log"; fail "entraid.dirsync.drift_report from the installed collection failed"; }
    grep -qF "$installed/" "$run/drift_report.log" || grep -q "Report: $run/reports/" "$run/drift_report.log" \
        || { tail -n 20 "$run/drift_report.log"; fail "drift_report did not write its report where it ran"; }
    ls "$run"/reports/lab/drift-*.csv >/dev/null || fail "drift_report wrote no CSV report under $run/reports/lab"
    echo "drift_report from the installed collection: $(ls "$run"/reports/lab/drift-*.csv)"
}

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(changelog ee installed)
for part in "${parts[@]}"; do
    case $part in
        changelog|ee|installed) echo "--- package-test.sh $part"; (part_"$part") ;;
        *) fail "unknown part '$part' (changelog, ee, installed)" ;;
    esac
done
