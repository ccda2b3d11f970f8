"""HTTP/webhook provider against a real local HTTP server that injects failures."""

from __future__ import annotations

import random
import time

import pytest

from engagelab.channels import WebhookContent, preview
from engagelab.delivery.http import HttpProvider, backoff_delay, retry_after_seconds
from engagelab.delivery.registry import provider_for

from .conftest import message
from .servers import HttpServer


def hooks(url, keys):
    content = WebhookContent(
        url=url + "/hook/{{ profile.user_id }}",
        headers={"X-Campaign": "spring"},
        body={"user": "{{ profile.user_id }}", "plan": "{{ profile.plan | default('free') }}"},
    )
    return [
        message(k, None, preview(content, {"user_id": f"u-{k}", "plan": "pro"}), channel="webhook")
        for k in keys
    ]


def test_failures_are_retried_and_each_key_processed_once():
    script = {
        "k500": ["500", "503"],
        "k429": ["429:1"],
        "kslow": ["slow:0.8"],  # processed, answered after the client's timeout
        "kdrop": ["drop"],  # connection closed before processing
        "kpdrop": ["process_drop"],  # processed, then the connection dropped
        "k400": ["400"],
    }
    keys = ["kok", *script]
    with HttpServer(script) as srv:
        p = HttpProvider(timeout=0.4, retries=3, backoff=0.05, backoff_max=0.2, concurrency=3)
        t0 = time.monotonic()
        res = {r.key: r for r in p.deliver(hooks(srv.url, keys))}
        p.close()
        elapsed = time.monotonic() - t0
    for k in ["kok", "k500", "k429", "kslow", "kdrop", "kpdrop"]:
        assert res[k].ok, (k, res[k])
        assert srv.processed[k] == 1, k  # effectively once at the provider
    assert srv.attempts["kok"] == 1
    assert srv.attempts["k500"] == 3 and p.attempts["k500"] == 3
    assert srv.attempts["k429"] == 2
    assert srv.attempts["kslow"] == 2 and srv.attempts["kdrop"] == 2 and srv.attempts["kpdrop"] == 2
    # the 429's Retry-After: 1 was honoured although the backoff alone is <= 0.2 s
    t429 = srv.times["k429"]
    assert t429[1] - t429[0] >= 0.95
    assert elapsed < 10
    # 4xx: not retried, permanent
    assert res["k400"].ok is False and res["k400"].permanent is True
    assert srv.attempts["k400"] == 1 and srv.processed["k400"] == 0
    # what arrived: rendered URL, method, headers, body and the idempotency key
    body = srv.bodies["kok"]
    assert body["method"] == "POST" and body["path"] == "/hook/u-kok"
    assert body["json"] == {"user": "u-kok", "plan": "pro"}
    assert srv.headers["kok"]["Idempotency-Key"] == "kok"
    assert srv.headers["kok"]["X-Campaign"] == "spring"
    assert res["kok"].provider_id == "msg-kok"


def test_gives_up_after_retries_as_a_transient_failure():
    with HttpServer({"k": ["500"] * 10}) as srv:
        p = HttpProvider(retries=2, backoff=0.01, concurrency=1)
        [r] = p.deliver(hooks(srv.url, ["k"]))
        p.close()
    assert not r.ok and not r.permanent and "gave up after 3 attempts" in r.error
    assert srv.attempts["k"] == 3 and srv.processed["k"] == 0


def test_rerun_of_an_in_doubt_message_is_not_processed_twice():
    with HttpServer() as srv:
        batch = hooks(srv.url, ["a", "b"])
        for _ in range(2):  # the second run re-delivers in-doubt messages with the same keys
            p = HttpProvider()
            assert all(r.ok for r in p.deliver(batch))
            p.close()
    assert srv.attempts == {"a": 2, "b": 2}
    assert srv.processed == {"a": 1, "b": 1}


