"""Preference tags from what guests say: vocabulary (data/preferences/vocabulary.yml), extraction
with negation and take-backs, storage in the CRM, mirroring to WeCom corp tags."""
