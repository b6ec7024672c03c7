"""Secrets never leave the tools; ordinary log text leaves them untouched."""

import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from investigations.tools.redaction import Redactor, default_redactor, redact, redact_data
from tests.shared import FIXTURES_DIR, fixture

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwYXltZW50LWFwaSIsImV4cCI6MTc5NTU3OTE0MH0"
    ".Qm9ndXNTaWduYXR1cmVGb3JUZXN0c09ubHkxMjM0NTY"
)
PEM_BODY = "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\nAbCdEf0123==\n-----END RSA PRIVATE KEY-----"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

# (text, expected counts, secret values that must not survive)
SECRETS = [
    ("Authorization: Bearer testtoken", {"authorization_header": 1}, ["testtoken"]),
    (
        '{"headers": {"Authorization": "Basic YWRtaW46czNjcjN0"}}',
        {"authorization_header": 1},
        ["YWRtaW46czNjcjN0"],
    ),
    (
        "proxy-authorization=Bearer 9f2c1e7a55b04d1d",
        {"authorization_header": 1},
        ["9f2c1e7a55b04d1d"],
    ),
    (
        'level=warn msg="retrying upstream" auth="Bearer 4b1f0c9e2d7a4e5f8a1b"',
        {"bearer_token": 1},
        ["4b1f0c9e2d7a4e5f8a1b"],
    ),
    (f"calling orders with bearer {JWT} failed", {"jwt": 1}, [JWT]),
    (f'{{"id_token": "{JWT}"}}', {"jwt": 1}, [JWT]),
    ("aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE", {"aws_access_key": 1}, []),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", {"aws_secret_key": 1}, [AWS_SECRET]),
    (
        f'{{"SecretAccessKey": "{AWS_SECRET}", "AccessKeyId": "ASIAY34FZKBOKMUTVV7A"}}',
        {"aws_secret_key": 1, "aws_access_key": 1},
        [AWS_SECRET, "ASIAY34FZKBOKMUTVV7A"],
    ),
    (
        "maps?key=AIzaSyD3xGq0qT7kFhPzPq9vYl5XwR2b8c4n0Ew&center=1,2",
        {"gcp_api_key": 1},
        ["AIzaSyD3xGq0qT7kFhPzPq9vYl5XwR2b8c4n0Ew"],
    ),
    (
        "git clone https://ghp_R8x2LkQ9mV4tY7wP3zN6bC1dF5gH0jK2sA9e@github.com/acme/payments",
        {"github_token": 1},
        ["ghp_R8x2LkQ9mV4tY7wP3zN6bC1dF5gH0jK2sA9e"],
    ),
    (
        "GITHUB_TOKEN: github_pat_11ABCDEFG0abcdefghijkl_MNOPQRSTUVWXyz0123456789",
        {"github_token": 1},
        ["github_pat_11ABCDEFG0abcdefghijkl_MNOPQRSTUVWXyz0123456789"],
    ),
    (
        "slack: token xoxb-2048-41939841-aZ3kL0pQ9rT7 rejected",
        {"slack_token": 1},
        ["xoxb-2048-41939841-aZ3kL0pQ9rT7"],
    ),
    (
        "api_url: https://hooks.slack.com/services/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",
        {"slack_webhook": 1},
        ["T024BE7LD/B08HJ2U3A/rX9kQ2vL7mN4pT8wZ1yB6cD3"],
    ),
    (
        "ANTHROPIC_API_KEY=sk-ant-api03-Zx8Kq2Lm9Vt4Yp7Rw1Nb6Cd3Fg0Hj5Ks-AbCdEf",
        {"anthropic_key": 1},
        ["sk-ant-api03-Zx8Kq2Lm9Vt4Yp7Rw1Nb6Cd3Fg0Hj5Ks-AbCdEf"],
    ),
    (
        "openai: using key sk-proj-a1B2c3D4e5F6g7H8i9J0kLmN_oPqRsTuV",
        {"openai_key": 1},
        ["sk-proj-a1B2c3D4e5F6g7H8i9J0kLmN_oPqRsTuV"],
    ),
    (
        "legacy key sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD in env",
        {"openai_key": 1},
        ["sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD"],
    ),
    (f"tls:\n  key: |\n    {PEM}\n  cert: cert.pem", {"private_key": 1}, [PEM_BODY]),
    (json.dumps({"private_key": PEM + "\n"}), {"private_key": 1}, [PEM_BODY]),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n(cut)",
        {"private_key": 1},
        ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"],
    ),
    (
        "connecting to postgres://payments:Sup3rS3cret@orders-db.production.svc:5432/orders",
        {"url_password": 1},
        ["Sup3rS3cret"],
    ),
    ("REDIS_URL=redis://:p4ss@w0rd@cache:6379/0", {"url_password": 1}, ["p4ss@w0rd"]),
    (
        "jdbc:postgresql://orders-db:5432/orders?user=app&password=Tr0ub4dor&ssl=true",
        {"key_value": 1},
        ["Tr0ub4dor"],
    ),
    (
        'host=orders-db user=app password="correct horse" dbname=orders',
        {"key_value": 1},
        ["correct horse"],
    ),
    ('{"user": "app", "password": "hunter2", "db": "orders"}', {"key_value": 1}, ["hunter2"]),
    (
        '{"line": "{\\"client_secret\\": \\"c7f3e9a1b2\\", \\"level\\": \\"info\\"}"}',
        {"key_value": 1},
        ["c7f3e9a1b2"],
    ),
    ("database:\n  PASSWORD: hunter\n  user: app", {"key_value": 1}, ["hunter"]),
    ("- name: DB_PASSWD\n  value: x\npasswd: 'S3cr3t!'", {"key_value": 1}, ["S3cr3t!"]),
    (
        "level=info msg=login api_key=ab12cd34ef56 access_token=zz99yy88 apikey=q1w2e3r4",
        {"key_value": 3},
        ["ab12cd34ef56", "zz99yy88", "q1w2e3r4"],
    ),
    (
        "X-Api-Key: 5f4dcc3b5aa765d61d8327deb882cf99",
        {"key_value": 1},
        ["5f4dcc3b5aa765d61d8327deb882cf99"],
    ),
    (
        "export PGPASSWORD=s3cr3t; pwd=Zq9x; SECRET=topsecret-42",
        {"key_value": 3},
        ["s3cr3t", "Zq9x", "topsecret-42"],
    ),
    (
        "AccountName=acme;AccountKey=bXlTdG9yYWdlS2V5PT0vKys=;EndpointSuffix=core.windows.net",
        {"key_value": 1},
        ["bXlTdG9yYWdlS2V5PT0vKys="],
    ),
    ("    credentials: testtoken", {"key_value": 1}, ["testtoken"]),
    # Go's %v of an http.Header: values in brackets.
    (
        'msg="upstream failed" headers=map[Authorization:[Bearer 9Zq2Lm7Vt4Yp1Rw8Nb6C] '
        "Content-Type:[application/json] X-Api-Key:[4f9a2c7e1b8d4e6fa1c3]]",
        {"authorization_header": 1, "key_value": 1},
        ["9Zq2Lm7Vt4Yp1Rw8Nb6C", "4f9a2c7e1b8d4e6fa1c3"],
    ),
    # Go's MySQL driver DSN has no scheme.
    (
        'level=error msg="inventory sync failed" dsn="cart:hunter2-mysql@tcp(orders-db:3306)/cart"',
        {"url_password": 1},
        ["hunter2-mysql"],
    ),
    ("DSN=app:p@ssw0rd!@unix(/run/mysqld/mysqld.sock)/orders", {"url_password": 1}, ["p@ssw0rd!"]),
]

