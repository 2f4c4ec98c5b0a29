"""The browser's sign-in (``/api/v1/session``) and the CSRF check on what its cookie
authenticates, against a real server with jwt auth.

Nothing set the ``jobstream_token`` cookie, so a page whose own ``EventSource`` or ``WebSocket``
sends no header (seeds 000 and 004) could not authenticate under jwt; and a cookie the browser
sends by itself must not let another site's page change anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from http.cookies import SimpleCookie

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from serverproc import ServerProcess, bearer, token

VIDEO = {"kind": "video", "params": {"prompt": "a red fox at dusk"}}


def set_cookie(response: httpx.Response) -> dict[str, str]:
    """The attributes of the response's ``jobstream_token`` cookie (names in lower case; a
    flag such as ``httponly`` maps to ``"true"``), plus its ``value``."""
    (header,) = response.headers.get_list("set-cookie")
    name, _, rest = header.partition("=")
    assert name == "jobstream_token", header
    value, *attributes = (part.strip() for part in rest.split(";"))
    parsed = {"value": value}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        parsed[key.lower()] = val or "true"
    SimpleCookie(header)  # well-formed
    return parsed


@pytest.fixture
async def anon(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def test_sign_in_with_a_header_token_sets_an_httponly_strict_cookie_within_its_exp(
    anon: httpx.AsyncClient,
) -> None:
    ttl = 600
    alice = token("alice", ["user"], ttl=ttl)
    before = time.time()
    response = await anon.post("/api/v1/session", headers={"Authorization": f"Bearer {alice}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sub"] == "alice" and body["roles"] == ["user"] and body["auth"] == "jwt"
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()
    assert before + ttl - 5 <= expires_at <= before + ttl + 5

    cookie = set_cookie(response)
    assert cookie["value"] == alice
    assert cookie["httponly"] == "true"
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert "secure" not in cookie  # plain http
    assert 0 < int(cookie["max-age"]) <= expires_at - before
    assert "domain" not in cookie


async def test_sign_in_with_a_body_token_then_the_cookie_alone_says_who_i_am(
    anon: httpx.AsyncClient,
) -> None:
    response = await anon.post("/api/v1/session", json={"token": token("bob")})
    assert response.status_code == 200, response.text
    assert set_cookie(response)["httponly"] == "true"
    # The client keeps the cookie, as a browser does; no header from here on.
    me = await anon.get("/api/v1/session")
    assert me.status_code == 200 and me.json()["sub"] == "bob"
    listed = await anon.get("/api/v1/jobs")
    assert listed.status_code == 200


async def test_the_cookie_is_secure_when_the_request_came_over_https(
    server: ServerProcess,
) -> None:
    """Behind a TLS-terminating proxy (on 127.0.0.1, which uvicorn trusts for
    ``X-Forwarded-Proto``), the browser spoke https: the cookie must be ``Secure``."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post(
            "/api/v1/session",
            json={"token": token("alice")},
            headers={"X-Forwarded-Proto": "https", "Origin": f"https://127.0.0.1:{server.port}"},
        )
    assert response.status_code == 200, response.text
    assert set_cookie(response)["secure"] == "true"


async def test_sign_out_clears_the_cookie(anon: httpx.AsyncClient, server: ServerProcess) -> None:
    assert (await anon.post("/api/v1/session", json={"token": token("alice")})).status_code == 200
    response = await anon.delete("/api/v1/session", headers={"Origin": server.url})
    assert response.status_code == 204
    cookie = set_cookie(response)
    assert cookie["max-age"] == "0" and cookie["path"] == "/" and cookie["value"] in ('""', "")
    after = await anon.get("/api/v1/session")
    assert after.status_code == 401
    # Signing out when not signed in is fine too.
    assert (await anon.delete("/api/v1/session")).status_code == 204


