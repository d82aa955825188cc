"""The operator console: server-rendered pages under /admin/ui/ to see deliveries, refusals, sources, rules and health.

Nothing is imported here at module level: the receiver and the CLI use `refused` without loading the pages.
"""

from __future__ import annotations


def create_blueprint():
    """Return the console's blueprint with every page registered on it."""
    from . import auth, deliveries, operations, sources  # noqa: F401 - each registers its pages on the blueprint

    return auth.blueprint
