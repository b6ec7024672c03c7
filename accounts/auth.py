"""Who is calling the JSON API: a script with an API token, or a browser with a session.

Routers pass `auth=API_AUTH`; a request that satisfies neither gets ninja's
AuthenticationError, which rca_site/api.py answers with 401 in the one error shape.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from ninja.security import HttpBearer, django_auth

from accounts.models import ApiToken

AUTH_REQUIRED = (
    "Authentication required: send `Authorization: Bearer <token>` with a token from "
    "`manage.py create_api_token`, or log in."
)


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


def docs_access(view):
    """The API's docs page and OpenAPI document: for a logged-in browser or an API token.

    A script without either gets 401 (in the API's error shape, from rca_site.middleware);
    a browser is sent to log in.
    """

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if request.user.is_authenticated or ApiTokenAuth()(request) is not None:
            return view(request, *args, **kwargs)
        if request.path.endswith(".json"):
            # rca_site.middleware answers it in the API's error shape
            return HttpResponse(status=401)
        return redirect_to_login(request.get_full_path())

    return guarded
