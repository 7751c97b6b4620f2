"""Rasa's tracker events, from its event broker (RabbitMQ) into the CRM database, for the reports
and the admins' NLU inbox (which therefore never scan Rasa's tracker store). Modules: models (the
table), store (insert-or-ignore, report queries), consumer (the RabbitMQ consumer), cli
(`concierge events consume | dead | requeue`)."""
