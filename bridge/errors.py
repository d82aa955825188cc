"""The bridge's error tree: each class knows its HTTP status and whether a retry can help."""


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose.

    `message` is the whole story, for logs, the CLI and the admin API; `public` (when set) is what
    anyone on a public URL is told instead, so that file paths and setting names stay private.
    """

    status = 500
    retryable = False
    public: str | None = None

    def __init__(self, message: str, public: str | None = None):
        super().__init__(message)
        self.message = message
        if public is not None:
            self.public = public

    @property
    def public_message(self) -> str:
        """Return what a caller without the admin token may read."""
        return self.public or self.message

    def to_dict(self, detailed: bool = False) -> dict:
        """Describe the error for a JSON reply: public unless `detailed` (the admin API, behind its token)."""
        return {"error": type(self).__name__, "message": self.message if detailed else self.public_message}


class BadRequest(BridgeError):
    """The webhook cannot be read (wrong encoding, not JSON or form data)."""

    status = 400


class Unauthorized(BridgeError):
    """The webhook did not prove that it comes from its sender."""

    status = 401


class NotFound(BridgeError):
    """No such source, delivery or object."""

    status = 404


class PayloadTooLarge(BridgeError):
    """The body is over the configured size limit."""

    status = 413


class QueueUnavailable(BridgeError):
    """Redis cannot be reached, so nothing can be durably queued."""

    status = 503
    retryable = True
    public = "the queue is unavailable; nothing was accepted, try again later"


class ConfigError(BridgeError):
    """A rule file or setting is wrong; carries the file, line and column when known."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None, column: int | None = None):
        self.file, self.line, self.column = file, line, column
        where = ":".join(str(part) for part in (file, line, column) if part is not None)
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message


class ConfigErrors(BridgeError):
    """Several configuration errors found at once."""

    status = 503
    retryable = True
    public = "the bridge's rule files have errors; nothing is accepted until its operator fixes them"

    def __init__(self, errors: list[ConfigError], warnings=()):
        self.errors, self.warnings = errors, list(warnings)
        super().__init__("\n".join(error.message for error in errors))


class TemplateError(BridgeError):
    """A rule's field could not be rendered from the event (missing field, bad expression)."""

    status = 422
