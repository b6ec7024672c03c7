"""What the stand-in servers of bench/ share: an HTTP server running in a background thread.

with SomeServer(...).start() as server:   # a subclass of BackgroundServer
    httpx.get(server.url + "/ready")
"""

import threading
from http.server import ThreadingHTTPServer

# How soon close() stops the serving thread.
SHUTDOWN_POLL_SECONDS = 0.05


class BackgroundServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with `url`, `start()` and `close()`; `with` closes it."""

    daemon_threads = True
    thread_name = "stand-in"

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self._thread = None

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self):
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __exit__(self, *exc_info):
        self.close()
