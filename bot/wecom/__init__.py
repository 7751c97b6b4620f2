"""The WeCom (企业微信) layer: callback crypto, the API client (tokens, rate limits, retries,
outbox), 微信客服 / 智能机器人 / self-built app services, and the durable inbox.

Importable without Rasa and without connecting to anything. Functions other parts call:

    from bot.wecom.services import WeComServices        # services.app.send_text(...), services.kf.transfer(...)
    from bot.wecom.surfaces.app import AppCommandRouter   # the advisors' commands, given to the channel
    from bot.wecom.externalcontact import mark_tag, add_msg_template, send_group_robot
"""
