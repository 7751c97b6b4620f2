#!/usr/bin/env bash
# What `make run` starts and how to talk to it.
cat <<MSG

  Concierge starting (Ctrl-C stops everything):
    Rasa server     http://localhost:5005   (API token: \$RASA_AUTH_TOKEN = ${RASA_AUTH_TOKEN})
    Action server   http://localhost:5055
    WeCom sandbox   http://localhost:8800   (chat as a guest in 微信客服 or a group, or as an advisor)
    WeCom intake    http://localhost:5006/webhooks/wecom/{kf,aibot,app}   (callbacks, answered at once)
    Staff console   http://localhost:${CONSOLE_PORT:-8000}   (sign in: .venv/bin/concierge staff login-link advisor_li)
    SLA worker      pages advisors through the sandbox (policy: ${SLA_POLICY_FILE})
    CRM database    ${DATABASE_URL:-sqlite:///var/concierge.db}

  Talk to it as the demo guest 林晓 (booked in 三亚 next week), once Rasa says "Rasa server is up":
    curl -s localhost:5005/webhooks/rest/webhook -H 'Content-Type: application/json' \\
      -d '{"sender": "demo-lin", "message": "我下周去三亚，天气怎么样？要带什么衣服？"}'
  Other demo guests: demo-chen (上海, business), demo-wang (two stays), demo-zhao (no booking).
  Read a profile:   .venv/bin/concierge guest show demo-lin

MSG
