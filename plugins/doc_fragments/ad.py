# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """Connection options of modules that talk to Active Directory over LDAP."""

    DOCUMENTATION = r"""
options:
  ad_server:
    description:
      - Host name of the domain controller to connect to, or a list of domain controllers of one domain, tried in order.
      - A controller that cannot be reached or does not answer within O(ad_connect_timeout) is skipped; one that refuses the
        certificate or the bind is not.
      - If the connection is lost during a run, the module connects again, to the next controller first, within six times
        O(ad_connect_timeout); a write whose outcome was lost is read again and written only if it is not in AD yet.
      - An item may give its own port as C(host:port) (C([address]:port) for IPv6); the others use O(ad_port).
      - A single string is a list of one; a comma-separated string is split.
      - With O(ad_cert_validation=always) each must be a name in the controller's certificate.
      - With O(ad_auth_protocol=kerberos) each must be the controller's fully qualified name (the service principal is C(ldap/<server>)).
      - If not set, the environment variable E(ENTRAID_AD_SERVER) (comma-separated) is used. One of the two is required.
    type: list
    elements: str
  ad_port:
    description:
      - TCP port of the LDAP service, from V(1) to V(65535).
      - Defaults to V(636) with O(ad_tls_mode=ldaps) and V(389) otherwise.
      - If not set, the environment variable E(ENTRAID_AD_PORT) is used.
    type: int
  ad_tls_mode:
    description:
      - V(ldaps) connects with TLS from the start (LDAPS).
      - V(start_tls) connects in plain LDAP and upgrades to TLS with StartTLS before binding.
      - V(none) uses no encryption. A simple bind then sends the password in clear text and is refused unless O(ad_allow_plaintext=true).
      - If not set, the environment variable E(ENTRAID_AD_TLS_MODE) is used.
    type: str
    choices: [ldaps, start_tls, none]
    default: ldaps
  ad_cert_validation:
    description:
      - How the domain controller's TLS certificate is checked.
      - V(always) checks that it is issued by a trusted CA (O(ad_ca_cert) or the system store) and names O(ad_server).
      - V(ignore_hostname) checks the CA but not the name.
      - V(ignore) checks nothing; use it only in a lab.
      - If not set, the environment variable E(ENTRAID_AD_CERT_VALIDATION) is used.
    type: str
    choices: [always, ignore_hostname, ignore]
    default: always
  ad_ca_cert:
    description:
      - The CA certificate(s) that issued the domain controller's certificate, as the path of a PEM file or as PEM text.
      - A path may start with C(~) and contain environment variables (C($HOME/ca.pem)); they are expanded on the host that runs
        the module.
      - If not set, the system's trusted CAs are used. E(REQUESTS_CA_BUNDLE) does not apply to LDAP.
      - If not set, the environment variable E(ENTRAID_AD_CA_CERT) is used.
    type: str
  ad_auth_protocol:
    description:
      - V(simple) binds with O(ad_username) and O(ad_password); use it over LDAPS or StartTLS.
      - V(kerberos) binds with SASL GSSAPI using the Kerberos ticket of the user running the module (C(kinit), or a keytab named by
        E(KRB5_CLIENT_KTNAME)). It needs the Python package C(gssapi). O(ad_password) must not be set.
      - Kerberos binds go over TLS (O(ad_tls_mode=ldaps) or O(ad_tls_mode=start_tls)), which a controller that requires LDAP signing
        accepts; no SASL signing or sealing is used.
      - NTLM is not offered, the library's NTLM needs MD4, which OpenSSL 3 disables.
      - If not set, the environment variable E(ENTRAID_AD_AUTH_PROTOCOL) is used.
    type: str
    choices: [simple, kerberos]
    default: simple
  ad_username:
    description:
      - The bind account, as a user principal name (V(svc-dirsync@example.com)) or a distinguished name.
      - Required with O(ad_auth_protocol=simple).
      - If not set, the environment variable E(ENTRAID_AD_USERNAME) is used.
    type: str
  ad_password:
    description:
      - The bind account's password. Required with O(ad_auth_protocol=simple).
      - If not set, the environment variable E(ENTRAID_AD_PASSWORD) is used.
    type: str
  ad_allow_plaintext:
    description:
      - Allow a simple bind over an unencrypted connection (O(ad_tls_mode=none)), which sends the password in clear text.
    type: bool
    default: false
  ad_connect_timeout:
    description:
      - Seconds to wait for the domain controller while connecting, at least V(1). It bounds the TCP connection and,
        separately, each answer until the connection is set up (TLS handshake, StartTLS, bind, reading the RootDSE),
        so a controller that accepts connections but stops answering fails within a few times this value.
      - Once connected, each answer (for example a page of 1,000 users) is awaited up to six times this value
        (60 seconds by default).
    type: int
    default: 10
  ad_sources:
    description:
      - Several AD sources synchronized into the one tenant (forests, or domains of a forest), read and written as one
        directory. Without it, the options above are the one source, named after its domain (V(lab.test) for V(DC=lab,DC=test)).
      - Each item is one domain's connection and sync scope. An option an item leaves out is the module's own (above),
        so settings every source shares (O(ad_ca_cert), O(ad_connect_timeout)) are given once.
      - Users are read from every source at the same time and paired across all of them by source anchor, as the sync
        engine joins forests; an anchor claimed in two sources is ambiguous. Every write goes to the source whose domain
        holds the user. A user named by sAMAccountName or UPN must be found in exactly one source.
      - Reports, backups and results name each user's source (C(ADSource), C(source), C(ad_source)).
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The name of the source in reports, backups and messages, for example its DNS domain. Unique (without case).
        type: str
        required: true
      search_bases:
        description:
          - The distinguished names of this source's containers in the sync scope, for the modules that read a scope
            (phone_backup, phone_compare, phone_reconcile, preflight). Without it the module's own C(search_bases) apply.
          - They must be in the source's domain.
        type: list
        elements: str
      ad_server:
        description: The domain controllers of this source, tried in order (as O(ad_server)).
        type: list
        elements: str
      ad_port:
        description: As O(ad_port).
        type: int
      ad_tls_mode:
        description: As O(ad_tls_mode).
        type: str
        choices: [ldaps, start_tls, none]
      ad_cert_validation:
        description: As O(ad_cert_validation).
        type: str
        choices: [always, ignore_hostname, ignore]
      ad_ca_cert:
        description: As O(ad_ca_cert).
        type: str
      ad_auth_protocol:
        description: As O(ad_auth_protocol).
        type: str
        choices: [simple, kerberos]
      ad_username:
        description: This source's bind account (as O(ad_username)).
        type: str
      ad_password:
        description: This source's bind password (as O(ad_password)).
        type: str
      ad_allow_plaintext:
        description: As O(ad_allow_plaintext).
        type: bool
      ad_connect_timeout:
        description: As O(ad_connect_timeout).
        type: int
requirements:
  - ldap3
  - gssapi (only for Kerberos authentication)
notes:
  - See C(docs/ad-connection.md) in the collection for certificates, bind account rights and Kerberos.
"""
