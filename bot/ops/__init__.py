"""Operations: Prometheus metrics (`metrics`), health and readiness (`health`), the HTTP routes
that serve them on every process (`http`), JSON logs with a correlation id (`logs`) and the
outbox's dead-letter commands (`outbox_cli`)."""
