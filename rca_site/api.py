"""The one NinjaAPI: the Alertmanager webhook and the JSON API, each app adding its router."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from accounts.auth import AUTH_REQUIRED, docs_access
from alerts.api import router as webhook_router
from investigations.api import alerts_router, overview_router
from investigations.api import router as investigations_router
from rca_site.cursor import CursorError

log = logging.getLogger(__name__)


class OneValueParser(Parser):
    """Django-ninja's parser, but a parameter that takes one value and is given several
    (`?alertname=a&alertname=b`) is refused with 422 instead of keeping the last one."""

    def parse_querydict(self, data, list_fields, request):
        where = "query" if data is request.GET else "form"
        errors = [
            {"loc": (where, key), "msg": f"given {len(values)} times; give it once"}
            for key, values in data.lists()
            if key not in list_fields and len(values) > 1
        ]
        if errors:
            raise ValidationError(errors)
        return super().parse_querydict(data, list_fields, request)


api = NinjaAPI(
    parser=OneValueParser(),
    title="Rootline",
    version="1",
    description="Root-cause analysis for Alertmanager alerts.",
    docs_url="/api/v1/docs",
    openapi_url="/api/v1/openapi.json",
    urls_namespace="api",
    docs_decorator=docs_access,
)
api.add_router("/webhooks", webhook_router)
api.add_router("/api/v1/investigations", investigations_router)
api.add_router("/api/v1/alerts", alerts_router)
api.add_router("/api/v1/overview", overview_router)


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
    return error_answer(request, 401, "unauthorized", AUTH_REQUIRED)


@api.exception_handler(Http404)
def not_found(request, exc):
    return error_answer(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(HttpError)
def http_error(request, exc):
    error, fields = getattr(exc, "error", "http_error"), getattr(exc, "fields", ())
    return error_answer(request, exc.status_code, error, str(exc), fields)


@api.exception_handler(CursorError)
def cursor_error(request, exc):
    return error_answer(request, 400, "invalid_cursor", str(exc), ["cursor"])


@api.exception_handler(RequestDataTooBig)
def too_large(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_answer(
        request,
        413,
        "payload_too_large",
        f"The request body is larger than {limit} bytes (ROOTLINE_API_MAX_BYTES).",
    )


@api.exception_handler(OperationalError)
@api.exception_handler(InterfaceError)
def database_error(request, exc):
    log.error("API %s %s: database unavailable: %s", request.method, request.path, exc)
    return error_answer(
        request, 503, "database_unavailable", "The database is unavailable; retry later."
    )


@api.exception_handler(Exception)
def server_error(request, exc):
    """A bug: logged with its traceback, answered in the one shape, without details."""
    log.exception("API %s %s failed", request.method, request.path)
    return error_answer(
        request,
        500,
        "internal_error",
        f"Rootline failed to answer ({type(exc).__name__}); this is a bug, see its log.",
    )
