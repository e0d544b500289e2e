# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Several AD sources of one tenant (forests, or domains of a forest, synced into it), used as one directory.

A source is one domain's connection (its domain controllers, credentials and TLS settings) and the search bases of its
users in the sync scope. The option ``ad_sources`` lists them; an option a source leaves out is the module's own (one CA
file or timeout serves all). Without ``ad_sources`` the module's ``ad_*`` options are the one source, named after its
domain (``lab.test`` for DC=lab,DC=test).

``ADSources`` offers what the modules ask of AD: users are looked up in every source (a name found in two is ambiguous),
a domain-wide search runs in every source, and a read or a write goes to the source whose domain holds the DN. Scope reads
give each source's ``ADClient`` and search bases (``sources``), so the callers read them at the same time.
"""

from __future__ import annotations

import collections

from ansible_collections.entraid.dirsync.plugins.module_utils import _identity
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ADClient
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import AmbiguousIdentity, DirsyncError, IdentityNotFound, InvalidInput


Source = collections.namedtuple("Source", "name client bases")


def source_configs(params, bases=None):
    """``[(name or None, ADClient params, search bases)]`` of the module's sources, checked before anything connects.

    ``bases``: the module's own search bases (scope modules), for the sources that give none.
    """
    items = params.get("ad_sources")
    if not items:
        return [(None, params, list(bases or []))]
    configs, seen = [], {}
    for index, item in enumerate(items):
        name = (item.get("name") or "").strip()
        if not name:
            raise InvalidInput("ad_sources[%d] has no name: give every AD source a name (for example its domain, contoso.com)." % index)
        if name.lower() in seen:
            raise InvalidInput("ad_sources names %r twice (items %d and %d): give every AD source its own name."
                               % (name, seen[name.lower()], index))
        seen[name.lower()] = index
        merged = dict(params)
        merged.pop("ad_sources", None)
        merged.update({key: value for key, value in item.items() if key.startswith("ad_") and value is not None})
        own = [base.strip() for base in item.get("search_bases") or [] if base and base.strip()]
        configs.append((name, merged, own or list(bases or [])))
    return configs


class ADSources:
    """The AD sources of a module run, connected; use as a context manager.

    ``sources`` is the list of ``Source(name, client, bases)``, in the order given; every ``client`` is a connected
    ``_ad.ADClient``.
    """

    def __init__(self, params, bases=None):
        self._configs = source_configs(params, bases)
        self.sources = []

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def connect(self):
        try:
            for name, params, bases in self._configs:
                client = ADClient(params)
                client.connect()
                source = Source(name or _identity.domain_name(client.base_dn), client, bases)
                self.sources.append(source)
                outside = [base for base in bases if not _identity.in_container(base, client.base_dn)]
                if outside:
                    raise InvalidInput("The search base(s) %s of the AD source %s are not in its domain (%s, at %s). Give each "
                                       "source the search bases of its own domain in ad_sources[].search_bases."
                                       % ("; ".join(outside), source.name, client.base_dn, client.host))
        except Exception:
            self.close()
            raise
        return self

    def close(self):
        """Close every connection; what the run was connected to (``describe``, ``bases``...) stays readable."""
        for source in self.sources:
            source.client.close()

    # -- what the run is connected to --------------------------------------------------

    @property
    def single(self):
        return len(self.sources) == 1

    @property
    def domains(self):
        """The naming context of each source, in order."""
        return [source.client.base_dn for source in self.sources]

    def describe(self):
        """What a report or a backup says of the sources: [{"name", "domain", "search_bases"}]."""
        return [{"name": source.name, "domain": source.client.base_dn, "search_bases": list(source.bases)} for source in self.sources]

    @property
    def bases(self):
        """The search bases of every source."""
        return [base for source in self.sources for base in source.bases]

    @property
    def reconnections(self):
        return [item for source in self.sources for item in source.client.reconnections]

    @property
    def recovered(self):
        return [item for source in self.sources for item in source.client.recovered]

    def source_of(self, dn):
        """The source whose domain holds ``dn``: the longest naming context it ends with; among sources of one domain,
        the one whose search bases hold it. InvalidInput when none or several do. With one source, that source (its domain
        controller answers for any DN, as it always has)."""
        if self.single:
            return self.sources[0]
        holding = [source for source in self.sources if _identity.in_container(dn, source.client.base_dn)]
        if holding:
            longest = max(len(_identity.normalise_dn(source.client.base_dn)) for source in holding)
            holding = [source for source in holding if len(_identity.normalise_dn(source.client.base_dn)) == longest]
        if len(holding) > 1:
            holding = [source for source in holding if _identity.under_any(dn, source.bases)] or holding
        if len(holding) == 1:
            return holding[0]
        if not holding:
            raise InvalidInput("%s is in none of the AD sources of this run (%s). Add its domain to ad_sources." % (
                dn, "; ".join("%s: %s" % (source.name, source.client.base_dn) for source in self.sources)))
        raise InvalidInput("%s is in the domain of several AD sources (%s) and under the search bases of none or several of them. "
                           "Give each source search_bases that do not overlap." % (dn, ", ".join(source.name for source in holding)))

    # -- what modules ask of AD --------------------------------------------------------

    def read(self, dn, attributes, ldap_filter="(objectClass=*)"):
        """``ADClient.read`` in the source of ``dn``; None when no source holds it (as for a DN that does not exist)."""
        try:
            source = self.source_of(dn)
        except InvalidInput:
            return None
        return _tagged(source, source.client.read(dn, attributes, ldap_filter=ldap_filter))

    def paged_search(self, base, ldap_filter, attributes, scope="subtree", page_size=1000, controls=None):
        """``ADClient.paged_search`` under ``base`` in its source, or, with no base, in every source's whole domain."""
        sources = [self.source_of(base)] if base else self.sources
        for source in sources:
            for entry in source.client.paged_search(base, ldap_filter, attributes, scope=scope, page_size=page_size, controls=controls):
                yield _tagged(source, entry)

    def resolve_users(self, identities, attributes, search_base=None):
        """``ADClient.resolve_users`` across the sources: ``{identity: entry or DirsyncError}``. A user found in one source
        is that source's (``entry["source"]`` names it); found in two, AmbiguousIdentity; in none, IdentityNotFound.
        A distinguished name is looked up in the source of its domain only (another domain's controller would refer it)."""
        identities = list(dict.fromkeys(identities))
        sources = [self.source_of(search_base)] if search_base else self.sources
        if len(sources) == 1:
            return {identity: _tagged(sources[0], entry)
                    for identity, entry in sources[0].client.resolve_users(identities, attributes, search_base).items()}
        results, names = {}, []
        for identity in identities:
            if _is_dn(identity):
                try:
                    source = self.source_of(identity)
                except InvalidInput:
                    results[identity] = _not_found(identity, sources)
                    continue
                results[identity] = _tagged(source, source.client.resolve_users([identity], attributes)[identity])
            else:
                names.append(identity)
        if names:
            answers = [(source, source.client.resolve_users(names, attributes, search_base)) for source in sources]
            for identity in names:
                results[identity] = _combine(identity, [(source, answer[identity]) for source, answer in answers])
        return {identity: results[identity] for identity in identities}

    def resolve_user(self, identity, attributes, search_base=None):
        found = self.resolve_users([identity], attributes, search_base)[identity]
        if isinstance(found, DirsyncError):
            raise found
        return found

    def modify(self, dn, changes, rights_hint=None):
        """``ADClient.modify`` in the source that holds ``dn``."""
        return self.source_of(dn).client.modify(dn, changes, rights_hint=rights_hint)


