"""Unit tests of _backup: the file format, atomic 0600 writes, and the refusals of load()."""

import datetime
import hashlib
import json
import os
import stat
import uuid

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _drift
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

TENANT = "e1f41257-abc5-59f8-83f4-66462474b972"
OTHER_TENANT = "00000000-1111-2222-3333-444444444444"
DOMAIN = "DC=lab,DC=test"
NOW = datetime.datetime(2026, 11, 28, 16, 29, 51, tzinfo=datetime.timezone.utc)


def ad(name, mobile=None, other=()):
    return _drift.ADUser(dn="CN=%s,OU=Sync,DC=lab,DC=test" % name, upn="%s@lab.test" % name, sam=name,
                         guid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), anchor="anchor-" + name, sid="S-1-5-21-1-2-3-1001",
                         mobile=mobile, other_mobile=tuple(other), enabled=True)


def entra(name, mobile=None):
    return _drift.EntraUser(id="id-" + name, upn="%s@lab.test" % name, onprem_upn="%s@lab.test" % name, mobile=mobile,
                            immutable_id="anchor-" + name, sid=None, dn=None)


def built(now=NOW, tenant=TENANT):
    """The backup document as phone_backup builds it (user lists made on demand from the read's records)."""
    ad_users = [ad("ann", "+1 425 555 0100", ["+1 425 555 0101", "+1 425 555 0102"]), ad("bob"), ad("zoë", "+49 30 1234")]
    entra_users = [entra("ann", "+14255550199"), entra("bob", "+1 206 555 0100")]
    return _backup.build(tenant, DOMAIN, ["OU=Sync,DC=lab,DC=test"], None, ad_users, entra_users, now=now)


def document(now=NOW, tenant=TENANT):
    """The same document with plain lists, as load() returns it."""
    doc = built(now, tenant)
    return dict(doc, ad_users=list(doc["ad_users"]), entra_users=list(doc["entra_users"]))


@pytest.fixture
def written(tmp_path):
    return _backup.write(str(tmp_path / "backups"), built())


def rewrite(path, change):
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    change(data)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def test_written_backup_is_private_named_and_loads_back_identical(tmp_path, written):
    directory = tmp_path / "backups"
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    assert os.path.basename(written) == "phone-backup_%s_20261128T162951Z.json" % TENANT
    assert os.listdir(directory) == [os.path.basename(written)]  # no temporary file left behind
    loaded = _backup.load(written, tenant_id=TENANT.upper(), ad_domains=["dc=lab,dc=test"])
    assert loaded == document()
    ann = _backup.ad_users_by_guid(loaded)[str(uuid.uuid5(uuid.NAMESPACE_DNS, "ann"))]
    assert ann["mobile"] == "+1 425 555 0100" and ann["other_mobile"] == ["+1 425 555 0101", "+1 425 555 0102"]
    assert loaded["counts"] == {"ad_users": 3, "ad_with_mobile": 2, "ad_with_other_mobile": 1, "entra_users": 2, "entra_with_mobile": 2}
    assert loaded["entra_users"][0] == {"id": "id-ann", "user_principal_name": "ann@lab.test", "mobile": "+14255550199",
                                        "immutable_id": "anchor-ann"}


def test_a_second_backup_in_the_same_second_gets_its_own_file(tmp_path, written):
    second = _backup.write(str(tmp_path / "backups"), document())
    assert second != written and second.endswith("-2.json")
    assert len(os.listdir(tmp_path / "backups")) == 2


def test_two_runs_writing_a_backup_in_the_same_second_both_keep_theirs(tmp_path, monkeypatch):
    # Both runs look for a free name before either has written: each sees the name free, as two
    # concurrent runs do. The second must still not replace the first run's backup.
    exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda path: False if "phone-backup_" in str(path) else exists(path))
    first = document()
    second = _backup.build(TENANT, DOMAIN, ["OU=Sync,DC=lab,DC=test"], None, [ad("carl", "+1 425 555 0177")], [], now=NOW)
    paths = [_backup.write(str(tmp_path / "backups"), first), _backup.write(str(tmp_path / "backups"), second)]
    assert paths[1] == paths[0][:-len(".json")] + "-2.json"
    assert sorted(os.listdir(tmp_path / "backups")) == sorted(os.path.basename(path) for path in paths)
    assert [_backup.load(path)["checksum"] for path in paths] == [first["checksum"], second["checksum"]]


