"""The hosted deployment without a Docker engine: Dockerfile, .dockerignore, compose.yaml and
deploy.env.example read as data, and what they would run, run here.

No Docker engine is on the development machines or in CI, so the image is never built here.
Instead: the Dockerfile is linted (hadolint) and its facts checked against the package; the
image's exact CMD is started from the venv with the image's ENV (its folders moved under
tmp_path), and its HEALTHCHECK command, taken verbatim from the Dockerfile, is run against it;
compose.yaml is validated against the Compose Specification's JSON schema (tests/data,
compose-spec/compose-spec schema/compose-spec.json at 170098ba, Apache-2.0) and its topology,
two replicas on one PostgreSQL database sharing the videos and state folders, is started as
processes; and every variable the deploy files name must be one the server reads.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import yaml
from jsonschema import Draft7Validator  # type: ignore[import-untyped]  # no types shipped

from hailuo_mcp import cli
from hailuo_mcp.callers import KEY_HEADER
from hailuo_mcp.config import _ENV_NAMES, Settings
from hailuo_mcp.http_app import HEALTH_PATH, READY_PATH
from hailuo_mcp.ledger.pg_migrations import MIGRATIONS
from tests.postgres import PostgresServer, serve_postgres

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
BIN = Path(sys.executable).parent
TOKEN = "deploy-test-token-5d1e9a7c3b"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.05
# Names the postgres image reads (compose.yaml and deploy.env.example), not the server.
POSTGRES_IMAGE_VARIABLES = {"POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB"}
VARIABLE = re.compile(r"\b(?:HAILUO|PIAPI|POSTGRES)_[A-Z0-9_]+\b")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK ... CMD)."""
        value = json.loads(self.args[self.args.index("[") :])
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


def dockerfile_stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, continuation lines joined, grouped by FROM."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        logical.append(current + line.strip())
        current = ""
    assert current == "", "the Dockerfile ends inside a continued line"
    stages: list[list[Instruction]] = [[]]
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def final_stage() -> list[Instruction]:
    return dockerfile_stages()[-1]


def image_env() -> dict[str, str]:
    """The final stage's ENV (KEY=VALUE pairs; $PATH is the one reference it makes)."""
    env: dict[str, str] = {}
    for instruction in final_stage():
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def image_cmd() -> list[str]:
    return only(final_stage(), "CMD").exec_form()


def healthcheck_command() -> list[str]:
    return only(final_stage(), "HEALTHCHECK").exec_form()


