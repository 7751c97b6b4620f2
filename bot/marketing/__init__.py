"""Marketing: segments, campaigns (会员日 and one-offs) and the automatic touchpoints.

The service API (the console and the CLI call these; build them with
`bot.marketing.runtime.build_marketing(database_url)` and close with `await m.close()`):

    m.segments.count(ref) -> {count, guests, excluded_by_rule}       ref: mapping | file | name
    m.segments.list(ref, limit=100, include_outside=False) -> {members: [...], outside: [...]}
    m.campaigns.create(spec_mapping, actor=...) -> id                 CampaignError on bad input
    m.campaigns.get(id) / m.campaigns.list()
    m.campaigns.preview(id, samples=3) -> recipients, left_out counts by reason, sample texts
    await m.campaigns.send(id, force_now=True) / send_due()
    await m.campaigns.report(id) / cancel(id, actor=...) / remind(id)
    await m.touchpoints.run(now=None, dry_run=False) -> {sent, skipped, deferred}
    m.touchpoints.sequence(property_id) / set_enabled(property_id, kind, on, actor=...)
    m.nps.maybe_record(sender_id, text) -> reply text or None

Modules: policy (caps, quiet hours, bands), facts (per-guest facts in bulk), segments (rules),
templates (the sandboxed Jinja2), audience (consent / cap / identity / quiet-hours checks),
campaigns, touchpoints, nps, wecom_api (the 客户群发 calls), models (tables), cli, runtime.
"""
