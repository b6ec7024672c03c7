"""The report on the investigation page: Markdown made safe, evidence linked to its steps."""

import pytest
from django.urls import reverse

from investigations.runner import render_report
from investigations.templatetags.reports import gist, markdown
from tests.factories import REPORT, make_alert, make_investigation

pytestmark = pytest.mark.django_db

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    '<a href="data:text/html,x">x</a>',
    "<iframe src=https://evil.example></iframe>",
    '<p style="position:fixed">x</p>',
]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_drops_scripts_handlers_and_foreign_schemes(text):
    html = str(markdown(f"Root cause: db. {text}"))
    for bad in ("<script", "onerror", "javascript:", "data:", "<iframe", "style="):
        assert bad not in html


def test_markdown_keeps_formatting_and_links_step_references():
    html = str(markdown("**db** is down, see [step 12].\n\n- one\n- [docs](https://x.example)"))
    assert "<strong>db</strong>" in html and "<li>one</li>" in html
    assert '<a href="#step-12"' in html
    assert '<a href="https://x.example" rel="noopener noreferrer nofollow">docs</a>' in html


def test_the_agents_report_renders_with_evidence_linked_to_steps(admin_client):
    report = {"source": "agents", **REPORT}
    investigation = make_investigation(
        make_alert("ab01"),
        status="completed",
        report=report,
        report_text=render_report(report) + "\n\n<script>steal()</script>",
        model="claude-test",
    )
    page = admin_client.get(reverse("investigation", args=[investigation.pk])).content.decode()

    cited = REPORT["evidence"][0]["steps"][0]
    assert f'<a href="#step-{cited}"' in page
    assert "<h3>Evidence</h3>" in page
    assert "<script>steal()" not in page
    assert "Written by the Claude agents (claude-test)" in page


def test_a_signals_only_report_says_how_to_turn_the_agents_on(admin_client, settings):
    settings.ANTHROPIC_API_KEY = ""
    investigation = make_investigation(
        make_alert("ab02"),
        status="completed",
        report={"source": "signals", "summary": "x", "evidence_steps": {"metric": 3, "paths": 5}},
        report_text="x",
        suspects=[
            {
                "service": "db",
                "score": 2.0,
                "evidence": [
                    {"kind": "paths", "incident_diverged": 30, "missing_steps": []},
                    {"kind": "metric", "metric": "up", "direction": "down", "score": 9},
                    {"kind": "logs", "incident_lines": 4, "new_template_lines": 0, "late": True},
                ],
                "callers": ["web", "<b>cart</b>"],
            }
        ],
    )
    page = admin_client.get(reverse("investigation", args=[investigation.pk])).content.decode()
    assert "Signals-only report" in page and "ANTHROPIC_API_KEY" in page
    assert '30 requests stopped here (<a href="#step-5">step 5</a>)' in page
    assert 'up down (9.0) (<a href="#step-3">step 3</a>)' in page
    assert "4 error-like lines, 0 new, after the alert fired</td>" in page  # no step: no link
    assert "db<br><small>called by web, &lt;b&gt;cart&lt;/b&gt;</small>" in page


def test_a_steps_gist_is_one_line_without_markdown_marks():
    text = "The scan found **orders-db** first.\n### Next steps\n- check `pg_stat`"

    assert gist(text) == "The scan found orders-db first. Next steps - check pg_stat"
    assert gist("x" * 200, 10) == "x" * 9 + "…"
    assert gist("<b>#tag</b>") == "<b>#tag</b>"  # not Markdown: left for the template to escape
