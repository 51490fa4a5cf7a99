"""The server on a real loopback socket in a thread, and a small HTTP client: for test_serve and test_page."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time

from nlp_lstm.cli.serve import bind
from nlp_lstm.serve.config import ServerConfig


@contextlib.contextmanager
def running(models: dict, config: ServerConfig | None = None):
    """The app on a real socket (127.0.0.1, a free port) in a thread; yields a `Client`."""
    import uvicorn

    from nlp_lstm.serve.app import build_app

    listener = bind("127.0.0.1", 0)
    app = build_app(models, config)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield Client(listener.getsockname()[1], app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Client:
    def __init__(self, port: int, app=None):
        self.port, self.app = port, app

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def request_text(self, method: str, path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8")
        finally:
            connection.close()

    def post(self, path: str, payload) -> tuple[int, object]:
        return self.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})