ORDINARY = [
    '10.42.0.17 - - [25/Nov/2026:03:58:42 +0000] "GET /v1/charges/8812?expand=customer HTTP/1.1"'
    ' 503 182 "-" "Go-http-client/1.1" 0.743',
    '{"level": "error", "msg": "HikariPool-1 - Connection is not available, request timed out '
    'after 30000ms", "status": 503, "latency_ms": 9664, '
    '"trace_id": "4a12321db0ac658d1d4e724a34d1bd92"}',
    'ts=2026-11-25T03:58:42Z level=error msg="payment call failed: 503 Service Unavailable"'
    " order_id=99945 duration=743ms",
    'Traceback (most recent call last):\n  File "/app/payments/db.py", line 88, in connect\n'
    "    conn = psycopg.connect(DSN)\npsycopg.OperationalError: connection to server at "
    '"10.3.4.5", port 5432 failed: Connection refused',
    "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available\n"
    "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)\n"
    "\tat com.acme.payments.ChargeService.charge(ChargeService.java:142)",
    "panic: runtime error: invalid memory address or nil pointer dereference\n"
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a3b2c]\n\n"
    "goroutine 1 [running]:\nmain.(*Server).handle(0xc000132000)\n\t/app/server.go:88 +0x1d",
    "Warning  BackOff  pod/payment-api-7d4f5b9-abc12  Back-off restarting failed container",
    'Normal   Pulled   pod/checkout-5c9d8-xk2lp  Container image "registry.acme.io/checkout@sha256'
    ':9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" already present',
    'Warning  FailedMount  MountVolume.SetUp failed for volume "db-secret" : secret "db-secret"'
    " not found",
    "Memory cgroup out of memory: Killed process 4121 (postgres) total-vm:2150360kB, "
    "anon-rss:1048576kB, oom_score_adj:993",
    'FATAL:  password authentication failed for user "orders"',
    'ERROR:  duplicate key value violates unique constraint "charges_pkey" DETAIL:  Key (id)=(8812)'
    " already exists.",
    "password reset requested for user bob",
    "token bucket exhausted for client 10.42.0.17, tokens=0 refill_rate=50/s",
    "invalid token: signature has expired",
    "Bearer authentication failed: no credentials",
    "rejected request without Authorization header",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 "
    "request_id=7f3c1d2e-9b8a-4c5d-8e6f-1a2b3c4d5e6f",
    "connecting to postgres://app@orders-db.production.svc:5432/orders?sslmode=disable",
    "GET https://grafana.acme.io:3000/d/abc123/payments?orgId=1&from=now-1h 200 12ms",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b merged by alice@example.com",
    "max_tokens=2000 input_tokens=1532 output_tokens=210 stop_reason=end_turn",
    "secret_name=db-credentials namespace=production rotated=false",
    'kube-apiserver: audit: user="system:serviceaccount:production:payment-api" verb=get'
    " resource=secrets name=db-credentials",
    "sk-lb-01 health check ok; disk-pressure=false; task-runner-7 ready",
    "2026-11-25T03:57:51.982Z INFO  [main] o.s.b.w.e.tomcat.TomcatWebServer - Tomcat started on"
    " port(s): 8080 (http) with context path ''",
    '{"password": null, "token": "", "api_key": "***"}',
    "ssh git@github.com:acme/payments.git fetched 12 objects in 340ms",
]

