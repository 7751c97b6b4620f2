"""Which properties a staff member may act on: the property-scoped access rule.

One rule for every staff surface (the advisors' WeCom commands, the case pages, the console):
a staff userid may see and act on a property's guests and cases only when the SLA policy
(`SLA_POLICY_FILE`) names them for that property: on its roster, as one of its supervisors, or
as its duty manager. A property with no section of its own is served by the `default` section's
people (the same fallback the pager uses to route its cases), and a case with no property is a
`default` case.

Pure functions of the policy, so they cost nothing to call per request and the tests need no
database. Callers build one `StaffAccess` from the policy they already loaded (the paging service,
the console app) instead of reading the file again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from bot.paging.policy import DEFAULT_PROPERTY, Policy, PropertyPolicy


class AccessDenied(PermissionError):
    """A staff member asked for a property (or a guest, or a case) they are not rostered for."""

    def __init__(self, userid: str, property_id: Optional[str]):
        self.userid = userid
        self.property_id = property_id or DEFAULT_PROPERTY
        super().__init__(f"{userid!r} is not rostered for property {self.property_id!r}")


def _people_ids(prop: PropertyPolicy) -> frozenset:
    people = (*prop.roster, *prop.supervisors, *([prop.duty_manager] if prop.duty_manager else []))
    return frozenset(person.userid for person in people)


@dataclass(frozen=True)
class StaffAccess:
    """The access rule over one loaded policy."""

    policy: Policy

    def is_staff(self, userid: Optional[str]) -> bool:
        """Named anywhere in the policy (may use the staff surfaces at all)."""
        return bool(userid) and userid in self.policy.people()

    def properties(self, userid: Optional[str]) -> frozenset:
        """Property ids (as the policy names them) the userid is rostered for."""
        if not userid:
            return frozenset()
        return frozenset(
            pid for pid, prop in self.policy.properties.items() if userid in _people_ids(prop)
        )

    def allows(self, userid: Optional[str], property_id: Optional[str]) -> bool:
        """May `userid` act on `property_id` (None or an unknown id: the default section)?"""
        if not userid:
            return False
        return userid in _people_ids(self.policy.property(property_id))

    def allows_any(self, userid: Optional[str], property_ids: Iterable[Optional[str]]) -> bool:
        """For a guest: allowed on at least one of the properties they are linked to (bookings,
        orders, cases). A guest linked to none is a `default` guest."""
        ids = list(property_ids) or [None]
        return any(self.allows(userid, pid) for pid in ids)

    def require(self, userid: Optional[str], property_id: Optional[str]) -> None:
        """Raise AccessDenied unless `allows`."""
        if not self.allows(userid, property_id):
            raise AccessDenied(userid or "", property_id)
