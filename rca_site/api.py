"""The one NinjaAPI: the Alertmanager webhook and the JSON API, each app adding its router."""

from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from alerts.api import router as webhook_router
from investigations.api import alerts_router
from investigations.api import router as investigations_router

api = NinjaAPI(
    title="Rootline",
    version="1",
    description="Root-cause analysis for Alertmanager alerts.",
    docs_url="/api/v1/docs",
    openapi_url="/api/v1/openapi.json",
    urls_namespace="api",
)
api.add_router("/webhooks", webhook_router)
api.add_router("/api/v1/investigations", investigations_router)
api.add_router("/api/v1/alerts", alerts_router)


def error_answer(request, status, error, message, fields=()):
    return api.create_response(
        request, {"error": error, "message": message, "fields": list(fields)}, status=status
    )


@api.exception_handler(ValidationError)
def validation_error(request, exc):
    fields = [
        ".".join(str(p) for p in e.get("loc", ())) + ": " + e.get("msg", "") for e in exc.errors
    ]
    return error_answer(request, 422, "invalid_request", "; ".join(fields[:5]), fields[:50])


@api.exception_handler(AuthenticationError)
def authentication_error(request, exc):
    return error_answer(
        request,
        401,
        "unauthorized",
        "Authentication required: send `Authorization: Bearer <token>` with a token from "
        "`manage.py create_api_token`, or log in.",
    )


@api.exception_handler(Http404)
def not_found(request, exc):
    return error_answer(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(HttpError)
def http_error(request, exc):
    return error_answer(request, exc.status_code, "http_error", str(exc))