def cmd_port() -> int:
    cmd = image_cmd()
    return int(cmd[cmd.index("--port") + 1])


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def interpolated(value: Any, variables: Mapping[str, str]) -> Any:
    """`value` with Compose's `${NAME}` and `${NAME:?message}` replaced, as `docker compose`
    does from .env (an unset name with `:?` is an error there, and here)."""
    if isinstance(value, dict):
        return {k: interpolated(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolated(v, variables) for v in value]
    if isinstance(value, str):
        return re.sub(r"\$\{([A-Z0-9_]+)(?::\?[^}]*)?\}", lambda m: variables[m[1]], value)
    return value


def replicas() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    return {name: s for name, s in services.items() if name != "postgres"}


def env_example() -> tuple[dict[str, str], dict[str, str]]:
    """deploy.env.example: the assignments in force, and the ones shown commented out."""
    active: dict[str, str] = {}
    shown: dict[str, str] = {}
    for line in (ROOT / "deploy.env.example").read_text(encoding="utf-8").splitlines():
        if match := re.fullmatch(r"(#?)([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            (shown if match[1] else active)[match[2]] = match[3]
    return active, shown


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_reads() -> set[str]:
    """Every variable the server reads: Settings' table and the few cli.py reads itself."""
    cli_source = Path(cli.__file__).read_text(encoding="utf-8")
    return set(_ENV_NAMES) | set(re.findall(r'environ\.get\("([A-Z0-9_]+)"', cli_source))


# The Dockerfile, read as data


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_both_stages_start_from_a_pinned_python_slim_that_the_package_supports() -> None:
    stages = dockerfile_stages()
    base = next(i for i in stages[0] if i.keyword == "ARG" and i.args.startswith("PYTHON_IMAGE="))
    image = base.args.partition("=")[2]
    froms = [only(stage, "FROM").args for stage in stages[1:]]

    assert re.fullmatch(r"python:3\.(\d+)-slim-[a-z]+", image), image
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    minor = re.fullmatch(r"python:3\.(\d+)-.*", image)
    assert minor is not None
    assert f"3.{minor[1]}" >= PROJECT["requires-python"].removeprefix(">=")


def test_the_builder_makes_the_wheel_with_the_postgres_extra_and_the_final_stage_installs_it() -> (
    None
):
    builder, final = dockerfile_stages()[1], final_stage()
    build = only(builder, "RUN").args
    install = only(final, "RUN").args

    assert "postgres" in PROJECT["optional-dependencies"]
    assert 'pip wheel --wheel-dir /wheels ".[postgres]"' in build
    assert "--no-index --find-links /wheels" in install
    assert f'"{PROJECT["name"]}[postgres]"' in install
    # No compiler or package manager run in the final image: only the wheels are installed.
    assert not re.search(r"apt-get|apk |gcc|build-essential", install)
    assert "from=builder" in install


def test_the_final_stage_runs_as_a_fixed_non_root_user() -> None:
    final = final_stage()
    user = only(final, "USER").args
    install = only(final, "RUN").args
    uid = re.search(r"useradd .*--uid (\d+)", install)

    assert uid is not None and int(uid[1]) >= 1000
    assert user == f"{uid[1]}:{uid[1]}"
    # USER comes after the last RUN: nothing after it runs as root.
    keywords = [i.keyword for i in final]
    assert keywords.index("USER") > max(n for n, k in enumerate(keywords) if k == "RUN")


def test_entrypoint_is_the_console_script_and_cmd_serves_http_on_the_exposed_port() -> None:
    final = final_stage()
    cmd = image_cmd()

    assert only(final, "ENTRYPOINT").exec_form() == list(PROJECT["scripts"]) == ["hailuo-mcp"]
    assert cmd[:3] == ["serve", "--transport", "streamable-http"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert only(final, "EXPOSE").args == str(cmd_port())


def test_the_healthcheck_asks_healthz_on_the_cmd_port_with_the_image_python() -> None:
    check = healthcheck_command()
    options = only(final_stage(), "HEALTHCHECK").args.split(" CMD ")[0]

    assert check[:2] == ["python", "-c"]
    assert f"'http://127.0.0.1:{cmd_port()}{HEALTH_PATH}'" in check[2]
    assert "--start-period=" in options and "--timeout=" in options


def test_the_settings_folders_are_volumes_and_the_labels_carry_the_package_version() -> None:
    final = final_stage()
    env = image_env()
    volumes = only(final, "VOLUME").exec_form()
    version = next(i for i in final if i.keyword == "ARG" and i.args.startswith("VERSION="))
    labels = only(final, "LABEL").args

    assert volumes == [env["HAILUO_OUTPUT_DIR"], env["HAILUO_STATE_DIR"]]
    assert env["PYTHONDONTWRITEBYTECODE"] == env["PYTHONUNBUFFERED"] == "1"
    assert version.args == f"VERSION={PROJECT['version']}"
    assert compose()["x-hailuo"]["image"] == f"hailuo-mcp:{PROJECT['version']}"
    for key in ("title", "version", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_lets_in_exactly_what_the_builder_copies_and_the_wheel_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line for line in lines if line.strip() and not line.startswith("#")]
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    copied: set[str] = set()
    for instruction in dockerfile_stages()[1]:
        if instruction.keyword == "COPY":
            copied.update(instruction.args.split()[:-1])

    assert patterns[0] == "*", "the build context must be an allowlist"
    assert allowed == copied
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]
    needed = {PROJECT["readme"], *PROJECT["license-files"], "pyproject.toml"}
    needed.update(wheel["build"]["targets"]["wheel"]["packages"])
    assert needed == copied


# compose.yaml and deploy.env.example, read as data


def test_compose_yaml_is_valid_against_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.schema.json").read_text())
    errors = sorted(Draft7Validator(schema).iter_errors(compose()), key=str)

    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_compose_runs_postgres_and_two_replicas_of_this_image() -> None:
    services = compose()["services"]
    postgres = services["postgres"]

    assert set(services) == {"postgres", "hailuo-1", "hailuo-2"}
    assert re.fullmatch(r"postgres:1[5-9](\.\d+)?-alpine", postgres["image"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    for name, service in replicas().items():
        assert service["build"] == ".", name
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
        assert service["env_file"] == ".env", name
    # The second waits for the first: one webhook secret made, never raced for (see compose.yaml).
    assert services["hailuo-2"]["depends_on"]["hailuo-1"] == {"condition": "service_healthy"}


def test_each_replica_publishes_the_cmd_port_on_its_own_loopback_host_port() -> None:
    published = []
    for service in replicas().values():
        (mapping,) = service["ports"]
        host_ip, host_port, container_port = mapping.split(":")
        assert host_ip == "127.0.0.1"
        assert int(container_port) == cmd_port()
        published.append(int(host_port))

    assert len(set(published)) == len(published) == 2


def test_the_replicas_share_the_videos_and_state_volumes_at_the_images_folders() -> None:
    env = image_env()
    wanted = {f"videos:{env['HAILUO_OUTPUT_DIR']}", f"state:{env['HAILUO_STATE_DIR']}"}

    for name, service in replicas().items():
        assert set(service["volumes"]) == wanted, name
        assert "HAILUO_OUTPUT_DIR" not in service["environment"], name
    assert set(compose()["volumes"]) == {"pgdata", "videos", "state"}


def test_the_replicas_database_url_names_the_postgres_service_and_its_database() -> None:
    raw = compose()
    active, _ = env_example()
    services = interpolated(raw, active)["services"]
    postgres = services["postgres"]["environment"]

    assert postgres["POSTGRES_PASSWORD"] == active["POSTGRES_PASSWORD"]
    for name in replicas():
        written = raw["services"][name]["environment"]["HAILUO_DATABASE_URL"]
        url = urlsplit(services[name]["environment"]["HAILUO_DATABASE_URL"])
        # The password is .env's, the one the postgres service is given; refused if unset.
        assert "${POSTGRES_PASSWORD:?" in written, name
        assert url.scheme == "postgresql", name
        assert url.hostname == "postgres" and url.port == 5432, name
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.password == postgres["POSTGRES_PASSWORD"], name
        assert url.path == f"/{postgres['POSTGRES_DB']}", name


def test_every_variable_the_deploy_files_name_is_one_the_server_or_postgres_reads() -> None:
    known = server_reads()
    for path in ("Dockerfile", "compose.yaml", "deploy.env.example", "docs/DEPLOY.md"):
        named = set(VARIABLE.findall((ROOT / path).read_text(encoding="utf-8")))
        unknown = named - known - POSTGRES_IMAGE_VARIABLES
        assert unknown == set(), f"{path} names variables the server never reads: {unknown}"


def test_the_env_example_asks_for_auth_a_host_and_a_password_and_every_value_is_accepted() -> None:
    active, shown = env_example()

    assert {"HAILUO_HTTP_TOKEN", "HAILUO_ALLOWED_HOSTS", "POSTGRES_PASSWORD"} <= set(active)
    assert {"HAILUO_OAUTH_ISSUER", "HAILUO_RESOURCE_URL", "PIAPI_API_KEY"} <= set(shown)
    # Every value shown, as if all were uncommented, is one the server accepts.
    values = {k: v for k, v in {**active, **shown}.items() if k not in POSTGRES_IMAGE_VARIABLES}
    values["HAILUO_DATABASE_URL"] = "postgresql://hailuo:pw@postgres:5432/hailuo"
    settings = Settings.from_env(values)

    assert settings.problems == ()
    assert settings.oauth_enabled and settings.http_tokens and settings.allowed_hosts


def test_server_json_offers_the_hosted_service_as_a_remote_with_secret_headers() -> None:
    (remote,) = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))["remotes"]
    headers = {h["name"].lower(): h for h in remote["headers"]}

    assert remote["type"] == "streamable-http"
    assert urlsplit(remote["url"]).scheme == "https" and remote["url"].endswith("/mcp")
    assert set(headers) == {"authorization", KEY_HEADER}
    assert all(h["isSecret"] and not h["isRequired"] for h in headers.values())
    assert headers["authorization"]["value"] == "Bearer {token}"
    # Every {variable} the URL and the header values use is declared beside them.
    assert set(re.findall(r"\{(\w+)\}", remote["url"])) == set(remote["variables"])
    assert headers["authorization"]["variables"]["token"]["isSecret"] is True


# What the image would run, run here


def serve_command(host: str, port: int) -> list[str]:
    """The image's ENTRYPOINT and CMD, from this venv, with the bind changed."""
    cmd = image_cmd()
    cmd[cmd.index("--host") + 1] = host
    cmd[cmd.index("--port") + 1] = str(port)
    return [str(BIN / "hailuo-mcp"), *cmd]


def container_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The image's ENV with its folders under tmp_path (the container's / is tmp_path)."""
    env = {
        key: value.replace("$PATH", os.environ.get("PATH", ""))
        for key, value in image_env().items()
    }
    for key in ("HAILUO_OUTPUT_DIR", "HAILUO_STATE_DIR", "HAILUO_IMAGE_DIRS"):
        env[key] = str(tmp_path / env[key].lstrip("/"))
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(tmp_path / "home")
    return {**env, **extra}


def healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK command, verbatim but for the port, with this Python."""
    command = healthcheck_command()
    script = command[2].replace(f":{cmd_port()}/", f":{port}/")
    assert script != command[2] or port == cmd_port()
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )


