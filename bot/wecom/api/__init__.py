"""The thin WeCom API client: access tokens, rate limits, retries, every send through the outbox."""
