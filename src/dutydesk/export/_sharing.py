"""Which records a sharing mode lets through (spec §3): scopes and the effective scope."""

from __future__ import annotations

import enum
import logging

from dutydesk.export.request import SharingMode

logger = logging.getLogger(__name__)


class SharingScope(enum.IntEnum):
    """How widely a participant lets their data be shared; a larger value shares more.

    NO_SHARING: nobody outside the study. SPONSORS_AND_PARTNERS: the study's sponsors and
    partners. ALL_QUALIFIED_RESEARCHERS: any qualified researcher.
    """

    NO_SHARING = 0
    SPONSORS_AND_PARTNERS = 1
    ALL_QUALIFIED_RESEARCHERS = 2


def parse_scope(text: str | None) -> SharingScope:
    """A record's `userSharingScope` by exact name; blank or unknown text is NO_SHARING."""
    if text is None or not text.strip():
        return SharingScope.NO_SHARING
    try:
        return SharingScope[text]
    except KeyError:
        logger.warning("Could not parse sharing scope %s", text)
        return SharingScope.NO_SHARING


def effective_scope(record_scope: SharingScope, user_scope: SharingScope | None) -> SharingScope:
    """The more restrictive of the record's scope and the user's current one (None: NO_SHARING)."""
    return min(record_scope, user_scope if user_scope is not None else SharingScope.NO_SHARING)


# The request module owns SharingMode (ALL, SHARED, PUBLIC_ONLY); one enum for the project.
_MINIMUM_SCOPES = {
    SharingMode.ALL: SharingScope.NO_SHARING,
    SharingMode.SHARED: SharingScope.SPONSORS_AND_PARTNERS,
    SharingMode.PUBLIC_ONLY: SharingScope.ALL_QUALIFIED_RESEARCHERS,
}


def minimum_scope(mode: SharingMode) -> SharingScope:
    """The narrowest effective scope a sharing mode still accepts."""
    return _MINIMUM_SCOPES[mode]


def mode_accepts(mode: SharingMode, scope: SharingScope) -> bool:
    """Whether a record with this effective scope is exported in this sharing mode."""
    return scope >= _MINIMUM_SCOPES[mode]