def test_checksum_covers_the_header_too():
    doc = document()
    edited = dict(doc, tenant_id=OTHER_TENANT)
    assert _backup.checksum(edited) != doc["checksum"]
    assert _backup.checksum(dict(doc)) == doc["checksum"]


def test_an_edited_number_is_refused_as_corrupted(written):
    rewrite(written, lambda data: data["ad_users"][0].update(mobile="+1 999 999 9999"))
    with pytest.raises(InvalidInput, match="checksum does not match.*corrupted or edited.*Nothing was changed") as caught:
        _backup.load(written, tenant_id=TENANT)
    assert caught.value.details["backup_path"] == written


def test_a_truncated_file_is_refused(written):
    with open(written, "r+", encoding="utf-8") as handle:
        handle.truncate(200)
    with pytest.raises(InvalidInput, match="not valid JSON.*truncated or corrupted"):
        _backup.load(written)


def test_a_backup_of_another_tenant_is_refused_even_with_a_valid_checksum(tmp_path):
    path = _backup.write(str(tmp_path), document(tenant=OTHER_TENANT))
    with pytest.raises(InvalidInput, match="backup of tenant %s, but this run signs in to tenant %s" % (OTHER_TENANT, TENANT)):
        _backup.load(path, tenant_id=TENANT)


def test_a_backup_of_another_domain_is_refused(written):
    with pytest.raises(InvalidInput, match=r"backup of the AD domain\(s\) DC=lab,DC=test, but this run connects to DC=corp,DC=example"):
        _backup.load(written, tenant_id=TENANT, ad_domains=["DC=corp,DC=example"])


@pytest.mark.parametrize("change, message", [
    (lambda data: data.update(format="something.else"), "not an entraid.dirsync phone backup"),
    (lambda data: data.update(version=99), "format version 99 is not one this collection reads"),
])
def test_unknown_formats_are_refused(written, change, message):
    rewrite(written, change)
    with pytest.raises(InvalidInput, match=message):
        _backup.load(written)


def crafted(tmp_path, change):
    """A backup edited by ``change(document)`` with its checksum recomputed, as someone crafting it would."""
    doc = document()
    change(doc)
    doc["checksum"] = _backup.checksum(doc)
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_a_file_with_a_valid_checksum_but_wrong_structure_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="structure of an entraid.dirsync phone backup"):
        _backup.load(crafted(tmp_path, lambda doc: doc["ad_users"][0].pop("other_mobile")))


def test_a_missing_file_says_which(tmp_path):
    with pytest.raises(InvalidInput, match="nope.json cannot be used: the file does not exist"):
        _backup.load(str(tmp_path / "nope.json"))


def test_a_directory_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(Exception, match="Cannot create the backup directory .*file/sub"):
        _backup.write(str(blocker / "sub"), document())


def test_a_backup_others_may_write_is_refused_whatever_its_checksum(written):
    os.chmod(written, 0o666)
    with pytest.raises(InvalidInput, match="lets group or others write it"):
        _backup.load(written)


def test_a_user_outside_the_backups_search_bases_is_refused_even_with_a_valid_checksum(tmp_path):
    def add_admin(doc):
        doc["ad_users"].append(dict(doc["ad_users"][0], dn="CN=Domain Admin,CN=Users,DC=lab,DC=test", object_guid=str(uuid.uuid4())))
    with pytest.raises(InvalidInput, match="outside its own search bases"):
        _backup.load(crafted(tmp_path, add_admin))


def test_a_record_with_a_non_text_object_guid_is_a_clear_refusal(tmp_path):
    with pytest.raises(InvalidInput, match="has no object_guid or dn text"):
        _backup.load(crafted(tmp_path, lambda doc: doc["ad_users"][0].update(object_guid=12345)))


