"""The three WeCom surfaces: 微信客服 (kf), 智能机器人 (aibot), the self-built app. Each turns its
callbacks into typed inbox messages, knows its identity rules, composes outbound messages within
its limits, and calls its API endpoints."""
