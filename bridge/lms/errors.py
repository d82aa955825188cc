"""Errors an LMS call can end in: each knows whether a retry can help."""

from bridge.errors import BridgeError


class LMSError(BridgeError):
    """An LMS call failed; carries the connection, the operation and what the LMS said."""

    status = 502
    # Seconds the connection waits before its next login, when this error is (or came from) a failed login:
    # the job then waits too, without using a retry (a connection-wide outage is not the job's failure).
    held_for: float | None = None

    def __init__(self, connection: str, operation: str, detail: str, http_status: int | None = None):
        self.connection, self.operation, self.detail, self.http_status = connection, operation, detail, http_status
        # Callers build `detail` through Connector.error(), which scrubs the connection's secrets.
        super().__init__(f"LMS connection {connection!r}, {operation}: {detail}")

    def to_dict(self, detailed: bool = False) -> dict:
        """Describe the error for a JSON reply or a job result."""
        return {
            **super().to_dict(detailed),
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

    def to_dict(self, detailed: bool = False) -> dict:
        """Describe the error, including how long the LMS asked us to wait."""
        return {**super().to_dict(detailed), "retry_after": self.retry_after}


class LMSUnavailable(LMSError):
    """The LMS could not be reached or failed on its side (5xx, timeout, refused connection)."""

    retryable = True


class LMSNeedsAttention(LMSError):
    """The LMS has the person but cannot tell the bridge their id: a person must link it (never retried by itself)."""

    def __init__(self, connection: str, operation: str, detail: str, email: str = "", http_status: int | None = None):
        super().__init__(connection, operation, detail, http_status)
        self.email = email
        self.remedy = (f"find the user's id in the LMS, then run `bridge lms link {connection} {email} USER_ID` "
                       "and `bridge retry` the delivery")

    def to_dict(self) -> dict:
        """Describe the error with the email it is about and what to do."""
        return {**super().to_dict(), "email": self.email, "remedy": self.remedy}


class LMSLoginHeld(LMSUnavailable):
    """Logins of the connection failed lately and the next is not due: nothing was sent, the job waits for it."""

    def __init__(self, connection: str, operation: str, detail: str, retry_after: float):
        super().__init__(connection, operation, detail)
        self.retry_after = self.held_for = retry_after

    def to_dict(self) -> dict:
        """Describe the error with the seconds until the connection tries to log in again."""
        return {**super().to_dict(), "retry_after": self.retry_after}
