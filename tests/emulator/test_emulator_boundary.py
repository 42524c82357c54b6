"""The emulator and the client never import each other: two readings of PiAPI stay apart.

Each check runs in a fresh interpreter, so modules other tests imported cannot hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys

EMULATOR = "hailuo_mcp.emulator"


def loaded_after(statement: str) -> tuple[list[str], int]:
    """Our modules and Pillow's in ``sys.modules``, and the live threads, after ``statement``."""
    script = (
        "import json, sys, threading\n"
        f"{statement}\n"
        "ours = sorted(m for m in sys.modules if m.split('.')[0] in ('hailuo_mcp', 'PIL'))\n"
        "print(json.dumps([ours, threading.active_count()]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    modules, threads = json.loads(result.stdout)
    return modules, threads


def is_emulator(module: str) -> bool:
    """Whether ``module`` is the emulator package or one of its modules."""
    return module == EMULATOR or module.startswith(f"{EMULATOR}.")


def test_importing_the_emulator_builds_nothing_and_loads_nothing_of_the_client() -> None:
    modules, threads = loaded_after(f"import {EMULATOR}")
    assert EMULATOR in modules
    # No client module, and no Pillow: it is imported only once an image arrives.
    assert [m for m in modules if m != "hailuo_mcp" and not is_emulator(m)] == []
    assert threads == 1  # no server, ticker or client started at import


def test_importing_the_server_and_the_flow_never_loads_the_emulator() -> None:
    modules, _ = loaded_after("import hailuo_mcp.server, hailuo_mcp.flow")
    assert {"hailuo_mcp.server", "hailuo_mcp.flow"} <= set(modules)
    assert [m for m in modules if is_emulator(m)] == []