LEAK_SHAPES = [
    re.compile(r"(?i)\bbearer[ \t]+([A-Za-z0-9\-._~+/]{6,}=*)"),
    re.compile(r"://[^\s:/@\"']*:([^\s@/\"']+)@"),
    re.compile(r"(?i)(?:password|passwd|secret|token|credentials)[\"']?\s*[:=]\s*[\"']?(\w{4,})"),
]


def fixture_texts():
    for path in sorted(FIXTURES_DIR.rglob("*")):
        if path.suffix == ".json":
            name = str(path.relative_to(FIXTURES_DIR))
            yield name, fixture(name)
        elif path.is_file() and path.suffix != ".md":
            yield path.name, path.read_text()


def leaked_values(text):
    return {m.group(1) for shape in LEAK_SHAPES for m in shape.finditer(text)} - {"REDACTED"}


def test_no_credential_in_any_fixture_survives():
    """Every leak-shaped value in the recorded fixtures (Alertmanager's `Bearer testtoken`
    today) is gone from both the text and the structured redaction."""
    leaks = set()
    for _, recorded in fixture_texts():
        text = recorded if isinstance(recorded, str) else json.dumps(recorded)
        leaks |= leaked_values(text)
        redacted = redact(text).text
        as_data = json.dumps(redact_data(recorded).value)
        for value in leaked_values(text):
            assert value not in redacted and value not in as_data
    assert "testtoken" in leaks


