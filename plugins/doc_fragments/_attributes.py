# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared ``attributes:`` documentation. Private to this collection (leading underscore): may change at any time."""

from __future__ import annotations


class ModuleDocFragment:

    # Base descriptions; a module adds its own "support:" values under the same keys.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the directory.
  diff_mode:
    description: Will return details on what has changed (or would change in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row with the same arguments, the second run reports no change (outside check mode),
        provided nothing else changed the directory in between.
"""

    # For modules that only read (info modules, comparisons such as phone_compare): they never change anything.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
"""

    # Membership of the action groups that carry connection options via module_defaults.
    ACTION_GROUP_GRAPH = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/entraid.dirsync.graph) in C(module_defaults) to set the Graph connection options for this module.
    support: full
    membership:
      - entraid.dirsync.graph
"""

    ACTION_GROUP_GRAPH_AD = r"""
options: {}
attributes:
  action_group:
    description:
      - Use C(group/entraid.dirsync.graph) in C(module_defaults) to set the Graph connection options,
        and C(group/entraid.dirsync.ad) to set the AD connection options for this module.
    support: full
    membership:
      - entraid.dirsync.graph
      - entraid.dirsync.ad
"""
