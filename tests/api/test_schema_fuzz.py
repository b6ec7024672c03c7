"""Schemathesis against the OpenAPI document: generated requests to every operation,
authenticated, must never get a 5xx and every answer must match the document."""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from alerts.models import Alert
from investigations.models import Investigation, ToolCall
from rca_site.api import api as rootline_api
from tests.factories import REPORT, make_alert, make_investigation

pytestmark = pytest.mark.django_db

# The document as /api/v1/openapi.json serves it (that needs a login; there is no
# database while tests are collected), the requests through the WSGI application.
schema = schemathesis.openapi.from_dict(rootline_api.get_openapi_schema(path_prefix=""))
schema.app = get_wsgi_application()
# The webhook has its own fuzz tests (tests/alerts/test_webhook_fuzz.py) and its own token.
api = schema.exclude(path_regex="^/webhooks/")

EXAMPLES = int(os.getenv("ROOTLINE_FUZZ_EXAMPLES", "30"))


@pytest.fixture
def incident():
    """Rows for generated ids to land on: a completed investigation with steps, a report
    and an alert, a running one, and a question."""
    alert = make_alert("a1b2c3d4e5f60718", severity="critical", service="cart")
    done = make_investigation(alert, status="completed", report=REPORT, report_text="**x**")
    ToolCall.start(done, "signals", "scan_metrics", {"query": "up"}).end(output={"n": 1})
    make_investigation(make_alert("b2c3d4e5f6071829"), status="running")
    make_investigation(kind="question", question="why?")
    return done


@pytest.fixture
def in_test_transaction():
    """Requests through the WSGI app share the test's connection, as Django's test client
    arranges: no closing it at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@api.hook
def map_path_parameters(context, path_parameters):
    """Most generated ids exist: the interesting answers are not 404s."""
    if not path_parameters:
        return path_parameters
    for name, model in (("investigation_id", Investigation), ("alert_id", Alert)):
        value = path_parameters.get(name)
        if isinstance(value, int) and value % 4:
            pks = list(model.objects.order_by("pk").values_list("pk", flat=True))
            if pks:
                path_parameters[name] = pks[value % len(pks)]
    return path_parameters


def sent_as_one_string(value):
    """Whether a generated query value reaches the API as a single string the schema
    admits, whatever it was generated as: an empty object goes out as `name=`, and through
    the WSGI transport (werkzeug) any other object, or a list inside a list, as its Python
    repr (`name={'a': 'b'}`), though schemathesis reports it as repeated keys
    (`name=a&name=b`). Its 200 is then no failure (schemathesis 4.32.5, as its issue #4600
    describes for object mutations of query strings)."""
    if isinstance(value, list):
        return any(isinstance(item, dict | list) for item in value)
    return isinstance(value, dict)


@api.hook
def filter_query(context, query):
    """Leave out a "negative" query that reaches the API as valid (sent_as_one_string)."""
    return not any(sent_as_one_string(value) for value in (query or {}).values())


@api.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_operation_answers_5xx_or_off_its_schema(case, api_token, incident, in_test_transaction):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {api_token}"},
        # Rules the schema cannot state are refused with 4xx on purpose: a cursor must be
        # one the API handed out, a question's time range at most 7 days and not ahead.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
