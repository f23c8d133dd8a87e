"""--tenant-id (Mailpit's MP_TENANT_ID): instances given the same --database but different
tenants never see each other's mail; on PostgreSQL a schema per tenant, on SQLite a file."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from pathlib import Path
from typing import Any

from helpers import WsClient, make_server, wait_until
from mailpit_py.server import Server
from mailpit_py.store.open import tenant_file, tenant_name


def deliver(mp: Server, subject: str) -> None:
    with smtplib.SMTP(*mp.smtp_address, timeout=30) as client:
        client.sendmail(
            "ann@example.com",
            ["bob@example.org"],
            f"From: ann@example.com\r\nTo: bob@example.org\r\nSubject: {subject}\r\n\r\nHi.\r\n",
        )


def subjects(mp: Server) -> list[str]:
    with urllib.request.urlopen(mp.http_url + "api/v1/messages", timeout=30) as resp:
        body: Any = json.load(resp)
    return sorted(m["Subject"] for m in body["messages"])


def next_new(ws: WsClient) -> dict[str, Any]:
    def frame() -> dict[str, Any] | None:
        got = json.loads(ws.receive(timeout=10) or "{}")
        return got if got.get("Type") == "new" else None

    found: dict[str, Any] = wait_until(frame, timeout=20, what="a new-message frame")
    return found


def test_tenant_ids_are_cleaned_as_mailpit_cleans_them() -> None:
    # Mailpit's DBTenantID: white space collapsed, anything else than [a-zA-Z0-9_] made _;
    # lower case here since SQLite's table names (Mailpit's prefix) ignore case.
    assert tenant_name("Team A") == "team_a"
    assert tenant_name("  acme.example/CI  ") == "acme_example_ci"
    assert tenant_name("x_") == "x"
    assert tenant_name("") == ""
    assert tenant_file("/data/mail.db", "acme") == "/data/mail.acme.db"
    assert tenant_file("/data/mail", "acme") == "/data/mail.acme"


def test_sqlite_tenants_sharing_a_database_setting_see_only_their_own_mail(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "mail.db")
    with (
        make_server(database=db, tenant_id="Team A") as a,
        make_server(database=db, tenant_id="team-b") as b,
        make_server(database=db) as plain,
    ):
        deliver(a, "for team A")
        deliver(b, "for team B")
        deliver(plain, "no tenant")
        assert subjects(a) == ["for team A"]
        assert subjects(b) == ["for team B"]
        assert subjects(plain) == ["no tenant"]
    assert (tmp_path / "mail.team_a.db").exists() and (tmp_path / "mail.team_b.db").exists()
    # A restart with the same tenant finds its mail again.
    with make_server(database=db, tenant_id="TEAM A") as again:
        assert subjects(again) == ["for team A"]
        with urllib.request.urlopen(again.http_url + "api/v1/info", timeout=30) as resp:
            assert json.load(resp)["Database"].endswith("mail.team_a.db")


def test_postgres_tenants_are_schemas_apart_and_hear_only_their_own_events(
    pg_url: str, pg_server: Any
) -> None:
    with (
        make_server(database=pg_url, tenant_id="alpha") as a1,
        make_server(database=pg_url, tenant_id="alpha") as a2,
        make_server(database=pg_url, tenant_id="beta") as b,
    ):
        ws_b = WsClient.connect(b.http_url.replace("http://", "ws://") + "api/events")
        ws_a2 = WsClient.connect(a2.http_url.replace("http://", "ws://") + "api/events")
        try:
            deliver(a1, "alpha's")
            # The other alpha instance hears it: one tenant, one channel.
            new = next_new(ws_a2)
            assert new["Data"]["Subject"] == "alpha's"
            deliver(b, "beta's")
            assert subjects(a1) == subjects(a2) == ["alpha's"]
            assert subjects(b) == ["beta's"]
            # beta's clients heard beta's message and nothing of alpha's.
            # (alpha's went out first: had it reached beta's channel, it would come first)
            news: list[str] = []
            while "beta's" not in news:
                news.append(next_new(ws_b)["Data"]["Subject"])
            assert news == ["beta's"]
        finally:
            ws_b.close()
            ws_a2.close()
    schemas = pg_server.sql(
        "SELECT schema_name FROM information_schema.schemata ORDER BY 1",
        db=pg_url.rsplit("/", 1)[1],
    )
    assert "alpha" in schemas and "beta" in schemas


def test_a_tenant_without_a_database_changes_nothing(tmp_path: Path) -> None:
    with make_server(database=None, tenant_id="acme") as mp:
        deliver(mp, "temporary")
        assert subjects(mp) == ["temporary"]