@contextmanager
def container(tmp_path: Path, name: str, env: Mapping[str, str]) -> Iterator[int]:
    """One replica: the image's command on a free loopback port, until its HEALTHCHECK passes.

    Stopped with SIGTERM as `docker stop` does; its stderr is in tmp_path/<name>.log.
    """
    port = free_port()
    log = tmp_path / f"{name}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            serve_command("127.0.0.1", port), env=dict(env), stdout=stderr, stderr=stderr
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while healthcheck(port).returncode != 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{name} never healthy:\n{log.read_text()}"
            time.sleep(POLL_S)  # a child process's start-up: nothing to wait on but its port
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


def initialize(port: int, token: str | None) -> httpx.Response:
    headers = {"accept": "application/json, text/event-stream"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test_deploy", "version": "0"},
        },
    }
    return httpx.post(f"http://127.0.0.1:{port}/mcp", json=body, headers=headers, timeout=10)


def test_the_image_command_serves_and_the_image_healthcheck_passes_against_it(
    tmp_path: Path,
) -> None:
    env = container_env(tmp_path, HAILUO_HTTP_TOKEN=TOKEN)

    with container(tmp_path, "image", env) as port:
        assert healthcheck(port).returncode == 0
        assert initialize(port, TOKEN).status_code == 200
        assert initialize(port, None).status_code == 401
        ready = httpx.get(f"http://127.0.0.1:{port}{READY_PATH}", timeout=10)
        assert ready.status_code == 200, ready.text
    # The SQLite ledger went to the image's state folder, as the volume would hold it.
    assert (tmp_path / "data" / "state" / "tasks.sqlite3").is_file()
    assert "Traceback" not in (tmp_path / "image.log").read_text()


