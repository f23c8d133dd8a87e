"""The OpenAPI description (mailpit_py/webapp/swagger.json) against the app and a live server.

Three layers: the document is valid OpenAPI and resolves; its paths and methods are exactly the
app's API routes, so the two stay in step; and schemathesis fuzzes every operation on a live
server, checking that no request gets a 5xx and that each response's status code, content type,
headers and body are documented. The inputs it once found breaking the server are kept at the
end as regression tests.
"""

from __future__ import annotations

import base64
import json
import re
import smtplib
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from helpers import make_server, wait_until
from mailpit_py.server import Server

SPEC: dict[str, Any] = json.loads(
    resources.files("mailpit_py.webapp").joinpath("swagger.json").read_text("utf-8")
)
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Flask's names for the path variables -> the spec's (Mailpit's) names.
PATH_VARS = {
    "msg_id": "ID",
    "part_id": "PartID",
    "session_id": "SessionID",
    "tag": "Tag",
    "name": "Name",
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with make_server(max_messages=0) as mp:
        yield mp


# -- the document ------------------------------------------------------------------------------


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = SPEC
    for key in ref[2:].split("/"):
        node = node[key]
    return node


def all_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from all_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_refs(value)


def test_spec_is_valid_openapi_and_resolves() -> None:
    schemathesis.openapi.from_dict(SPEC).validate()  # against the OpenAPI 3.0 meta-schema
    assert SPEC["openapi"].startswith("3.0")
    for ref in set(all_refs(SPEC)):
        assert resolve(ref) is not None, ref
    op_ids = [op["operationId"] for _, _, op in operations(SPEC)]
    assert len(op_ids) == len(set(op_ids)), "operationIds must be unique"
    for path, method, op in operations(SPEC):
        params = [resolve(p["$ref"]) if "$ref" in p else p for p in op.get("parameters", [])]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{(\w+)\}", path)), (method, path)
        assert all(p["required"] for p in params if p["in"] == "path"), (method, path)
        assert {"200", "201"} & set(op["responses"]), (method, path)
    for name in (
        "Address", "MessageSummary", "Message", "Attachment", "ListUnsubscribe",
        "MessagesSummary", "Session", "TranscriptLine", "SendRequest", "SendResponse", "Info",
        "WebUIConfiguration", "Error",
    ):  # fmt: skip
        assert name in SPEC["components"]["schemas"], name


def test_extensions_are_marked_and_the_websocket_is_described() -> None:
    marked = {p for p, _, op in operations(SPEC) if op.get("x-mailpit-py-extension")}
    assert marked == {
        "/api/v1/message/{ID}/smtp",
        "/api/v1/message/{ID}/relay",  # the relay history, not in Mailpit
        "/api/v1/relay/queue",  # the relay outbox as mailq lists it
        "/api/v1/sessions",
        "/api/v1/session/{SessionID}",
        "/api/v1/message/{ID}/auth-check",
        "/api/v1/message/{ID}/blocklist-check",
        "/api/v1/message/{ID}/header-check",
        "/api/v1/stats",
        "/api/v1/mailboxes",  # one instance, a mailbox per project
        "/api/v1/mailboxes/{Name}",
        "/api/v1/mailboxes/{Name}/messages",
    }
    message = SPEC["components"]["schemas"]["Message"]["properties"]
    for field in ("Created", "Read", "Warnings", "SessionID"):
        assert message[field].get("x-mailpit-py-extension"), field
    assert SPEC["components"]["schemas"]["Envelope"].get("x-mailpit-py-extension")
    assert "/api/events" in SPEC["info"]["description"]
    assert "`latest`" in resolve("#/components/parameters/ID")["description"]


def app_routes(mp: Server) -> dict[str, set[str]]:
    """The app's HTTP routes as spec paths -> methods: all but the websocket and the UI files."""
    assert mp.http is not None
    routes: dict[str, set[str]] = {}
    for rule in mp.http.app.url_map.iter_rules():
        if rule.websocket or rule.endpoint.startswith("ui.") or rule.endpoint == "static":
            continue
        path = re.sub(
            r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: "{" + PATH_VARS.get(m[1], m[1]) + "}", rule.rule
        )
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        routes.setdefault(path, set()).update(methods)
    return routes


def test_every_route_is_in_the_spec_and_every_spec_path_is_a_route(server: Server) -> None:
    documented = {path: {m for m in item if m in METHODS} for path, item in SPEC["paths"].items()}
    assert app_routes(server) == documented


def test_the_served_spec_is_the_packaged_file(server: Server) -> None:
    with urllib.request.urlopen(server.http_url + "api/v1/swagger.json", timeout=10) as resp:
        assert resp.headers.get_content_type() == "application/json"
        assert json.loads(resp.read()) == SPEC


# -- fuzzing a live server ---------------------------------------------------------------------

# Real values for the path parameters, refilled for each operation by the `live` fixture; the
# generator mixes them with random ones, so most operations are fuzzed past the 404 as well.
REAL: dict[str, list[str]] = {}


def plain(subject: str, extra: str = "") -> bytes:
    return (
        f"From: Ann <ann@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: {subject}\r\n"
        f"Date: Sat, 21 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{subject}@example.com>\r\n"
        f"{extra}\r\nHello, {subject}.\r\n"
    ).encode()


ATTACHED = (
    b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: parts\r\n"
    b"List-Unsubscribe: <mailto:leave@example.com>, <https://example.com/leave>\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'
    b'--XX\r\nContent-Type: multipart/related; boundary="YY"\r\n\r\n'
    b'--YY\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p><img src="cid:logo@x"></p>\r\n'
    b"--YY\r\nContent-Type: image/gif\r\nContent-ID: <logo@x>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n--YY--\r\n"
    b'--XX\r\nContent-Type: application/pdf; name="r.pdf"\r\n'
    b'Content-Disposition: attachment; filename="r.pdf"\r\n\r\n%PDF-1.4\r\n--XX--\r\n'
)


@pytest.fixture
def live(server: Server) -> str:
    """The base URL, with the mailbox reset to the same three messages for each operation, so
    the order operations run in never matters."""
    box = server.mailbox
    assert box is not None
    box.delete_all()
    with smtplib.SMTP(*server.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], plain("hello"))
        client.sendmail(
            "ann@example.com", ["shop+orders@example.com"], plain("tagged", "X-Tags: Billing\r\n")
        )
    with smtplib.SMTP(*server.smtp_address) as client:
        client.sendmail("<>", ["bob@example.com"], ATTACHED)  # null sender, a second session
    sessions = wait_until(lambda: box.sessions(), what="SMTP sessions recorded")
    latest = box.get("latest")
    REAL.clear()
    REAL.update(
        ID=["latest", *(m["ID"] for m in box.list_messages())],
        PartID=[p["PartID"] for p in (*latest.detail["Inline"], *latest.detail["Attachments"])],
        SessionID=[s["ID"] for s in sessions],
        Tag=box.tags(),
    )
    return server.http_url.rstrip("/")


schema = schemathesis.openapi.from_dict(SPEC)


@schema.hook
def before_generate_path_parameters(context: Any, strategy: st.SearchStrategy) -> Any:
    return st.one_of(strategy, strategy.flatmap(with_real_values))


def with_real_values(params: dict[str, Any] | None) -> st.SearchStrategy:
    if not params:
        return st.just(params)
    return st.fixed_dictionaries(
        {
            name: st.integers(0, 31).map(lambda i, name=name: REAL[name][i % len(REAL[name])])
            if REAL.get(name)
            else st.just(value)
            for name, value in params.items()
        }
    )


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_live_server_conforms_to_the_spec(case: Any, live: str) -> None:
    case.call_and_validate(base_url=live, checks=CHECKS, timeout=30)


# -- inputs that once broke the server (found by this fuzzer), kept as regression tests --


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, str, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_content_type(), err.read()


@pytest.mark.parametrize(("method", "path"), [("GET", "livez"), ("PUT", "api/v1/messages")])
def test_ok_answers_are_plain_text(server: Server, method: str, path: str) -> None:
    assert call(server.http_url, method, path) == (200, "text/plain", b"ok")


SENDER = {"From": {"Email": "app@example.com"}, "To": [{"Email": "user@example.com"}]}
FILE = {"Content": base64.b64encode(b"data").decode(), "Filename": "a.txt"}
REFUSED_OR_CLEANED = {200, 400}  # either fix is fine, a 500 is not


@pytest.mark.parametrize(
    ("body", "codes"),
    [
        ({**SENDER, "Subject": "line\nbreak"}, REFUSED_OR_CLEANED),
        ({**SENDER, "Subject": "next\x85line"}, REFUSED_OR_CLEANED),
        (
            {**SENDER, "To": [{"Email": "user@example.com", "Name": "form\ffeed"}]},
            REFUSED_OR_CLEANED,
        ),
        ({**SENDER, "Headers": {"X-Note": "a\u2028b"}}, REFUSED_OR_CLEANED),
        ({**SENDER, "Attachments": [{**FILE, "Filename": "a\r\nb.txt"}]}, REFUSED_OR_CLEANED),
        (
            {**SENDER, "HTML": "<img src='cid:x'>", "Attachments": [{**FILE, "ContentID": "x\ny"}]},
            REFUSED_OR_CLEANED,
        ),
        ({"From": {"Email": "josé@example.com"}, "To": [{"Email": "user@example.com"}]}, {200}),
        ({**SENDER, "ReplyTo": [{"Email": "ü@example.com", "Name": "Jo"}]}, {200}),
        ({**SENDER, "Cc": [{"Email": "ü@example.com", "Name": "Ünï"}]}, {200}),
        ({**SENDER, "Tags": ["a\u2028b"], "Text": "a\u2028b\x00"}, {200}),
    ],
)
def test_send_answers_odd_text_without_a_server_error(
    server: Server, body: Any, codes: set[int]
) -> None:
    code, ctype, data = call(server.http_url, "POST", "api/v1/send", body)
    assert code in codes and ctype == "application/json", (code, data)
    assert json.loads(data)["ID" if code == 200 else "Error"]


BIG = "9" * 26


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"api/v1/search?query=larger:{BIG}", None),
        ("GET", f"api/v1/search?query=smaller:{BIG}k", None),
        ("GET", "api/v1/search?query=larger:" + "9" * 400, None),
        ("GET", f"api/v1/message/latest?query=larger:{BIG}", None),
        ("DELETE", f"api/v1/search?query=larger:{BIG}", None),
        ("PUT", "api/v1/messages", {"Search": f"smaller:{BIG}"}),
        ("GET", "api/v1/search?query=a%00b", None),
        ("GET", "api/v1/message/latest?query=x%00", None),
        ("DELETE", "api/v1/search?query=a%00b", None),
        ("PUT", "api/v1/messages", {"Search": "a\x00b"}),
        ("GET", "api/v1/search?query=larger:1M%20smaller:2G%20after:0001-01-01", None),
    ],
)
def test_odd_search_queries_are_not_a_server_error(
    server: Server, method: str, path: str, body: Any
) -> None:
    code, _, data = call(server.http_url, method, path, body)
    assert code < 500, (code, data)
