"""Delivery: receiving callbacks (intake), the durable inbox and outbox, the per-sender pipeline,
the host loop both processes share (kf pulls, sweeps), and the Rasa-free turn runner."""
