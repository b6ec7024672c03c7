"""Who is calling the JSON API: a script with an API token, or a browser with a session.

Routers pass `auth=API_AUTH`; a request that satisfies neither gets ninja's
AuthenticationError, which rca_site/api.py answers with 401 in the one error shape.
"""

from ninja.security import HttpBearer, django_auth

from accounts.models import ApiToken


class ApiTokenAuth(HttpBearer):
    """`Authorization: Bearer <token>` with a token from `manage.py create_api_token`.

    On success `request.user` is the token's user and `request.auth` the token row.
    """

    def authenticate(self, request, token):
        row = ApiToken.authenticate(token)
        if row is None:
            return None
        request.user = row.user
        return row


# The token first: a script's request never depends on a cookie it may have picked up.
# Session auth checks CSRF on unsafe methods.
API_AUTH = [ApiTokenAuth(), django_auth]
