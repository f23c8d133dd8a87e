"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/kubernetes/) agree with the app.

No container engine runs here: the files are parsed, every flag and MP_* variable they give is
run through `mailpit-py config` (which refuses a bad value and warns of an unknown variable),
and the paths the health checks probe are asked of a real server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import smtplib
import socket
import subprocess
import sys
import tomllib
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO, WsClient, make_server, need_command, wait_until
from mailpit_py.commands.readyz import default_url
from mailpit_py.server import Server
from pgserver import free_port

DEPLOY = REPO / "deploy"
MAILPIT = [sys.executable, "-m", "mailpit_py"]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's final stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    steps = [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]
    final = max(i for i, step in enumerate(steps) if step[0] == "FROM")
    return [(step[0].upper(), step[1] if len(step) > 1 else "") for step in steps[final:]]


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in dockerfile():
        if op == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))  # type: ignore[misc]
    return env


def docker_json(op: str) -> list[str]:
    args = next(a for o, a in dockerfile() if o == op)
    args = args.split(" CMD ", 1)[1] if op == "HEALTHCHECK" else args
    value = json.loads(args)  # the exec form: no shell between Docker and the command
    assert isinstance(value, list)
    return value


def config_of(args: list[str], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`mailpit-py config --json` with these flags and variables (and no other MP_*): the rows
    by field; fails on an error or a warning (an unknown MP_* variable, a flag without
    effect)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
    proc = subprocess.run(
        [*MAILPIT, "config", "--json", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    return {row["field"]: row for row in json.loads(proc.stdout)}


def assert_all_taken(rows: dict[str, dict[str, Any]], args: list[str], env: dict[str, str]):
    """Every variable and every flag given is the source of a setting."""
    sources = {row["source"] for row in rows.values()}
    for name in env:
        if name.startswith("MP_"):
            assert f"environment {name}" in sources, name
    for arg in args:
        if arg.startswith("-"):
            assert f"flag {arg.split('=', 1)[0]}" in sources, arg


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def compose_env(value: str) -> str:
    """Compose's ${NAME:-default} with NAME unset: the default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def kubernetes() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read().decode()


# -- Dockerfile ---------------------------------------------------------------------------------


def test_the_image_is_slim_python_installs_the_wheel_with_postgres_and_runs_unprivileged() -> None:
    steps = dockerfile()
    base = steps[0][1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base), base
    run = " ".join(a for o, a in steps if o == "RUN")
    assert ".whl)[postgres]" in run
    # The extra exists, so the image can open a postgresql:// MP_DATABASE.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("psycopg") for d in project["optional-dependencies"]["postgres"])
    user = next(a for o, a in steps if o == "USER")
    assert user.split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "1025 8025") in steps


def test_the_images_variables_and_flags_are_all_accepted_by_mailpit_py_config() -> None:
    env, args = docker_env(), docker_json("CMD")
    # Defaults are variables: a flag in CMD would win over the same variable given at run time.
    assert args == []
    assert docker_json("ENTRYPOINT") == ["mailpit-py"]
    rows = config_of(args, env)
    assert_all_taken(rows, args, env)
    # The ports it exposes are those the settings listen on.
    exposed = next(a for o, a in dockerfile() if o == "EXPOSE").split()
    listening = [port_of(rows["smtp_addr"]["value"]), port_of(rows["http_addr"]["value"])]
    assert [int(p) for p in exposed] == listening


def test_the_health_check_is_readyz_and_finds_the_ui_port_from_the_images_variables() -> None:
    assert docker_json("HEALTHCHECK") == ["mailpit-py", "readyz"]
    env = docker_env()
    assert default_url(env) == f"http://127.0.0.1:{port_of(env['MP_UI_BIND_ADDR'])}/"


def test_the_health_check_command_passes_against_a_running_instance() -> None:
    # The image's variables, with the UI port moved to a free one (no fixed ports in tests).
    with make_server() as mp:
        port = mp.http.address[1] if mp.http else 0
        env = {**docker_env(), "MP_UI_BIND_ADDR": f"0.0.0.0:{port}"}
        base = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
        command = docker_json("HEALTHCHECK")
        proc = subprocess.run(
            [*MAILPIT, *command[1:]], env={**base, **env}, capture_output=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [*MAILPIT, *command[1:]], env={**base, **env}, capture_output=True, timeout=60
    )
    assert proc.returncode == 1  # stopped: unhealthy


def test_dockerignore_lets_through_what_the_build_copies_and_nothing_else() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    text = (REPO / "Dockerfile").read_text()
    # COPY's sources from the build context (not those --from another stage).
    copies = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    copied = {
        s.removeprefix("./").rstrip("/") for srcs in copies if "--" not in srcs[0] for s in srcs
    }
    assert "*" in lines and copied == kept, (copied, kept)


# -- compose ------------------------------------------------------------------------------------


def test_compose_runs_two_instances_on_postgresql_behind_a_balancer_for_smtp_and_http() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    instances = [name for name, svc in services.items() if svc.get("image") == "mailpit-py:local"]
    assert len(instances) == 2
    for name in instances:
        svc = services[name]
        assert svc["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert (DEPLOY / svc["build"]["context"] / "Dockerfile").is_file()
        env = {k: compose_env(str(v)) for k, v in svc["environment"].items()}
        assert env["MP_DATABASE"].startswith("postgresql://")
        assert "@postgres:5432/" in env["MP_DATABASE"]  # the compose service
        # As the container runs: the image's CMD (no `command:` here) and ENV under these.
        assert "command" not in svc
        args = docker_json("CMD")
        assert_all_taken(config_of(args, {**docker_env(), **env}), args, env)
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    pg = services["postgres"]["environment"]
    url = compose_env(services[instances[0]]["environment"]["MP_DATABASE"])
    assert url == (
        f"postgresql://{pg['POSTGRES_USER']}:{compose_env(pg['POSTGRES_PASSWORD'])}"
        f"@postgres:5432/{pg['POSTGRES_DB']}"
    )
    lb = services["loadbalancer"]
    assert sorted(lb["ports"]) == ["1025:1025", "8025:8025"]
    # HAProxy's configuration: each front end balances over both instances' matching port.
    cfg = (DEPLOY / "haproxy.cfg").read_text()
    mount = next(v for v in lb["volumes"] if v.startswith("./haproxy.cfg:"))
    assert mount.endswith(":/usr/local/etc/haproxy/haproxy.cfg:ro")
    env = docker_env()
    for section, addr in (("smtp", "MP_SMTP_BIND_ADDR"), ("http", "MP_UI_BIND_ADDR")):
        body = cfg.split(f"backend {section}\n", 1)[1].split("\n\n", 1)[0]
        servers = re.findall(r"^\s*server (\S+) (\S+):(\d+)", body, re.M)
        assert sorted(s[1] for s in servers) == sorted(instances)
        assert {int(s[2]) for s in servers} == {port_of(env[addr])}
        assert "option httpchk GET /readyz" in body
        assert f"check port {port_of(env['MP_UI_BIND_ADDR'])}" in body
        assert f"bind :{port_of(env[addr])}" in cfg


# -- Kubernetes ---------------------------------------------------------------------------------


def test_kubernetes_runs_two_replicas_with_the_database_url_from_a_secret() -> None:
    docs = kubernetes()
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    listed = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == listed
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    secret = docs["Secret"]
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[item["name"]] = secret["stringData"][ref["key"]]
        else:
            env[item["name"]] = "mailpit-py-5d9c7b-x2x9z"  # a pod name (fieldRef)
    assert env["MP_DATABASE"].startswith("postgresql://")
    args = container["args"]  # they replace the image's CMD
    rows = config_of(args, {**docker_env(), **env})
    assert_all_taken(rows, args, env)
    # The container's ports are the ones the image listens on, and the Service reaches them.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {
        "smtp": port_of(rows["smtp_addr"]["value"]),
        "http": port_of(rows["http_addr"]["value"]),
    }
    service = docs["Service"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)


def test_kubernetes_probes_ask_readyz_and_livez_on_the_http_port() -> None:
    (container,) = kubernetes()["Deployment"]["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert (ready["path"], live["path"]) == ("/readyz", "/livez")
    assert ports[ready["port"]] == ports[live["port"]] == port_of(docker_env()["MP_UI_BIND_ADDR"])


def probe_paths() -> set[str]:
    (container,) = kubernetes()["Deployment"]["spec"]["template"]["spec"]["containers"]
    paths = {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")}
    return paths | set(
        re.findall(r"option httpchk GET (\S+)", (DEPLOY / "haproxy.cfg").read_text())
    )


@pytest.mark.parametrize("path", sorted(probe_paths()))
def test_every_probed_path_answers_ok_on_a_running_instance(path: str) -> None:
    with make_server() as mp:
        assert http_get(mp.http_url.rstrip("/") + path) == (200, "ok")


# -- the balancer, run for real -----------------------------------------------------------------


def haproxy_config(front: dict[str, int], instances: dict[str, Server]) -> str:
    """deploy/haproxy.cfg as it would run in compose, with the addresses of this machine: free
    ports for the front ends, the instances' real ports, health checks every second."""
    cfg = (DEPLOY / "haproxy.cfg").read_text()
    cfg = cfg.replace("bind :1025", f"bind 127.0.0.1:{front['smtp']}")
    cfg = cfg.replace("bind :8025", f"bind 127.0.0.1:{front['http']}")
    cfg = re.sub(r"^resolvers docker\n(?:    .*\n)*", "", cfg, flags=re.M)  # no Docker DNS here
    cfg = cfg.replace(" resolvers docker", "").replace("inter 5s", "inter 1s")

    def server(match: re.Match[str]) -> str:
        name, port = match.group(1), int(match.group(2))
        mp = instances[name]
        assert mp.http is not None
        smtp, http = mp.smtp_address[1], mp.http.address[1]
        return f"server {name} 127.0.0.1:{smtp if port == 1025 else http} port {http}"

    return re.sub(r"server (\S+) \S+:(\d+)", server, cfg)


def smtp_via(port: int, subject: str) -> str:
    """Send one message through the balancer; the reply to DATA."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.com", "user@example.org", subject
    msg.set_content("through the balancer\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("app@example.com")
        client.rcpt("user@example.org")
        code, reply = client.data(msg.as_bytes())
    assert code == 250, reply
    return reply.decode()


def test_haproxy_balances_smtp_over_two_instances_on_one_postgresql_and_fails_over(
    pg_url: str, tmp_path: Path
) -> None:
    haproxy = need_command("haproxy", "haproxy", "the load-balancer test of deploy/haproxy.cfg")
    a = make_server(database=pg_url, max_messages=0, smtp_hostname="a.test").start()
    b = make_server(database=pg_url, max_messages=0, smtp_hostname="b.test").start()
    instances = {"mailpit-a": a, "mailpit-b": b}
    front = {"smtp": free_port(), "http": free_port()}
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config(front, instances))
    log = open(tmp_path / "haproxy.log", "wb")  # noqa: SIM115 (closed below)
    lb = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=log, stderr=log)
    ws: WsClient | None = None
    try:
        # Probed on its HTTP side: a bare connect to SMTP that closes at once would hold an
        # SMTP session open on an instance, and leastconn would then avoid that instance.
        wait_until(lambda: port_open(front["http"]), what="haproxy to listen")
        # A browser's live list, through the balancer: it reaches one instance only.
        ws = WsClient.connect(f"ws://127.0.0.1:{front['http']}/api/events")
        # Both instances take some of the mail (each logs its SMTP sessions with its own local
        # address); until the first health checks pass, one may take all, so keep sending.
        via_lb = f"http://127.0.0.1:{front['http']}"
        sent = 0

        def both_took_some() -> bool:
            nonlocal sent
            smtp_via(front["smtp"], f"balanced {sent}")
            sent += 1
            log_ = json.loads(http_get(f"{via_lb}/api/v1/sessions?limit=0")[1])["sessions"]
            ports = {port_of(s["Local"]) for s in log_ if s["Messages"]}
            return ports == {a.smtp_address[1], b.smtp_address[1]}

        wait_until(both_took_some, timeout=60, what="both instances to take mail")
        # One database: the API through the balancer lists every message, whichever took it.
        listing = json.loads(http_get(f"{via_lb}/api/v1/messages?limit=0")[1])
        assert listing["total"] == sent
        # And the live list hears of every one, those the other instance took included.
        heard: set[str] = set()

        def heard_all() -> bool:
            frame = json.loads(ws.receive(timeout=1) or "{}")
            if frame.get("Type") == "new":
                heard.add(frame["Data"]["Subject"])
            return heard >= {f"balanced {n}" for n in range(sent)}

        wait_until(heard_all, timeout=30, what="the websocket to hear of every message")
        # One instance goes away: SMTP and HTTP carry on through the other.
        a.stop()
        for n in range(4):
            smtp_via(front["smtp"], f"after a stopped {n}")
        assert http_get(f"{via_lb}/readyz") == (200, "ok")
        listing = json.loads(http_get(f"{via_lb}/api/v1/messages?limit=0")[1])
        assert listing["total"] == sent + 4
    finally:
        if ws is not None:
            ws.close()
        lb.terminate()
        lb.wait(10)
        log.close()
        a.stop()
        b.stop()


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