def test_connection_refused_is_retried_then_transient():
    with HttpServer() as srv:
        url = srv.url
    slept = []
    p = HttpProvider(retries=2, backoff=0.5, backoff_max=1.0, sleep=slept.append, concurrency=1)
    [r] = p.deliver(hooks(url, ["x"]))
    assert not r.ok and not r.permanent and "ConnectError" in r.error
    assert len(slept) == 2
    assert 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0  # exponential, full jitter


def test_gateway_envelope_for_other_channels(ws, monkeypatch):
    with HttpServer() as srv:
        ws.config["providers"] = {"push": {"type": "http", "url": srv.url + "/push"}}
        monkeypatch.setenv("ENGAGELAB_HTTP_TOKEN", "tok-123")
        p = provider_for("push", ws)
        assert isinstance(p, HttpProvider)
        m = message("pk", "device-token", {"title": "Hi", "body": "B"}, channel="push")
        [r] = p.deliver([m])
        p.close()
    assert r.ok
    got = srv.bodies["pk"]["json"]
    assert got["to"] == "device-token" and got["payload"] == {"title": "Hi", "body": "B"}
    assert got["labels"] == ["Onboarding"] and got["channel"] == "push"
    assert srv.headers["pk"]["Authorization"] == "Bearer tok-123"


def test_backoff_and_retry_after_helpers():
    rng = random.Random(1)
    for attempt, hi in [(1, 0.5), (2, 1.0), (3, 2.0), (10, 30.0)]:
        draws = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(2000)]
        assert all(0 <= d <= hi for d in draws)
        # full jitter: uniform over [0, hi], so the whole range is used
        assert min(draws) < 0.05 * hi and max(draws) > 0.95 * hi
        assert 0.45 * hi < sum(draws) / len(draws) < 0.55 * hi
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_http_provider_needs_a_url_for_gateways():
    with pytest.raises(ValueError, match=r"providers.sms.url"):
        HttpProvider(channel="sms")


# ------------------------------------------------------------ credentials bound to hosts
class TrickleServer:
    """A loopback HTTP server that answers one byte every ``interval`` seconds.

    ``where`` is ``"headers"`` (the status line and headers trickle) or ``"body"`` (the
    headers arrive at once, then a 1 kB body trickles).
    """

    def __init__(self, interval: float, where: str = "headers"):
        import socket
        import threading

        self.interval, self.where = interval, where
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        import threading

        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn) -> None:
        with conn:
            conn.recv(65536)
            self.requests += 1
            body = b"x" * 1000
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            data = head + body
            if self.where == "body":
                conn.sendall(head)
                data = body
            for i in range(len(data)):
                if self.stop.is_set():
                    return
                try:
                    conn.sendall(data[i : i + 1])
                except OSError:
                    return  # the client gave up
                time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.sock.close()


def test_token_is_sent_only_to_allowed_hosts(ws, monkeypatch):
    with HttpServer() as srv:
        port = srv.url.rsplit(":", 1)[1]
        ws.config["providers"] = {
            "webhook": {"type": "http", "allowed_hosts": [f"localhost:{port}"]}
        }
        monkeypatch.setenv("ENGAGELAB_WEBHOOK_TOKEN", "tok-secret-1")
        p = provider_for("webhook", ws)
        good = hooks(f"http://localhost:{port}", ["good"])
        bad = hooks(srv.url, ["bad"])  # 127.0.0.1 is not on the list
        [r_bad] = p.deliver(bad)
        [r_good] = p.deliver(good)
        p.close()
    assert r_good.ok and srv.headers["good"]["Authorization"] == "Bearer tok-secret-1"
    assert not r_bad.ok and r_bad.permanent
    assert "127.0.0.1" in r_bad.error and "providers.webhook.allowed_hosts" in r_bad.error
    assert "tok-secret-1" not in r_bad.error
    assert srv.attempts["bad"] == 0 and "bad" not in srv.headers  # no request was made