def test_loki_fixtures_keep_all_their_evidence():
    for name, recorded in fixture_texts():
        if name.startswith("loki/"):
            result = redact(json.dumps(recorded["body"]))
            assert result.counts == {}, name
            assert redact_data(recorded["body"]).counts == {}, name


def test_the_leaking_payment_api_line_is_cleaned_from_a_loki_answer():
    """The incident's leaking line, in the shape payment-api logs, inside the recorded
    answer: raw text, JSON text and Loki's `| json` labels all lose both secrets."""
    body = fixture("loki/query_range_streams_errors.json")["body"]
    line = json.dumps(
        {
            "level": "warn",
            "msg": "retrying charge with Authorization: Bearer 7Hq2Zx9LmP4vR8tY1wK5 "
            "dsn=postgresql://payments:Pa55w0rdOrders@orders-db.production.svc:5432/orders",
            "trace_id": "4a12321db0ac658d1d4e724a34d1bd92",
        }
    )
    labels = {"service": "payment-api", "dsn": "postgresql://payments:Pa55w0rdOrders@orders-db"}
    body["data"]["result"].append({"stream": labels, "values": [["1795579090000000000", line]]})

    as_text = redact(json.dumps(body))
    as_data = redact_data(body)

    for leaked in ("7Hq2Zx9LmP4vR8tY1wK5", "Pa55w0rdOrders"):
        assert leaked not in as_text.text
        assert leaked not in json.dumps(as_data.value)
    assert as_text.counts == {"authorization_header": 1, "url_password": 2}
    assert "4a12321db0ac658d1d4e724a34d1bd92" in as_text.text
    assert "payments:[REDACTED:url_password]@orders-db.production.svc:5432" in as_text.text


@pytest.mark.parametrize(("text", "counts", "secrets"), SECRETS)
def test_secret_shapes_are_redacted_by_kind(text, counts, secrets):
    result = redact(text)
    assert result.counts == counts
    for secret in secrets:
        assert secret not in result.text
    for kind in counts:
        assert f"[REDACTED:{kind}]" in result.text


def test_keys_users_and_hosts_around_secrets_are_kept():
    assert redact("postgres://payments:pw1@orders-db:5432/orders").text == (
        "postgres://payments:[REDACTED:url_password]@orders-db:5432/orders"
    )
    assert redact('{"db_password": "x1"}').text == '{"db_password": "[REDACTED:key_value]"}'
    assert redact("Authorization: Bearer t0k3n").text == (
        "Authorization: Bearer [REDACTED:authorization_header]"
    )


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_log_lines_are_unchanged(line):
    result = redact(line)
    assert result.text == line
    assert result.counts == {}


def test_corpora_are_large_enough():
    assert len(SECRETS) >= 25 and len(ORDINARY) >= 25
    kinds = {kind for _, counts, _ in SECRETS for kind in counts}
    assert kinds >= {
        "authorization_header", "bearer_token", "jwt", "aws_access_key", "aws_secret_key",
        "gcp_api_key", "github_token", "slack_token", "anthropic_key", "openai_key",
        "private_key", "url_password", "key_value",
    }  # fmt: skip


@pytest.mark.parametrize(("text", "counts", "secrets"), SECRETS)
def test_redacting_twice_changes_nothing(text, counts, secrets):
    once = redact(text)
    twice = redact(once.text)
    assert twice.text == once.text
    assert twice.counts == {}


def test_a_rejected_lookalike_does_not_hide_the_secret_after_it():
    result = redact("password=Bearer sk-Bearer abc123password")
    assert result.text == "password=[REDACTED:key_value] sk-Bearer [REDACTED:bearer_token]"
    assert redact(result.text).counts == {}