def test_odd_values_are_kept_byte_for_byte(tmp_path):
    users = [ad("space", "+1 206 555 0166 ", [" ", "+1\t2"]), ad("blank", " ")]
    path = _backup.write(str(tmp_path), _backup.build(TENANT, DOMAIN, ["OU=Sync,DC=lab,DC=test"], None, users, []))
    records = {record["user_principal_name"]: record for record in _backup.load(path)["ad_users"]}
    assert records["space@lab.test"]["mobile"] == "+1 206 555 0166 " and records["space@lab.test"]["other_mobile"] == [" ", "+1\t2"]
    assert records["blank@lab.test"]["mobile"] == " "


def whole_file_checksum(doc):
    """The checksum as the format defines it: SHA-256 of the canonical JSON of every key but checksum, as one string."""
    payload = {key: value for key, value in doc.items() if key != "checksum"}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_the_checksum_computed_record_by_record_is_the_formats_checksum(written):
    """Backups written before the checksum was streamed still verify: the digest is the same bytes' digest."""
    doc = document()
    assert doc["checksum"] == whole_file_checksum(doc) == _backup.checksum(built())
    assert _backup.load(written)["checksum"] == whole_file_checksum(json.load(open(written, encoding="utf-8")))
    assert _backup.checksum(dict(doc, ad_users=[], entra_users=[])) == whole_file_checksum(dict(doc, ad_users=[], entra_users=[]))


def large(tmp_path, count=3000):
    users = [ad("user%05d" % number, "+1 425 555 %04d" % number, ["+1 206 555 %04d" % number] * (number % 3))
             for number in range(count)]
    cloud = [entra("user%05d" % number, "+1 312 555 %04d" % number) for number in range(count)]
    return _backup.write(str(tmp_path), _backup.build(TENANT, DOMAIN, ["OU=Sync,DC=lab,DC=test"], None, users, cloud, now=NOW))


def test_a_backup_larger_than_a_read_chunk_streams_back_identical(tmp_path, monkeypatch):
    path = large(tmp_path)
    assert os.path.getsize(path) > 4 * 65536  # records cross the stream's chunk boundaries
    with open(path, encoding="utf-8") as handle:
        whole = json.load(handle)
    monkeypatch.setattr(_backup, "_whole", None)  # what phone_backup writes is streamed, never read whole
    assert _backup.load(path) == whole


def test_only_the_records_asked_for_are_kept_and_every_record_is_still_verified(tmp_path):
    path = large(tmp_path)
    wanted = {str(uuid.uuid5(uuid.NAMESPACE_DNS, "user00007")), str(uuid.uuid5(uuid.NAMESPACE_DNS, "user02999"))}
    loaded = _backup.load(path, keep_ad=lambda record: record if record["object_guid"] in wanted else None,
                          keep_entra=lambda record: record["mobile"] if record["id"] == "id-user00042" else None)
    assert sorted(record["user_principal_name"] for record in loaded["ad_users"]) == ["user00007@lab.test", "user02999@lab.test"]
    assert loaded["entra_users"] == ["+1 312 555 0042"]
    assert loaded["counts"]["ad_users"] == 3000
    rewrite(path, lambda data: data["ad_users"][1500].update(mobile="+1 999 999 9999"))  # a record nobody keeps
    with pytest.raises(InvalidInput, match="checksum does not match"):
        _backup.load(path, keep_ad=lambda record: None, keep_entra=lambda record: None)


def test_a_valid_backup_in_another_key_order_is_read_whole_and_verifies(tmp_path, written):
    """A tool that pretty-prints or sorts the file changes no content: the checksum (canonical JSON) still holds."""
    with open(written, encoding="utf-8") as handle:
        data = json.load(handle)
    for number, dump in enumerate((lambda: json.dumps(data, sort_keys=True, indent=2),
                                   lambda: json.dumps(dict(reversed(list(data.items())))))):
        path = tmp_path / ("reordered-%d.json" % number)
        path.write_text(dump(), encoding="utf-8")
        os.chmod(path, 0o600)
        assert _backup.load(str(path)) == data


@pytest.mark.parametrize("tail, message", [(" {}", "not valid JSON.*Extra data"), ("\n\n", None)])
def test_text_after_the_backup_is_refused_and_blank_lines_are_not(written, tail, message):
    with open(written, "a", encoding="utf-8") as handle:
        handle.write(tail)
    if message:
        with pytest.raises(InvalidInput, match=message):
            _backup.load(written)
    else:
        assert _backup.load(written) == document()
