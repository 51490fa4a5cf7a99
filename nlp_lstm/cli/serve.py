"""`nlp-lstm serve`: the models over HTTP, with TF Serving's REST API (nlp_lstm.serve).

The flags are checked, the models loaded (a missing or damaged one refused in one line, exit 2) and
the port bound before the server says where it listens; then uvicorn runs it until SIGINT or SIGTERM,
which end it cleanly (requests in flight are answered first).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from nlp_lstm.checks import positive_int, usage_error
from nlp_lstm.serve.config import ServerConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501  # TF Serving's REST port


def _milliseconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < 10_000:
        raise argparse.ArgumentTypeError(f"must be in [0, 10000) ms, got {text}")
    return value


def add_command(commands: Any) -> None:
    """Adds `serve` to the subparsers of `nlp-lstm`."""
    defaults = ServerConfig()
    parser = commands.add_parser(
        "serve", help="serve the models over HTTP (TF Serving's REST API)",
        description="Serves a sentiment and/or a next-word model over HTTP with TF Serving's REST API: "
        "GET /v1/models/NAME[/metadata], POST /v1/models/NAME:predict. A DIR is a model folder (what train "
        "wrote) or an export (what export --out wrote; its newest version is served).",
    )  # fmt: skip
    parser.add_argument("--sentiment", metavar="DIR", help="the sentiment model to serve")
    parser.add_argument("--nextword", metavar="DIR", help="the next-word model to serve")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="the address to listen on (default: %(default)s, this machine only)")  # fmt: skip
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the port (default: %(default)s)")
    parser.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=defaults.max_body_bytes,
        help="the largest request body taken; larger is answered 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-instances",
        type=positive_int,
        default=defaults.max_instances,
        help="the most instances in one request; more is answered 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=positive_int,
        default=defaults.max_batch_size,
        help="instances of concurrent requests run in one model call at most; 1 turns batching "
        "off (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-timeout-ms",
        type=_milliseconds,
        default=defaults.batch_timeout_ms,
        help="how long a batch waits for more requests after its first (default: %(default)s)",
    )
    parser.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Runs `nlp-lstm serve` until SIGINT or SIGTERM."""
    if args.sentiment is None and args.nextword is None:
        raise usage_error("nlp-lstm serve", "give --sentiment DIR, --nextword DIR or both")
    if not 0 <= args.port < 65536:
        raise usage_error("nlp-lstm serve", f"argument --port: must be in [0, 65535], got {args.port}")
    try:
        config = ServerConfig(args.max_body_bytes, args.max_instances, args.max_batch_size, args.batch_timeout_ms)
    except ValueError as error:
        raise usage_error("nlp-lstm serve", error) from None
    listener = bind(args.host, args.port)  # before loading: a busy port is said in a second
    import uvicorn

    from nlp_lstm.serve.app import build_app
    from nlp_lstm.serve.models import load_served

    models = {}
    for app in ("sentiment", "nextword"):
        if getattr(args, app) is not None:
            models[app] = load_served(app, getattr(args, app))
    host, port = listener.getsockname()[:2]
    for served in models.values():
        print(f"{served.name}: {served.source} {served.path}, version {served.version}, "
              f"signatures {', '.join(sorted(served.signatures))}")  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on http://{shown}:{port} (Ctrl-C stops)", flush=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(f"nlp-lstm: note: {host} is reachable from other machines; there is no authentication", file=sys.stderr)
    config = uvicorn.Config(
        build_app(models, config), log_level="warning", access_log=False, timeout_graceful_shutdown=10
    )
    server = _server_class(uvicorn)(config)
    server.run(sockets=[listener])
    print("stopped", flush=True)
    return 0


def _server_class(uvicorn: Any) -> type:
    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGINT or SIGTERM ends the process with status 0 once it has shut
        down (uvicorn re-raises the signal, so the process would die of it)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {number: signal.signal(number, self.handle_exit) for number in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for number, handler in previous.items():
                    signal.signal(number, handler)

    return Server


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); OSError (one line, exit 2) if the address is taken or unknown."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise OSError(f"cannot listen on {host}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(2048)
    except OSError as error:
        listener.close()
        raise OSError(f"cannot listen on {host}:{port} ({error.strerror}); pass --port with a free port") from None
    return listener
