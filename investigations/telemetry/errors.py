"""What can go wrong when a telemetry backend is asked something.

Every message is written for the reader who must act on it (an SRE, or a model choosing
its next query): it names the backend and the endpoint and quotes what the server said.
"""

# A server's error text is quoted up to this length; longer bodies are cut.
MAX_QUOTED_CHARS = 1000


class TelemetryError(Exception):
    """Base of every failure of a telemetry client."""


class QueryError(TelemetryError):
    """The backend refused the request (HTTP 4xx): asking again the same way will not help.

    `status` is the HTTP status, `message` the server's own words (Loki answers plain
    text; Prometheus-compatible servers JSON `error`, whose `errorType` is in
    `error_type`).
    """

    def __init__(self, backend, path, status, message, error_type=""):
        self.backend = backend
        self.path = path
        self.status = status
        self.message = message
        self.error_type = error_type
        kind = f", {error_type}" if error_type else ""
        super().__init__(f"{backend} answered HTTP {status}{kind} to {path}: {quote(message)}")


class BackendUnavailable(TelemetryError):
    """The backend did not answer usefully after every attempt (connection errors,
    timeouts, 5xx, 429); `attempts` says how often it was tried, `last_error` how the last
    attempt failed."""

    def __init__(self, backend, url, attempts, last_error):
        self.backend = backend
        self.url = url
        self.attempts = attempts
        self.last_error = last_error
        tries = "once" if attempts == 1 else f"{attempts} times"
        super().__init__(f"{backend} at {url} was tried {tries} and failed: {last_error}")


class UnexpectedAnswer(TelemetryError):
    """A 2xx answer that is not the API's JSON: usually a URL or API prefix that points at
    something else (a login page, a proxy, the wrong product)."""


def quote(message):
    message = str(message).strip() or "(empty answer)"
    if len(message) > MAX_QUOTED_CHARS:
        message = message[:MAX_QUOTED_CHARS] + " [...]"
    return message
