"""The public mode's rules in isolation: the token bucket's arithmetic, the keys
document, ``key=`` taken out of the query byte for byte, and CORS decisions."""

from __future__ import annotations

import pytest

from simrec.config import Settings
from simrec.serving import access
from tests.clock import FakeClock


def test_token_bucket_burst_rate_and_wait() -> None:
    clock = FakeClock(100.0)
    limiter = access.RateLimiter(per_minute=60, burst=3, clock=clock)  # 1 token a second
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0.0  # one bucket per key
    clock.now += 0.25
    assert limiter.take("a") == pytest.approx(0.75)
    clock.now += 0.75
    assert limiter.take("a") == 0.0
    clock.now += 1000  # refills to the burst, never beyond
    assert [limiter.take("a") for _ in range(4)][-1] == pytest.approx(1.0)


def test_keys_document() -> None:
    digest = access.key_hash("secret")
    assert access.parse_keys(f'{{"shop": "{digest.upper()}"}}'.encode(), "f") == {digest: "shop"}
    with pytest.raises(ValueError, match="JSON object"):
        access.parse_keys(b"[]", "f")
    with pytest.raises(ValueError, match="in f are not JSON"):
        access.parse_keys(b"{", "f")


def test_key_parameter_is_removed_and_the_rest_kept_byte_for_byte() -> None:
    query = "basket=%C3%A9,b&key=a%2Bb+c&n=3&keyword=x"
    assert access._strip_key(query) == ("basket=%C3%A9,b&n=3&keyword=x", ["a+b c"])
    assert access._strip_key("sku=x") == ("sku=x", [])


class Echo:
    """A stand-in for ServingApp.respond that answers what it was asked."""

    settings = Settings()

    def respond(self, method: str, path: str, query: str):
        return 200, [("Content-Type", "application/json")], f"{method} {path} {query}".encode()


def test_private_mode_changes_nothing() -> None:
    gate = access.Gate(Echo(), Settings())
    json_type = [("Content-Type", "application/json")]
    assert gate.respond("GET", "/similar", "sku=x", {}) == (200, json_type, b"GET /similar sku=x")
    # key= is the API's to refuse (an unknown parameter), as before.
    assert gate.respond("GET", "/similar", "key=k", {})[2] == b"GET /similar key=k"
    # No allowed origins: Origin is ignored (no CORS headers: a browser cannot read it).
    status, headers, _ = gate.respond("GET", "/similar", "sku=x", {"origin": "https://a.b"})
    assert status == 200 and headers == json_type
    preflight = {"origin": "https://a.b", "access-control-request-method": "GET"}
    assert gate.respond("OPTIONS", "/similar", "", preflight)[2] == b"OPTIONS /similar "


def test_origins_any_listed_or_the_page_itself() -> None:
    gate = access.Gate(Echo(), Settings(allowed_origins="https://a.example, https://b.example/"))
    headers = gate.respond("GET", "/x", "", {"origin": "https://b.example"})[1]
    assert ("Access-Control-Allow-Origin", "https://b.example") in headers
    assert ("Vary", "Origin") in gate.respond("GET", "/x", "", {})[1]  # for caches
    own = {"origin": "http://127.0.0.1:8080", "host": "127.0.0.1:8080"}
    assert gate.respond("GET", "/x", "", own)[0] == 200
    assert gate.respond("GET", "/x", "", {"origin": "https://c.example"})[0] == 403
    anyone = access.Gate(Echo(), Settings(allowed_origins="*"))
    assert anyone.respond("GET", "/x", "", {"origin": "https://c.example"})[0] == 200
