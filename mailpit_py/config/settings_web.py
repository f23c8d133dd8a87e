"""The settings table's web rows: UI and API access control, TLS and browser protections."""

from __future__ import annotations

from dataclasses import dataclass

from mailpit_py.config.option import setting


@dataclass(frozen=True)
class WebSettings:
    """Web UI and API access control, and the browser protections."""

    ui_auth_file: str = setting(
        "",
        flags=("--ui-auth-file",),
        env="MP_UI_AUTH_FILE",
        help=(
            "require HTTP basic auth for the web UI, API and websocket: a file of user:password "
            "lines (bcrypt hashes from htpasswd -B accepted)"
        ),
        metavar="FILE",
    )
    ui_auth: str = setting(
        "",
        flags=("--ui-auth",),
        env="MP_UI_AUTH",
        help=(
            "the same as space-separated user:password pairs (prefer the variable: a flag shows in "
            "ps)"
        ),
        metavar="PAIRS",
    )
    send_api_auth_file: str = setting(
        "",
        flags=("--send-api-auth-file",),
        env="MP_SEND_API_AUTH_FILE",
        help="credentials for POST /api/v1/send alone (otherwise it takes the UI's)",
        metavar="FILE",
    )
    send_api_auth: str = setting(
        "",
        flags=("--send-api-auth",),
        env="MP_SEND_API_AUTH",
        help="the same as space-separated user:password pairs",
        metavar="PAIRS",
    )
    send_api_auth_accept_any: bool = setting(
        False,
        flags=("--send-api-auth-accept-any",),
        env="MP_SEND_API_AUTH_ACCEPT_ANY",
        help="POST /api/v1/send needs no credentials, even when the UI does",
    )
    ui_tls_cert: str = setting(
        "",
        flags=("--ui-tls-cert",),
        env="MP_UI_TLS_CERT",
        help=(
            "serve the web UI and API over HTTPS with this PEM certificate (sans:host1,host2 makes "
            "a self-signed one)"
        ),
        metavar="FILE",
    )
    ui_tls_key: str = setting(
        "",
        flags=("--ui-tls-key",),
        env="MP_UI_TLS_KEY",
        help="the PEM private key of --ui-tls-cert",
        metavar="FILE",
    )
    # --- browser protections ---
    api_cors: str = setting(
        "",
        flags=("--api-cors",),
        env="MP_API_CORS",
        help=(
            "let web pages of these other origins use the API and websocket, comma-separated (e.g. "
            "example.com,http://localhost:3000), or * for any; others get 403"
        ),
        metavar="ORIGINS",
    )
    allowed_hosts: str = setting(
        "",
        flags=("--allowed-hosts",),
        env="MP_ALLOWED_HOSTS",
        help=(
            "more Host names the web UI and API answer to, comma-separated (*.example.com for "
            "subdomains, * for any); IP addresses, localhost, names without a dot and this "
            "machine's names are always allowed (a guard against DNS rebinding)"
        ),
        metavar="HOSTS",
    )
