"""bench/case_pack.py's push of a pack's logs to a Loki (`rca_accuracy.py --loki-url`),
received by a recording server on loopback: every line arrives once, in its stream, in
batches no larger than Loki's push limits want."""

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler

import case_pack
from background_server import BackgroundServer
from loki_stub import LogStore


class Recorder(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.pushes.append((self.path, self.headers["Content-Type"], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_push_logs_sends_every_line_once_in_its_stream(tmp_path, monkeypatch):
    monkeypatch.setattr(case_pack, "PUSH_BATCH_LINES", 7)
    records = [
        {
            "labels": {"namespace": "shop", "service": service, "pod": f"{service}-1"},
            "ts_ns": str(1_674_981_729_000_000_000 + n * 1_000_000),
            "line": f"{service} line {n}",
        }
        for n in range(40)
        for service in (("web", "db") if n % 3 else ("web",))
    ]
    path = tmp_path / "logs.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.writelines(json.dumps(r) + "\n" for r in records)
    server = BackgroundServer(("127.0.0.1", 0), Recorder)
    server.pushes, server.lock = [], threading.Lock()
    with server.start():
        case_pack.push_logs(path, server.url)

    assert {(p, t) for p, t, _ in server.pushes} == {("/loki/api/v1/push", "application/json")}
    batches = [body["streams"] for _, _, body in server.pushes]
    assert all(sum(len(s["values"]) for s in streams) <= 2 * 7 for streams in batches)
    pushed = LogStore(
        (s["stream"], int(ts), line)
        for streams in batches
        for s in streams
        for ts, line in s["values"]
    )
    expected = LogStore.from_jsonl_gz(path)
    assert len(pushed) == len(records)
    assert [(s.labels, s.timestamps, s.lines) for s in pushed.streams] == [
        (s.labels, s.timestamps, s.lines) for s in expected.streams
    ]
