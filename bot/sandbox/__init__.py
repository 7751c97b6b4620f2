"""Local stand-in for the WeCom server API (`python -m bot.sandbox`, port 8800).

See bot/sandbox/server.py for the routes; bot/wecom/dev_defaults.py for the shared dev secrets.
"""