@pytest.mark.parametrize(
    ("send", "status", "says"),
    [
        ({}, 401, "no token to sign in with"),
        ({"json": {"token": "not-a-jwt"}}, 401, "invalid token"),
        ({"json": {"token": token("alice", ttl=-10)}}, 401, "expired"),
        (
            {"json": {"token": token("a", secret="another-secret-long-enough-for-hs256-0123")}},
            401,
            "invalid token",
        ),
        ({"headers": {"Authorization": "Basic dXNlcjpwYXNz"}}, 401, "Bearer <token>"),
        ({"json": {"token": token("robot", ["reporter"])}}, 403, "reporter"),
        (
            {"json": {"token": token("alice")}, "headers": bearer("bob")},
            400,
            "two different tokens",
        ),
        ({"json": {"token": 5}}, 422, "valid string"),
        ({"json": {"token": ""}}, 422, "at least 1 character"),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422, "JSON"),
    ],
    ids=[
        "nothing",
        "garbage",
        "expired",
        "wrong-secret",
        "not-bearer",
        "reporter",
        "two-tokens",
        "token-not-a-string",
        "empty-token",
        "not-json",
    ],
)
async def test_a_bad_sign_in_is_a_4xx_that_says_what_to_fix_and_sets_no_cookie(
    anon: httpx.AsyncClient, send: dict[str, object], status: int, says: str
) -> None:
    response = await anon.post("/api/v1/session", **send)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert says in str(response.json()["detail"])
    assert "set-cookie" not in response.headers


async def test_a_stream_ticket_cannot_make_a_session(anon: httpx.AsyncClient) -> None:
    issued = await anon.post("/api/v1/stream-tickets", headers=bearer("alice"))
    ticket = issued.json()["ticket"]
    response = await anon.post("/api/v1/session", json={"token": ticket})
    assert response.status_code == 401
    assert "stream ticket" in response.json()["detail"]
    by_query = await anon.post(f"/api/v1/session?ticket={ticket}")
    assert by_query.status_code == 401 and "stream ticket" in by_query.json()["detail"]
    assert "set-cookie" not in response.headers and "set-cookie" not in by_query.headers


