"""Bodies as gunicorn hands them over: Content-Length or chunked, over the limit (413) or badly chunked (400)."""

import json
import socket

import pytest

from bridge.deliveries import INDEX_KEY
from bridge.embedded import DEMO_SECRETS, demo_env
from tests.conftest import free_port
from tests.processes import PYTHON, child_env, start, stop, wait_for
from tests.rule_files import EXAMPLE_RULES, REPO
from tests.signing import sign_woocommerce

LIMIT = 4096


@pytest.fixture(scope="module")
def server(redis_url, sandbox_server):
    """Run the bridge under gunicorn on loopback with a small body limit; yield its port."""
    port = free_port()
    env = child_env(REDIS_URL=redis_url, RULES_DIR=EXAMPLE_RULES, PORT=port, WEB_CONCURRENCY=1,
                    BRIDGE_MAX_BODY_BYTES=LIMIT, **demo_env(sandbox_server.url))
    process = start([PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "bridge:create_app()"], env, cwd=REPO)
    try:
        wait_for(lambda: _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200,
                 what="gunicorn to answer /healthz")
        yield port
    finally:
        output = stop(process)
    assert "Traceback" not in output, output


def _exchange(port: int, data: bytes) -> tuple[int, bytes]:
    """Send raw bytes on a new connection; return the reply's status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # all sent: a body cut short ends here, as when a sender gives up
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before a refused body is all sent
        reply = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _chunked(raw: bytes, size: int = 1000) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(raw[i:i + size]), raw[i:i + size]) for i in range(0, len(raw), size)) + b"0\r\n\r\n"


def _request(raw_body: bytes, signed_body: bytes, chunked: bool) -> bytes:
    headers = {**sign_woocommerce(signed_body, DEMO_SECRETS["WOOCOMMERCE_SECRET"]), "Host": "127.0.0.1",
               "Content-Type": "application/json", "Connection": "close"}
    headers.update({"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(len(raw_body))})
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST /hooks/shop HTTP/1.1\r\n{lines}\r\n".encode() + raw_body


def _order(size: int) -> bytes:
    order = {"id": size, "status": "processing", "note": ""}
    return json.dumps({**order, "note": "x" * (size - len(json.dumps(order)))}).encode()


def test_a_chunked_body_within_the_limit_is_accepted(server, redis_conn):
    body = _order(LIMIT)
    status, reply = _exchange(server, _request(_chunked(body), body, chunked=True))
    assert status == 202, reply
    assert json.loads(reply)["event"] == "order.updated" and redis_conn.zcard(INDEX_KEY) == 1


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_body_over_the_limit_is_413_and_never_processed_cut_short(server, redis_conn, chunked):
    body = _order(LIMIT + 1)
    # Signed over its first LIMIT bytes: a bridge that cut the body there and went on would accept it.
    sent = _chunked(body) if chunked else body
    status, reply = _exchange(server, _request(sent, body[:LIMIT], chunked))
    assert status == 413, reply
    assert f"over the limit of {LIMIT}".encode() in reply and redis_conn.zcard(INDEX_KEY) == 0


@pytest.mark.parametrize("broken", [
    b"zz\r\n{}\r\n0\r\n\r\n",                  # a chunk size that is not hex
    b"2\r\n{}XX0\r\n\r\n",                      # a chunk without its CRLF
    b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",  # a chunk size past any integer a server keeps
    b"5\r\n{}",                                 # the stream ends inside a chunk
], ids=["size-not-hex", "no-terminator", "huge-size", "cut-off"])
def test_malformed_chunking_is_400(server, redis_conn, broken):
    status, reply = _exchange(server, _request(broken, b"{}", chunked=True))
    assert status == 400 and b"the body cannot be read" in reply, reply
    assert redis_conn.zcard(INDEX_KEY) == 0


def test_a_webhook_is_one_log_line_and_other_requests_keep_gunicorns_access_line(redis_url, sandbox_server):
    """gunicorn.conf.py leaves out the access line of a webhook the bridge logged itself, with what that line said."""
    port = free_port()
    env = child_env(REDIS_URL=redis_url, RULES_DIR=EXAMPLE_RULES, PORT=port, WEB_CONCURRENCY=1, BRIDGE_LOG_FORMAT="json",
                    **demo_env(sandbox_server.url))
    process = start([PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "bridge:create_app()"], env, cwd=REPO)
    try:
        wait_for(lambda: _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200,
                 what="gunicorn to answer /healthz")
        body = _order(200)
        assert _exchange(port, _request(body, body, chunked=False))[0] == 202
        assert _exchange(port, _request(body, b"not what was signed", chunked=False))[0] == 401
    finally:
        output = stop(process)
    lines = output.splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    deliveries = [entry for entry in logged if entry["message"].startswith("delivery ")]
    assert len(deliveries) == 1, output
    assert deliveries[0]["status"] == 202 and deliveries[0]["remote_addr"] == "127.0.0.1"
    assert deliveries[0]["seconds"] >= 0 and deliveries[0]["source"] == "shop"
    access = [line for line in lines if '"GET /healthz' in line or '"POST /hooks/shop' in line]
    assert any('"GET /healthz HTTP/1.1" 200' in line for line in access), output
    assert [line for line in access if "POST" in line and '" 401 ' in line], output  # a refusal keeps its access line
    assert not [line for line in access if "POST" in line and '" 202 ' in line], output


@pytest.mark.parametrize("asked", [[], ["--statsd-host", "localhost:8125"]], ids=["plain", "statsd"])
def test_gunicorn_keeps_its_statsd_logger_when_asked_for(monkeypatch, asked):
    """gunicorn only switches to its statsd logger while logger_class is its own: asked for statsd, the conf leaves it."""
    import runpy

    monkeypatch.setattr("sys.argv", ["gunicorn", *asked, "bridge:create_app()"])
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    settings = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    assert ("logger_class" in settings) == (not asked)
