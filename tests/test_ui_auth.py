"""Web UI and API access control: basic auth over the UI, API and websocket, the send
API's own rules, HTTPS, and the browser UI behind auth, all with real requests."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from simple_websocket import ConnectionError as WebSocketError
from test_ui_browser import CHROMIUM_ARGS, TIMEOUT, browser, wait_live  # noqa: F401

from helpers import WsClient
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.net.tls import self_signed
from mailpit_py.server import Server

# bcrypt at its lowest cost keeps the tests quick; the check is the same.
BOB_HASH = bcrypt.hashpw(b"hunter2", bcrypt.gensalt(rounds=4)).decode()
USERS = f"ann:secret bob:{BOB_HASH}"
UNVERIFIED = ssl._create_unverified_context()  # the self-signed test certificate


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(
    url: str,
    auth: tuple[str, str] | None = None,
    *,
    method: str = "GET",
    body: Any = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if auth is not None:
        req.add_header("Authorization", basic(*auth))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


SEND = {"From": {"Email": "app@example.com"}, "To": [{"Email": "u@example.com"}], "Subject": "x"}


def test_ui_api_and_assets_need_credentials(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(ui_auth=USERS)
    for path in ("", "api/v1/messages", "api/v1/info", "view/latest.txt", "metrics"):
        status, headers, body = call(mp.http_url + path)
        assert status == 401, path
        assert headers["WWW-Authenticate"] == 'Basic realm="mailpit_py", charset="UTF-8"'
        assert body == b"authentication required\n"
    assert call(mp.http_url + "api/v1/messages", ("ann", "secret"))[0] == 200
    assert call(mp.http_url + "api/v1/messages", ("bob", "hunter2"))[0] == 200  # bcrypt entry
    status, headers, page = call(mp.http_url, ("bob", "hunter2"))
    assert status == 200 and b"<base href=" in page


def test_wrong_credentials_never_tell_whether_the_user_exists(
    server_factory: Callable[..., Server],
) -> None:
    mp = server_factory(ui_auth=USERS)
    url = mp.http_url + "api/v1/messages"
    answers = [
        call(url, ("ann", "wrong")),
        call(url, ("bob", "wrong")),
        call(url, ("nobody", "secret")),
        call(url, ("", "")),
    ]
    shapes = {(status, headers["WWW-Authenticate"], body) for status, headers, body in answers}
    assert shapes == {
        (401, 'Basic realm="mailpit_py", charset="UTF-8"', b"authentication required\n")
    }


def test_health_probes_stay_open(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(ui_auth=USERS)
    assert call(mp.http_url + "livez")[:3:2] == (200, b"ok")
    assert call(mp.http_url + "readyz")[:3:2] == (200, b"ok")


def test_websocket_needs_credentials(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(ui_auth=USERS)
    url = mp.http_url.replace("http://", "ws://") + "api/events"
    with pytest.raises(WebSocketError) as refused:
        WsClient.connect(url)
    assert refused.value.status_code == 401
    with pytest.raises(WebSocketError):
        WsClient.connect(url, headers={"Authorization": basic("ann", "wrong")})
    ws = WsClient.connect(url, headers={"Authorization": basic("ann", "secret")})
    try:
        assert json.loads(ws.receive(timeout=10))["Type"] == "stats"
    finally:
        ws.close()


def test_send_api_falls_back_to_the_ui_credentials(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(ui_auth=USERS)
    url = mp.http_url + "api/v1/send"
    assert call(url, method="POST", body=SEND)[0] == 401
    assert call(url, ("ann", "secret"), method="POST", body=SEND)[0] == 200


def test_send_api_with_its_own_credentials(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(ui_auth=USERS, send_api_auth="robot:beep")
    url = mp.http_url + "api/v1/send"
    assert call(url, ("ann", "secret"), method="POST", body=SEND)[0] == 401  # UI's: not here
    assert call(url, ("robot", "beep"), method="POST", body=SEND)[0] == 200
    assert call(mp.http_url + "api/v1/messages", ("robot", "beep"))[0] == 401  # send API only


def test_send_api_accept_any(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(ui_auth=USERS, send_api_auth_accept_any=True)
    assert call(mp.http_url + "api/v1/send", method="POST", body=SEND)[0] == 200
    assert call(mp.http_url + "api/v1/send", ("x", "y"), method="POST", body=SEND)[0] == 200
    assert call(mp.http_url + "api/v1/messages")[0] == 401  # the rest stays closed


def test_send_api_alone_can_be_protected(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(send_api_auth="robot:beep")
    assert call(mp.http_url + "api/v1/messages")[0] == 200  # the UI stays open
    assert call(mp.http_url + "api/v1/send", method="POST", body=SEND)[0] == 401
    assert call(mp.http_url + "api/v1/send", ("robot", "beep"), method="POST", body=SEND)[0] == 200


def test_auth_file_and_variables(tmp_path: Path, server_factory: Callable[..., Server]) -> None:
    users = tmp_path / "users"
    users.write_text(f"# UI users\nbob:{BOB_HASH}\n")
    cfg = config_from(["--ui-auth-file", str(users)], {"MP_UI_AUTH": "ann:secret"})
    assert cfg.ui_auth_file == str(users) and cfg.ui_auth == "ann:secret"
    mp = server_factory(ui_auth_file=str(users), ui_auth="ann:secret")
    assert call(mp.http_url + "api/v1/tags", ("bob", "hunter2"))[0] == 200
    assert call(mp.http_url + "api/v1/tags", ("ann", "secret"))[0] == 200
    env = config_from([], {"MP_SEND_API_AUTH_ACCEPT_ANY": "true", "MP_SEND_API_AUTH": "r:b"})
    assert env.send_api_auth_accept_any and env.send_api_auth == "r:b"


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"ui_auth_file": "/nonexistent/users"}, "--ui-auth-file: cannot read"),
        ({"ui_auth": "no-colon"}, "MP_UI_AUTH"),
        ({"send_api_auth_file": "/nonexistent/users"}, "--send-api-auth-file"),
        ({"ui_tls_cert": "/nonexistent/cert.pem"}, "--ui-tls-key is needed"),
        ({"ui_tls_key": "/nonexistent/key.pem"}, "--ui-tls-key needs --ui-tls-cert"),
        (
            {"ui_tls_cert": "/nonexistent/c.pem", "ui_tls_key": "/nonexistent/k.pem"},
            "--ui-tls-cert: /nonexistent/c.pem does not exist",
        ),
    ],
)
def test_bad_access_settings_are_config_errors(settings: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        validate(Config(**settings))


# -- HTTPS -------------------------------------------------------------------------------------


def test_https_with_a_self_signed_certificate(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(ui_tls_cert="sans:localhost,127.0.0.1", ui_auth=USERS)
    assert mp.http_url.startswith("https://")
    status, _, body = call(mp.http_url + "api/v1/info", ("ann", "secret"), context=UNVERIFIED)
    assert status == 200 and json.loads(body)["Version"]
    assert call(mp.http_url + "api/v1/info", context=UNVERIFIED)[0] == 401
    with pytest.raises(urllib.error.URLError):  # a verifying client refuses a self-signed one
        urllib.request.urlopen(mp.http_url + "livez", timeout=10)
    # The websocket over TLS, with credentials.
    ws = WsClient.connect(
        mp.http_url.replace("https://", "wss://") + "api/events",
        headers={"Authorization": basic("ann", "secret")},
        ssl_context=UNVERIFIED,
    )
    try:
        assert json.loads(ws.receive(timeout=10))["Type"] == "stats"
    finally:
        ws.close()


def test_https_with_pem_files_and_a_silent_client(
    tmp_path: Path, server_factory: Callable[..., Server]
) -> None:
    cert, key = self_signed(["127.0.0.1"])
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    mp = server_factory(
        ui_tls_cert=str(tmp_path / "cert.pem"), ui_tls_key=str(tmp_path / "key.pem")
    )
    # A client that connects and never starts its handshake must not hold up the others.
    silent = socket.create_connection(mp.http_address, timeout=10)
    try:
        assert call(mp.http_url + "livez", context=UNVERIFIED)[:3:2] == (200, b"ok")
        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        assert (
            call(mp.http_url.replace("localhost", "127.0.0.1") + "readyz", context=context)[0]
            == 200
        )
    finally:
        silent.close()
    # Plain HTTP to the HTTPS port gets no answer from the app.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(mp.http_url.replace("https://", "http://") + "livez", timeout=10)


# -- the browser UI behind auth ---------------------------------------------------------------


def test_browser_ui_behind_auth(server_factory: Callable[..., Server], browser: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    mp = server_factory(ui_auth=USERS, ui_tls_cert="sans:127.0.0.1")

    def send(subject: str) -> None:
        url = mp.http_url + "api/v1/send"
        body = dict(SEND, Subject=subject)
        assert call(url, ("ann", "secret"), method="POST", body=body, context=UNVERIFIED)[0] == 200

    send("first")
    expect.set_options(timeout=TIMEOUT)
    context = browser.new_context(
        http_credentials={"username": "bob", "password": "hunter2"}, ignore_https_errors=True
    )
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(mp.http_url)
        wait_live(page)  # the websocket got through the auth too
        expect(page.locator("#list .row")).to_have_count(1)
        send("live")
        expect(page.locator("#list .row")).to_have_count(2)  # arrived over the websocket
        assert not errors
    finally:
        context.close()
    anonymous = browser.new_context(ignore_https_errors=True)
    try:
        assert anonymous.request.get(mp.http_url).status == 401
        page = anonymous.new_page()
        with pytest.raises(Exception, match="AUTH"):  # headless Chromium: no prompt to answer
            page.goto(mp.http_url)
    finally:
        anonymous.close()
