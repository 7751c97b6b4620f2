"""`python -m bot.rasa_main <rasa arguments>`: Rasa's own command line, after the preflight
(bot.preflight: refuses a production start with default secrets, the `rest` channel or a non-loopback
interface), the request-size cap, and the speed-ups of `bot.rasa_speedups`. The Procfiles and the
end-to-end tests start the server this way."""
from __future__ import annotations

import sys


def main() -> None:
    from bot.preflight import apply_http_limits, rasa_server_checks, start_process
    from bot.settings import get_settings

    args = sys.argv[1:]
    if args[:1] == ["run"] and "actions" not in args[1:2]:
        settings = get_settings()
        start_process("rasa", settings, extra=[rasa_server_checks(args[1:])])
        apply_http_limits(settings)
    from bot.rasa_speedups import apply_all

    apply_all()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *args]
    rasa_main()


if __name__ == "__main__":
    main()
