"""The JSON API's errors that operations raise; rca_site/api.py answers them in one shape."""

from ninja.errors import HttpError


class ApiError(HttpError):
    """An answer other than success, with a stable code (`error`) and a message for a
    person."""

    def __init__(self, status, error, message, fields=()):
        super().__init__(status, message)
        self.error = error
        self.fields = list(fields)
