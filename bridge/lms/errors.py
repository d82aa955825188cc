"""Errors an LMS call can end in: each knows whether a retry can help."""

from bridge.errors import BridgeError


class LMSError(BridgeError):
    """An LMS call failed; carries the connection, the operation and what the LMS said."""

    status = 502

    def __init__(self, connection: str, operation: str, detail: str, http_status: int | None = None):
        self.connection, self.operation, self.detail, self.http_status = connection, operation, detail, http_status
        # Callers build `detail` through Connector.error(), which scrubs the connection's secrets.
        super().__init__(f"LMS connection {connection!r}, {operation}: {detail}")

    def to_dict(self) -> dict:
        """Describe the error for a JSON reply or a job result."""
        return {
            **super().to_dict(),
            "connection": self.connection,
            "operation": self.operation,
            "detail": self.detail,
            "http_status": self.http_status,
            "retryable": self.retryable,
        }


class LMSAuthError(LMSError):
    """The LMS refused the credentials or the token (401/403)."""


class LMSNotFound(LMSError):
    """The LMS does not know the user, course or endpoint (404), or an email has no known id."""


class LMSRejected(LMSError):
    """The LMS refused the request (400, other 4xx, an error reply), or the request was invalid before sending."""


class LMSRateLimited(LMSError):
    """The LMS asked us to slow down (429); `retry_after` is in seconds, None when it did not say."""

    retryable = True

    def __init__(self, connection: str, operation: str, detail: str, http_status: int | None = 429,
                 retry_after: float | None = None):
        super().__init__(connection, operation, detail, http_status)
        self.retry_after = retry_after

    def to_dict(self) -> dict:
        """Describe the error, including how long the LMS asked us to wait."""
        return {**super().to_dict(), "retry_after": self.retry_after}


class LMSUnavailable(LMSError):
    """The LMS could not be reached or failed on its side (5xx, timeout, refused connection)."""

    retryable = True