def _tagged(source, entry):
    if isinstance(entry, dict):
        entry["source"] = source.name
    return entry


def _combine(identity, answers):
    """One source's answer for ``identity`` from every source's: [(source, entry or DirsyncError)]. Ambiguous when it is
    found in two sources, or found in one and ambiguous in another."""
    found = [(source, entry) for source, entry in answers if not isinstance(entry, DirsyncError)]
    ambiguous = [(source, error) for source, error in answers if isinstance(error, AmbiguousIdentity)]
    if len(found) == 1 and not ambiguous:
        return _tagged(*found[0])
    if found:
        where = ["%s (%s)" % (entry["dn"], source.name) for source, entry in found]
        where += ["%s (%s)" % (dn, source.name) for source, error in ambiguous for dn in error.details.get("matches") or ()]
        return AmbiguousIdentity("%r matches users in %d AD sources: %s. Name the user by distinguished name or objectGUID."
                                 % (identity, len(found) + len(ambiguous), "; ".join(where)), identity=identity,
                                 matches=[text.rsplit(" (", 1)[0] for text in where])
    errors = [entry for _source, entry in answers if not isinstance(entry, IdentityNotFound)]
    if errors:
        return errors[0]  # ambiguous within one source, or a bad identity: that source's own message
    return _not_found(identity, [source for source, _entry in answers])


def _is_dn(identity):
    try:
        return _identity.identity_kind(identity) == "dn"
    except InvalidInput:
        return False


def _not_found(identity, sources):
    return IdentityNotFound("No AD user matches %r in any AD source (%s). Give the UPN, sAMAccountName, distinguished name, "
                            "objectGUID or SID of an existing user account." % (identity, ", ".join(source.name for source in sources)),
                            identity=identity)