def test_a_token_without_an_allow_list_goes_nowhere_but_the_configured_url(ws, monkeypatch):
    monkeypatch.setenv("ENGAGELAB_WEBHOOK_TOKEN", "tok-secret-2")
    with HttpServer() as srv:
        ws.config["providers"] = {"webhook": {"type": "http"}}
        p = provider_for("webhook", ws)
        [r] = p.deliver(hooks(srv.url, ["k"]))
        p.close()
        assert not r.ok and r.permanent and "none configured" in r.error
        assert srv.attempts["k"] == 0
        # a gateway's url is its own allow-list
        gw = HttpProvider(channel="push", url=srv.url + "/push", token="t0k3n")
        assert gw.allowed_hosts == {srv.url.split("//")[1]}
        with pytest.raises(ValueError, match=r"providers.push.allowed_hosts"):
            HttpProvider(channel="push", url=srv.url, token="t", allowed_hosts=["other.example"])
        with pytest.raises(ValueError, match=r"host name or host:port, not a URL"):
            HttpProvider(allowed_hosts=["https://hooks.example.org/x"])


def test_content_headers_cannot_override_engagelabs_own(ws):
    with HttpServer() as srv:
        content = WebhookContent(
            url=srv.url + "/hook",
            headers={"Idempotency-Key": "attacker", "content-type": "text/plain",
                     "User-Agent": "evil", "X-Campaign": "spring"},
            body={"a": 1},
        )  # fmt: skip
        payload = preview(content, {"user_id": "u1"})
        payload["headers"]["Authorization"] = "Bearer stolen"  # even past the content checks
        m = message("real-key", None, payload, channel="webhook")
        p = HttpProvider(token="tok-own", allowed_hosts=["127.0.0.1"])
        with pytest.warns(UserWarning, match="cannot be overridden"):
            [r] = p.deliver([m])
        p.close()
    assert r.ok, r.error
    got = srv.headers["real-key"]  # recorded under the key that really arrived
    assert "attacker" not in srv.headers
    assert got["Idempotency-Key"] == "real-key"
    assert got["Authorization"] == "Bearer tok-own"
    assert got["Content-Type"] == "application/json" and got["User-Agent"] == "engagelab"
    assert got["X-Campaign"] == "spring"


# ------------------------------------------------------------ bounded work
@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickling_endpoint_is_cut_at_the_attempt_deadline(where):
    with TrickleServer(interval=0.25, where=where) as srv:
        # each byte arrives well within the 5 s per-operation timeout
        p = HttpProvider(timeout=5, deadline=1.5, retries=1, backoff=0.01, concurrency=1)
        t0 = time.monotonic()
        [r] = p.deliver(hooks(srv.url, ["slow"]))
        elapsed = time.monotonic() - t0
        p.close()
    assert not r.ok and not r.permanent
    assert "deadline" in r.error and "gave up after 2 attempts" in r.error
    assert srv.requests == 2
    assert 2.9 <= elapsed < 4.5  # two attempts of 1.5 s, not 1000 bytes x 0.25 s


def test_retry_after_over_the_cap_is_a_transient_failure_at_once():
    with HttpServer({"long": ["429:3600"], "short": ["429:1"]}) as srv:
        p = HttpProvider(retries=3, backoff=0.01, max_retry_after=5, concurrency=1)
        t0 = time.monotonic()
        [r] = p.deliver(hooks(srv.url, ["long"]))
        elapsed = time.monotonic() - t0
        [ok] = p.deliver(hooks(srv.url, ["short"]))
        p.close()
    assert not r.ok and not r.permanent
    assert "Retry-After 3600 s is over max_retry_after (5 s)" in r.error
    assert srv.attempts["long"] == 1 and srv.processed["long"] == 0
    assert elapsed < 2
    assert ok.ok and srv.attempts["short"] == 2  # a Retry-After under the cap is honoured
