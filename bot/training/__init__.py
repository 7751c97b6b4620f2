"""The admins' training loop: NLU inbox → labels in data/nlu → model versions → gate → deploy.

Service API for the CLI (bot/training/cli.py) and the staff console: bot/training/service.py
(`build_training_loop(settings)`). Modules: collector (tracker store → inbox), inbox (list,
label, discard, guest erasure), registry + trainer (versions, background training, held-out
figures), gate (regression policy), deploy (PUT /model on every Rasa replica, rollback),
text (normalising, masking and grouping texts), models (tables; migration 0006_training).
"""
