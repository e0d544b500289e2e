# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """The options naming the users that phone_backup, phone_compare and phone_reconcile read (_drift.scope_argument_spec)."""

    DOCUMENTATION = r"""
options:
  search_bases:
    description:
      - Distinguished names of the AD containers to read users from (subtree), usually the OUs in the sync scope.
      - A user under two overlapping bases is read once.
      - With O(ad_sources), these are the search bases of the sources that give none of their own; required unless every
        source gives its own.
    type: list
    elements: str
  ldap_filter:
    description:
      - An LDAP filter ANDed with the filter for user objects, for example V((department=Sales)).
      - The outer parentheses are optional.
    type: str
  graph_page_size:
    description:
      - Users per Microsoft Graph page (C($top)), 1 to 999. Lower it only when pages time out on a slow connection.
    type: int
    default: 999
  ad_read_connections:
    description:
      - How many connections the read of the scope opens to the domain controller at once, 1 to 8. Each runs one paged
        search over a part of the scope (a range of sAMAccountName in each search base; the parts are disjoint and together
        cover every user), so a large scope is read in less time.
      - The domain controller sees at most this many searches from one run at a time. V(1) reads the scope on one
        connection, one search base after another.
    type: int
    default: 2
"""