def test_the_healthcheck_fails_when_nothing_listens() -> None:
    assert healthcheck(free_port()).returncode != 0


def test_the_image_command_as_is_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    cmd = [str(BIN / "hailuo-mcp"), *image_cmd()]
    cmd[cmd.index("--port") + 1] = str(free_port())

    done = subprocess.run(
        cmd, env=container_env(tmp_path), capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2, done.stderr
    assert "HAILUO_HTTP_TOKEN" in done.stderr


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (fails, never skips, without Debian's binaries)."""
    yield from serve_postgres()


def test_two_replicas_as_compose_runs_them_share_one_database_and_one_webhook_secret(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    active, _ = env_example()
    database = postgres.new_database()
    shared = {k: v for k, v in active.items() if k not in POSTGRES_IMAGE_VARIABLES}
    env = container_env(
        tmp_path,
        **{
            **shared,
            "HAILUO_HTTP_TOKEN": TOKEN,
            "HAILUO_DATABASE_URL": database,
            "HAILUO_PUBLIC_URL": "https://mcp.example.com",
        },
    )

    # hailuo-2 starts once hailuo-1 is healthy, as compose.yaml's depends_on says.
    with (
        container(tmp_path, "hailuo-1", env) as first,
        container(tmp_path, "hailuo-2", env) as second,
    ):
        for port in (first, second):
            ready = httpx.get(f"http://127.0.0.1:{port}{READY_PATH}", timeout=10)
            assert ready.status_code == 200, ready.text
            assert initialize(port, TOKEN).status_code == 200
        with psycopg.connect(database) as conn:
            versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [v for (v,) in versions] == [version for version, _ in MIGRATIONS]
    state = tmp_path / "data" / "state"
    assert sorted(p.name for p in state.iterdir()) == ["webhook-secret"]
    assert len((state / "webhook-secret").read_text()) >= 32


def test_a_replica_older_than_the_database_schema_stays_live_but_never_ready(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    database = postgres.new_database()
    newer = MIGRATIONS[-1][0] + 1
    with psycopg.connect(database) as conn:
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY)")
        conn.execute("INSERT INTO schema_migrations VALUES (%s)", (newer,))
    env = container_env(tmp_path, HAILUO_HTTP_TOKEN=TOKEN, HAILUO_DATABASE_URL=database)

    # The HEALTHCHECK passes (liveness), so container() yields; readiness says no.
    with container(tmp_path, "old", env) as port:
        ready = httpx.get(f"http://127.0.0.1:{port}{READY_PATH}", timeout=10)
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "resources not open"}
    assert f"schema version {newer}" in (tmp_path / "old.log").read_text()
