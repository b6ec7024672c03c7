"""Error answers given outside an API operation, in the API's one shape."""

from django.http import JsonResponse

from accounts.auth import AUTH_REQUIRED

JSON_PATHS = ("/api/", "/webhooks/")
MESSAGES = {
    400: "Bad request.",
    401: AUTH_REQUIRED,
    403: "Forbidden: a request authenticated by its session cookie must carry the CSRF token "
    "(X-CSRFToken header); scripts should send `Authorization: Bearer <token>` instead.",
    404: "There is nothing at {path}; the API is described at /api/v1/docs.",
    405: "{method} is not allowed on {path} (allowed: {allowed}).",
    500: "Rootline failed to answer; this is a bug, see its log.",
}
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    500: "internal_error",
}


class ApiErrorShapeMiddleware:
    """An error under /api/ or /webhooks/ that Django or ninja answered without an
    operation (an unknown path, a method the path does not take, a failed CSRF check,
    a crash outside a view) becomes `{"error", "message", "fields"}` like every other."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        status = response.status_code
        if (
            status < 400
            or not request.path.startswith(JSON_PATHS)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        message = MESSAGES.get(status, "The request failed.").format(
            path=request.path, method=request.method, allowed=response.get("Allow", "")
        )
        shaped = JsonResponse(
            {"error": CODES.get(status, "http_error"), "message": message, "fields": []},
            status=status,
        )
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                shaped[header] = response[header]
        return shaped
