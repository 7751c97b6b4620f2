"""`python -m bot.rasa_main <rasa arguments>`: Rasa's own command line, with the speed-ups of
`bot.rasa_speedups` applied first. The Procfile and the end-to-end tests start the server this way."""
from __future__ import annotations

import sys


def main() -> None:
    from bot.rasa_speedups import apply_all

    apply_all()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:]]
    rasa_main()


if __name__ == "__main__":
    main()
