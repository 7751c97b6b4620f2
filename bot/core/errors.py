"""Error bases shared across the project."""

from __future__ import annotations


class DataError(ValueError):
    """A data file people edit (YAML policy, catalogue, knowledge base, staff list, ...) cannot
    be read or is not valid. The message names the file and what is wrong, so `concierge data
    check` and a refusing process can print it as it is.

    Each loader keeps its own subclass (PolicyError, KnowledgeError, ...) so callers that catch
    the specific one keep working; `except DataError` catches them all. A subclass of ValueError
    because the loaders raised ValueError subclasses before this base existed.
    """
