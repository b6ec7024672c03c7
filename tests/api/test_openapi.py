"""The OpenAPI document and docs page of the JSON API (rca_site/api.py)."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_openapi_document_describes_both_endpoints(api_get):
    document = api_get("/api/v1/openapi.json").json()

    investigation = document["paths"]["/api/v1/investigations/{investigation_id}"]["get"]
    alerts = document["paths"]["/api/v1/alerts"]["get"]
    for operation in (investigation, alerts):
        assert operation["summary"]
        assert operation["description"]
        assert {"ApiTokenAuth": []} in operation["security"]
        assert {"SessionAuth": []} in operation["security"]
    schemas = document["components"]["schemas"]
    investigation_fields = set(schemas["InvestigationOut"]["properties"])
    assert {"suspects", "report", "alerts", "scope"} <= investigation_fields
    assert schemas["SuspectOut"]["additionalProperties"] is True
    assert {"investigation", "investigations"} <= set(schemas["AlertOut"]["properties"])
    assert set(schemas["AlertPageOut"]["properties"]) == {"items", "count", "next_cursor"}
    assert document["components"]["securitySchemes"]["ApiTokenAuth"]["scheme"] == "bearer"


def test_the_docs_page_is_served_to_a_logged_in_user(client, sre):
    client.force_login(sre)

    assert client.get("/api/v1/docs").status_code == 200


def test_the_docs_need_a_login_or_a_token(client, api_get):
    assert client.get("/api/v1/docs").url.startswith("/accounts/login/?next=/api/v1/docs")
    refused = client.get("/api/v1/openapi.json")
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert api_get("/api/v1/openapi.json").status_code == 200
