"""What a failed ARI request raises."""

from __future__ import annotations


class AriError(Exception):
    """Asterisk refused a request, or could not be reached (status 0).

    `message` is Asterisk's own explanation (its JSON `message`), e.g. "Channel not found" or
    "Provided variable was not found": the operator reading the log needs Asterisk's words.
    """

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status or 'unreachable'} {message}".rstrip())
        self.status = status
        self.method = method
        self.path = path
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409: e.g. a channel or bridge id already in use."""
        return self.status == 409


class AriConnectionError(AriError):
    """Asterisk's HTTP server did not answer (refused, reset, timed out)."""

    def __init__(self, method: str, path: str, message: str) -> None:
        super().__init__(0, method, path, message)
