"""The property-scoped access rule (bot.access) over a policy with two properties."""

from __future__ import annotations

import pytest

from bot.access import AccessDenied, StaffAccess
from bot.paging.policy import parse_policy

POLICY = {
    "version": 1,
    "timezone": "Asia/Shanghai",
    "link": "https://concierge.example.com/cases/{case_id}?sig={sig}",
    "properties": {
        "default": {
            "roster": [{"userid": "li", "name": "李"}],
            "supervisors": [{"userid": "wang", "name": "王"}],
            "duty_manager": {"userid": "zhao", "name": "赵"},
        },
        "sanya": {
            "roster": [{"userid": "chen", "name": "陈"}],
            "supervisors": [{"userid": "sun", "name": "孙"}],
        },
        "shanghai": {},  # no roster of its own: inherits the default section's people
    },
    "classes": {
        name: {
            "label": name,
            "ack_within": "10m",
            "resolve_within": "1h",
            "steps": [{"name": "page", "after": "0s", "notify": ["on_duty"]}],
        }
        for name in (
            "complaint_routine",
            "complaint_major",
            "addon_order",
            "human_request",
            "data_deletion",
        )
    },
}


@pytest.fixture
def access():
    return StaffAccess(parse_policy(POLICY, "test", require_classes=()))


def test_properties_of_each_staff_member(access):
    assert access.properties("chen") == {"sanya"}
    assert access.properties("sun") == {"sanya"}
    # The default section's people also serve properties that inherit its roster.
    assert access.properties("li") == {"default", "shanghai"}
    # sanya names its own roster and supervisors but inherits the duty manager.
    assert access.properties("zhao") == {"default", "shanghai", "sanya"}
    assert access.properties("nobody") == frozenset()
    assert access.properties(None) == frozenset()


def test_advisor_is_refused_another_propertys_case(access):
    assert access.allows("chen", "sanya")
    assert not access.allows("chen", "shanghai")
    assert not access.allows("li", "sanya")
    with pytest.raises(AccessDenied, match="'li' is not rostered for property 'sanya'"):
        access.require("li", "sanya")


def test_unknown_or_missing_property_is_a_default_case(access):
    assert access.allows("li", None)
    assert access.allows("li", "a-hotel-not-in-the-policy")
    assert not access.allows("chen", None)
    assert not access.allows("", "default")


def test_guest_linked_to_several_properties(access):
    assert access.allows_any("chen", ["shanghai", "sanya"])
    assert not access.allows_any("chen", ["shanghai"])
    assert access.allows_any("li", [])  # no booking anywhere: a default guest
    assert not access.allows_any("chen", [])


def test_is_staff(access):
    assert (
        access.is_staff("sun") and not access.is_staff("guest-kf:wm1") and not access.is_staff(None)
    )
