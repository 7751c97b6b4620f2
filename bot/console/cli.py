"""`concierge staff login-link USERID`: a one-time, short-lived console sign-in link, for
scripts and first set-up (printed to stdout; the member must be in the staff directory)."""

from __future__ import annotations

import sys
from urllib.parse import quote


def register(subparsers) -> None:
    staff = subparsers.add_parser("staff", help="staff console accounts")
    sub = staff.add_subparsers(dest="staff_command", required=True)
    link = sub.add_parser("login-link", help="print a one-time console sign-in link")
    link.add_argument("userid", help="the member's WeCom userid")
    link.set_defaults(func=_login_link)


def _login_link(args) -> int:
    from bot.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE
    from bot.console.auth import Auth
    from bot.console.staff import StaffDirectory, StaffFileError
    from bot.paging.policy import PolicyError, load_policy
    from bot.settings import get_settings

    settings = get_settings()
    try:
        staff = StaffDirectory.load(
            load_policy(settings.sla_policy_file), settings.console_staff_file
        )
    except (PolicyError, StaffFileError) as exc:
        print(f"concierge: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    member = staff.member(args.userid)
    if member is None:
        print(
            f"concierge: {args.userid} is neither in the SLA policy nor in "
            f"{settings.console_staff_file}: no console access",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    auth = Auth.from_settings(settings)
    base = (settings.console_base_url or f"http://localhost:{settings.console_port}").rstrip("/")
    print(f"{base}/login/link?token={quote(auth.login_token(member.userid), safe='')}")
    minutes = max(1, auth.link_ttl_s // 60)
    print(f"{member.name}（{member.role_names}）: works once, for {minutes} min", file=sys.stderr)
    return EXIT_OK
