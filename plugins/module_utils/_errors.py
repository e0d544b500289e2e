# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every failure a user of the collection can see.

Modules raise these; ``_module.run_module`` turns them into one ``fail_json``.
The message (``str(error)``) must say what went wrong *and* what to do.
"""

from __future__ import annotations


class DirsyncError(Exception):
    """Base class. ``details`` become extra keys of the failed task result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self):
        return self.msg


class InvalidInput(DirsyncError):
    """A parameter or value is not acceptable; nothing was changed."""


class AuthError(DirsyncError):
    """Signing in to the Microsoft identity platform failed."""


class GraphError(DirsyncError):
    """Microsoft Graph answered with an error (after retries where they apply)."""

    def __init__(self, msg, status=None, code=None, graph_message=None, request_id=None, **details):
        super().__init__(msg, status=status, code=code, request_id=request_id, **details)
        self.status = status
        self.code = code
        self.graph_message = graph_message
        self.request_id = request_id


class ADError(DirsyncError):
    """Active Directory (LDAP) failed or refused an operation."""


class IdentityNotFound(DirsyncError):
    """A named user matches no object."""


class AmbiguousIdentity(DirsyncError):
    """A named user matches more than one object."""
