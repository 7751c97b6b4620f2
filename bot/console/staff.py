"""Who may use the staff console, in which roles, and on which properties.

Roles come from two places, read once when the console starts:
- the SLA policy (`SLA_POLICY_FILE`): a property's roster are advisors, its supervisors and duty
  manager are supervisors; both see only the properties the policy names them for (the access
  rule of `bot.access`);
- the console staff file (`CONSOLE_STAFF_FILE`, default `data/console_staff.yml`): marketers and
  admins, who are not paged and so are not on the roster.

What each role may open:
    /advisor            advisor, supervisor (cases of their properties only)
    /reports            supervisor, admin
    /marketing          marketer, admin
    /admin              admin
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

from bot.access import StaffAccess
from bot.core.errors import DataError
from bot.paging.policy import Policy
from bot.core.data import read_yaml

ADVISOR, SUPERVISOR, MARKETER, ADMIN = "advisor", "supervisor", "marketer", "admin"
ROLES = (ADVISOR, SUPERVISOR, MARKETER, ADMIN)
ROLE_NAMES = {ADVISOR: "顾问", SUPERVISOR: "主管", MARKETER: "市场", ADMIN: "管理员"}

# Which roles may open each area of the console.
AREAS: Mapping[str, frozenset] = {
    "advisor": frozenset({ADVISOR, SUPERVISOR}),
    "reports": frozenset({SUPERVISOR, ADMIN}),
    "marketing": frozenset({MARKETER, ADMIN}),
    "admin": frozenset({ADMIN}),
}


class StaffFileError(DataError):
    """The console staff file is missing or malformed (every problem listed)."""


@dataclass(frozen=True)
class StaffMember:
    userid: str
    name: str
    roles: frozenset

    def may(self, area: str) -> bool:
        return bool(self.roles & AREAS[area])

    @property
    def role_names(self) -> str:
        return "、".join(ROLE_NAMES[r] for r in ROLES if r in self.roles)

    @property
    def home(self) -> str:
        """Where signing in lands: the first area this member may open."""
        for area in ("advisor", "marketing", "admin", "reports"):
            if self.may(area):
                return f"/{area}"
        return "/"


def load_staff_file(path: Union[str, Path]) -> dict[str, tuple[str, frozenset]]:
    """userid -> (name, roles) from the staff file; a missing file is an empty list."""
    path = Path(path)
    if not path.exists():
        return {}
    data = read_yaml(path, StaffFileError) or {}
    problems, found = [], {}
    entries = data.get("staff") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise StaffFileError(f"{path}: expected a `staff:` list")
    for i, entry in enumerate(entries):
        where = f"{path}: staff[{i}]"
        if not isinstance(entry, dict) or not str(entry.get("userid") or "").strip():
            problems.append(f"{where}: needs a userid")
            continue
        roles = entry.get("roles") or []
        unknown = [r for r in roles if r not in ROLES] if isinstance(roles, list) else [roles]
        if not roles or unknown:
            problems.append(
                f"{where}: roles must be a non-empty list of {', '.join(ROLES)}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
            continue
        userid = str(entry["userid"]).strip()
        found[userid] = (str(entry.get("name") or userid), frozenset(roles))
    if problems:
        raise StaffFileError("\n".join(problems))
    return found


class StaffDirectory:
    """The console's view of the staff: roles per userid and the property rule."""

    def __init__(self, policy: Policy, extra: Optional[Mapping[str, tuple]] = None):
        self.policy = policy
        self.access = StaffAccess(policy)
        self.extra = dict(extra or {})
        supervisors = set()
        advisors = set()
        for prop in policy.properties.values():
            advisors.update(a.userid for a in prop.roster)
            supervisors.update(p.userid for p in prop.supervisors)
            if prop.duty_manager:
                supervisors.add(prop.duty_manager.userid)
        self._policy_roles = {}
        for userid in advisors | supervisors:
            roles = set()
            if userid in advisors:
                roles.add(ADVISOR)
            if userid in supervisors:
                roles.add(SUPERVISOR)
            self._policy_roles[userid] = frozenset(roles)

    @classmethod
    def load(cls, policy: Policy, staff_file: Union[str, Path]) -> "StaffDirectory":
        return cls(policy, load_staff_file(staff_file))

    def member(self, userid: Optional[str]) -> Optional[StaffMember]:
        """The member with their roles, or None for someone the console does not know."""
        if not userid:
            return None
        roles = set(self._policy_roles.get(userid, ()))
        name = None
        if userid in self.extra:
            name, extra_roles = self.extra[userid]
            roles |= extra_roles
        if not roles:
            return None
        person = self.policy.people().get(userid)
        return StaffMember(userid, person.name if person else (name or userid), frozenset(roles))

    def allows(self, userid: str, property_id: Optional[str]) -> bool:
        """May this member see and act on a case or guest of `property_id`?"""
        return self.access.allows(userid, property_id)

    def allows_any(self, userid: str, property_ids: Iterable[Optional[str]]) -> bool:
        return self.access.allows_any(userid, property_ids)

    def advisors_for(self, property_id: Optional[str]) -> list:
        """The roster a case of this property may be reassigned to."""
        return list(self.policy.property(property_id).roster)
