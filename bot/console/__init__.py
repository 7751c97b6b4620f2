"""The staff console: one web app (aiohttp, Jinja2, htmx) for advisors, supervisors, marketers
and admins. `python -m bot.console` (started by `make run`) serves it on CONSOLE_PORT."""
