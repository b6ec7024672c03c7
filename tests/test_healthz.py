"""GET /healthz (rca_site/views.py)."""

import pytest
from django.db import OperationalError, connection


@pytest.mark.django_db
def test_healthy_when_the_database_answers(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def refuse(execute, sql, params, many, context):
    raise OperationalError("connection refused")


@pytest.mark.django_db(transaction=True)
def test_unavailable_when_the_database_does_not_answer(client):
    with connection.execute_wrapper(refuse):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
