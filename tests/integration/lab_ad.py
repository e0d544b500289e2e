"""The lab's AD forests as tests read them directly, over their own LDAP connections (never through the collection)."""

from dirsync_lab import samba


def forests(lab):
    """Every forest of the lab, forest A (lab.test) first: [{"name", "ldap"}] (a one-forest lab: lab.json's "ldap")."""
    return lab.get("forests") or [{"name": "lab.test", "ldap": lab["ldap"]}]


def connections(lab, **options):
    """[(forest, ldap3 connection bound as the forest's administrator)]; ``options`` go to ldap3.Connection."""
    return [(forest, samba.connect(forest["ldap"], **options)) for forest in forests(lab)]


def sync_scopes(lab):
    """The search bases of the sync scope in every forest."""
    return [base for forest in forests(lab) for base in forest["ldap"]["sync_scope"]]


def in_scope(lab, dn):
    return any(dn.lower().endswith("," + base.lower()) for base in sync_scopes(lab))


def paged(connection, base, ldap_filter, attributes):
    """Every entry under ``base`` (subtree) as ldap3's dicts, paging past 1,000."""
    return [item for item in connection.extend.standard.paged_search(base, ldap_filter, attributes=attributes, paged_size=500, generator=True)
            if item.get("type") == "searchResEntry"]
