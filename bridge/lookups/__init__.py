"""Lookup connections: ask a CRM, an HR system or any JSON API for what a webhook leaves out.

    http.py   the `http` connection type: GET or POST JSON, the reply becomes a step output

They share the LMS connectors' client base (bridge/lms/base.py): the same error classes (retryable
or not), timeouts, retry policy, limits, and the same recorded, redacted exchanges.
"""

# The connector registry (bridge.lms) lists these types too; importing it first settles that cycle
# whichever of the two packages is imported first.
import bridge.lms  # noqa: F401  isort: skip
from bridge.lookups.http import HttpLookup

LOOKUP_CONNECTORS = {HttpLookup.type: HttpLookup}

__all__ = ["LOOKUP_CONNECTORS", "HttpLookup"]