async def test_another_sites_page_cannot_sign_the_browser_in(
    anon: httpx.AsyncClient,
) -> None:
    response = await anon.post(
        "/api/v1/session",
        json={"token": token("mallory")},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "evil.example" in response.json()["detail"]
    assert "set-cookie" not in response.headers


@pytest.fixture
async def signed_in(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as alice: it holds the cookie and sends no header."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post("/api/v1/session", json={"token": token("alice")})
        assert response.status_code == 200, response.text
        yield client


async def test_cookie_authenticated_submit_without_an_origin_is_403(
    signed_in: httpx.AsyncClient,
) -> None:
    response = await signed_in.post("/api/v1/jobs", json=VIDEO)
    assert response.status_code == 403
    assert "Origin" in response.json()["detail"]


async def test_cookie_authenticated_submit_from_a_foreign_origin_is_403(
    signed_in: httpx.AsyncClient,
) -> None:
    for origin in ("https://evil.example", "null", "http://127.0.0.1:1"):
        response = await signed_in.post("/api/v1/jobs", json=VIDEO, headers={"Origin": origin})
        assert response.status_code == 403, (origin, response.text)
        assert "JOBSTREAM_ALLOWED_ORIGINS" in response.json()["detail"]


async def test_cookie_authenticated_submit_from_the_servers_own_origin_is_202(
    signed_in: httpx.AsyncClient, server: ServerProcess
) -> None:
    response = await signed_in.post("/api/v1/jobs", json=VIDEO, headers={"Origin": server.url})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["owner"] == "alice"
    # Cancel is a state change too, and so is a profile's submit (one check for every route).
    cancel = f"/api/v1/jobs/{job['id']}/cancel"
    assert (await signed_in.post(cancel)).status_code == 403
    assert (await signed_in.post(cancel, headers={"Origin": server.url})).status_code == 202
    generate = {"prompt": "a fox"}
    assert (await signed_in.post("/generate", json=generate)).status_code == 403
    own = await signed_in.post("/generate", json=generate, headers={"Origin": server.url})
    assert own.status_code == 200, own.text


async def test_reads_and_streams_with_the_cookie_need_no_origin(
    signed_in: httpx.AsyncClient, server: ServerProcess
) -> None:
    job = (await signed_in.post("/api/v1/jobs", json=VIDEO, headers={"Origin": server.url})).json()
    assert (await signed_in.get("/api/v1/jobs")).status_code == 200
    assert (await signed_in.get(f"/api/v1/jobs/{job['id']}")).status_code == 200
    async with signed_in.stream("GET", f"/api/v1/jobs/{job['id']}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")


async def test_header_authenticated_submit_without_an_origin_still_works(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post("/api/v1/jobs", json=VIDEO, headers=bearer("alice"))
        assert response.status_code == 202, response.text
        # A header wins over a cookie: a script holding both is not cookie-authenticated.
        client.cookies.set("jobstream_token", token("alice"))
        response = await client.post("/api/v1/jobs", json=VIDEO, headers=bearer("alice"))
        assert response.status_code == 202, response.text
        by_query = await client.post(f"/api/v1/jobs?token={token('alice')}", json=VIDEO)
        assert by_query.status_code == 202, by_query.text


async def test_an_allowed_origin_may_change_state_with_the_cookie(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_ALLOWED_ORIGINS": "https://app.example.com"}).start()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        signed = await client.post(
            "/api/v1/session",
            json={"token": token("alice")},
            headers={"Origin": "https://app.example.com"},
        )
        assert signed.status_code == 200, signed.text
        allowed = await client.post(
            "/api/v1/jobs", json=VIDEO, headers={"Origin": "https://app.example.com"}
        )
        assert allowed.status_code == 202, allowed.text
        other = await client.post(
            "/api/v1/jobs", json=VIDEO, headers={"Origin": "https://other.example.com"}
        )
        assert other.status_code == 403


async def test_with_auth_none_the_session_is_the_local_admin(
    make_server: Callable[..., ServerProcess],
) -> None:
    server = make_server({"JOBSTREAM_AUTH": "none"}).start()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        me = await client.get("/api/v1/session")
        assert me.status_code == 200
        assert me.json() == {"sub": "local", "roles": ["admin"], "expires_at": None, "auth": "none"}
        signed = await client.post("/api/v1/session", json={"token": "anything"})
        assert signed.status_code == 200 and "set-cookie" not in signed.headers


async def test_who_am_i_without_a_session_is_401_and_a_reporter_403(
    anon: httpx.AsyncClient,
) -> None:
    response = await anon.get("/api/v1/session")
    assert response.status_code == 401 and "POST /api/v1/session" in response.json()["detail"]
    reporter = await anon.get("/api/v1/session", headers=bearer("robot", ["reporter"]))
    assert reporter.status_code == 403
    admin = await anon.get("/api/v1/session", headers=bearer("root", ["admin"]))
    assert admin.status_code == 200 and admin.json()["roles"] == ["admin"]


async def test_a_websocket_with_the_cookie_from_a_foreign_origin_is_refused(
    server: ServerProcess,
) -> None:
    """A socket's messages are readable by the page that opened it (no CORS), so a handshake
    that only the cookie authenticates must come from an allowed origin; a client that sends no
    Origin is no browser page, and passes."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        job = (await client.post("/api/v1/jobs", json=VIDEO, headers=bearer("alice"))).json()
    url = f"ws://127.0.0.1:{server.port}/ws/jobs/{job['id']}"
    cookie = {"Cookie": f"jobstream_token={token('alice')}"}

    async with connect(url, additional_headers=cookie, origin=Origin("https://evil.example")) as ws:
        with pytest.raises(ConnectionClosed) as refused:
            await ws.recv()
    assert refused.value.rcvd is not None and refused.value.rcvd.code == 4403
    assert "evil.example" in refused.value.rcvd.reason

    for origin in (Origin(server.url), None):
        async with connect(url, additional_headers=cookie, origin=origin) as ws:
            first = json.loads(await ws.recv())
        assert first["job_id"] == job["id"], first
