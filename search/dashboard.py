"""optuna-dashboard on the experiment's Optuna study: `run_search.py --dashboard` serves it from the
driver on the loopback address while the search runs; `command` opens it on a finished one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

HOST = "127.0.0.1"  # every listener on loopback (docs/security.md): the dashboard has no login
PORT = 8080  # optuna-dashboard's own default; another free port when it is taken
URL = f"http://{HOST}:{PORT}"


def command(study_url: str) -> str:
    """The shell command that opens the dashboard on a study, running or finished."""
    return f"optuna-dashboard {study_url} --host {HOST}"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a request under way does not keep the driver alive


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the standard library's name)
        pass  # one line per request would drown the search's progress lines


@contextmanager
def serving(study_url: str, port: int = PORT) -> Iterator[str]:
    """optuna-dashboard on `study_url`, in a thread of this process, until the block ends; yields
    its URL. The driver's end ends it too (daemon thread)."""
    import optuna_dashboard  # 2 s to import: only for a search that asks for it

    app = optuna_dashboard.wsgi(study_url)
    try:
        server = make_server(HOST, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError:  # the port is taken (a second search, a dashboard already open): any free one
        server = make_server(HOST, 0, app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="optuna-dashboard", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def served_if(wanted: bool, study_url: str) -> Iterator[None]:
    """`run_search.py --dashboard`: the dashboard for the block's duration, its URL printed."""
    if not wanted:
        yield
        return
    with serving(study_url) as url:
        address = url.removeprefix("http://")
        print(f"optuna-dashboard (live trials, curves, importance): {url}  (ssh -L {address}:{address} this-host)")
        yield