def test_redact_data_walks_keys_values_and_lists_and_sums_counts():
    data = {
        "stream": {"service": "payment-api", "password": "hunter2", "Authorization": "testtoken"},
        "values": [["1", "token=abc123 ok"], ["2", "user=bob"]],
        "Bearer 9f2c1e7a55b04d1d": 3,
        "max_tokens": 2000,
        "ok": True,
    }
    result = redact_data(data)
    assert result.value == {
        "stream": {
            "service": "payment-api",
            "password": "[REDACTED:key_value]",
            "Authorization": "[REDACTED:authorization_header]",
        },
        "values": [["1", "token=[REDACTED:key_value] ok"], ["2", "user=bob"]],
        "Bearer [REDACTED:bearer_token]": 3,
        "max_tokens": 2000,
        "ok": True,
    }
    assert result.counts == {"key_value": 2, "authorization_header": 1, "bearer_token": 1}
    assert redact_data(result.value).counts == {}


def test_extra_patterns_redact_as_custom():
    redactor = Redactor([r"ACME-[0-9]{6}", r"session=(?P<secret>[a-f0-9]{8})"])
    result = redactor.redact("license ACME-123456 session=deadbeef user=bob")
    assert result.text == "license [REDACTED:custom] session=[REDACTED:custom] user=bob"
    assert result.counts == {"custom": 2}
    assert redactor.redact(result.text).counts == {}


def test_invalid_extra_pattern_is_refused():
    with pytest.raises(ValueError, match="not a regex"):
        Redactor(["(unclosed"])
    with pytest.raises(ValueError, match="list of regexes"):
        Redactor("ACME-[0-9]+")


def test_default_redactor_reads_the_setting(settings):
    settings.ROOTLINE_REDACT_PATTERNS = [r"ACME-[0-9]{6}"]
    assert redact("license ACME-123456").text == "license [REDACTED:custom]"
    settings.ROOTLINE_REDACT_PATTERNS = []
    assert redact("license ACME-123456").text == "license ACME-123456"
    assert default_redactor() is default_redactor()


@pytest.mark.parametrize(
    "hostile",
    [
        "password=" * 20_000,
        "postgres://" + "a" * 200_000,
        "x://u:" + "p" * 200_000,
        "-----BEGIN PRIVATE KEY-----" + "A" * 200_000,
        "eyJ" + "a" * 200_000 + ".",
        "Authorization: " * 10_000,
        "bearer " * 30_000,
        ('"token": "' + "a" * 600) * 300,
        "a:" * 100_000 + "@tcp(",
        "headers=map[X-Api-Key:[" * 10_000,
    ],
)
def test_hostile_input_is_linear(hostile):
    started = time.perf_counter()
    redact(hostile)
    assert time.perf_counter() - started < 2.0


def test_a_megabyte_of_logs_takes_well_under_a_second():
    text = "\n".join(ORDINARY * 400)[:1_000_000]
    started = time.perf_counter()
    assert redact(text).counts == {}
    assert time.perf_counter() - started < 1.0


SECRET_VALUE = st.text("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=12,
                       max_size=40).map(lambda s: s + "7Q")  # fmt: skip
SECRET_FORMS = [
    "password={}",
    'password="{}"',
    '"api_key": "{}"',
    "client_secret: {}",
    "Authorization: Bearer {}",
    "Bearer {}",
    "postgres://app:{}@db:5432/x",
    "access_token={}&scope=read",
]
FILLER = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    before=FILLER,
    after=FILLER,
    form=st.sampled_from(SECRET_FORMS),
    value=SECRET_VALUE,
    separators=st.tuples(*[st.sampled_from([" ", "\n", "\t", ", ", " | "])] * 2),
)
def test_an_embedded_secret_never_survives(before, after, form, value, separators):
    text = before + separators[0] + form.format(value) + separators[1] + after
    result = redact(text)
    assert value not in result.text
    again = redact(result.text)
    assert again.text == result.text and again.counts == {}


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=400))
def test_redaction_is_idempotent_on_any_text(text):
    once = redact(text)
    again = redact(once.text)
    assert again.text == once.text and again.counts == {}
