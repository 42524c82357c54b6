"""The command line: `serve` (stdio, the default), `demo`, `emulator`.

Logging goes to stderr, configured here and nowhere else: in stdio mode stdout is the wire.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hailuo_mcp.errors import ConfigurationError

if TYPE_CHECKING:
    from hailuo_mcp.config import Settings
    from hailuo_mcp.hailuo_server import HailuoServer


def _speed(raw: str) -> float:
    """An emulator time factor: a number above 0 (0 would freeze the emulated clock)."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("must be above 0 and at most 10000")
    return value


def _parser() -> argparse.ArgumentParser:
    from hailuo_mcp import __version__

    parser = argparse.ArgumentParser(
        prog="hailuo-mcp",
        description="MCP server for MiniMax Hailuo video generation through PiAPI.",
    )
    parser.add_argument("--version", action="version", version=f"hailuo-mcp {__version__}")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP host (streamable-http only; beyond loopback needs HAILUO_HTTP_TOKEN or OAuth)",
    )
    serve.add_argument("--port", type=int, default=8765, help="HTTP port (streamable-http only)")

    demo = commands.add_parser(
        "demo", help="generate one video on the built-in PiAPI emulator (no API key needed)"
    )
    demo.add_argument("prompt", nargs="?", default="a red fox running through autumn leaves")
    demo.add_argument("--model", choices=["v2.3", "v2.3-fast"], default="v2.3")
    demo.add_argument("--duration", type=int, choices=[6, 10], default=6)
    demo.add_argument("--resolution", type=int, choices=[768, 1080], default=768)
    demo.add_argument("--image", dest="image_url", default=None, help="image URL or local file")
    demo.add_argument(
        "--speed",
        type=_speed,
        default=10.0,
        help="emulator time factor, above 0 (10: a 77 s job in ~8 s)",
    )

    emulator = commands.add_parser("emulator", help="run the PiAPI emulator for development")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8080)
    emulator.add_argument("--speed", type=_speed, default=1.0, help="time factor (100 = 100x)")
    emulator.add_argument(
        "--api-key", default=None, help="key the emulator expects (default: any non-empty key)"
    )
    return parser


def _configure_logging(default_level: str) -> None:
    level = os.environ.get("HAILUO_LOG_LEVEL", default_level).upper()
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO; keep the log about our tasks.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)


def build_long_lived_server(
    settings: Settings, *, listen_for_webhooks: bool = True
) -> HailuoServer:
    """Import and build the server as a process that serves until it exits."""
    # Importing the SDK allocates ~90k objects that live as long as the process and frees almost
    # none: pause the cyclic GC meanwhile (~5 % of start-up; `main` pauses it from its first
    # line), then freeze them so that later full collections (~40 ms each over them) skip them.
    # Figures: docs/PERFORMANCE.md.
    gc.disable()
    try:
        from hailuo_mcp.server import build_server

        server = build_server(settings, listen_for_webhooks=listen_for_webhooks)
    finally:
        gc.enable()
    gc.freeze()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hailuo-mcp` console script and `python -m hailuo_mcp`."""
    # Everything imported from here to the built server lives as long as the process: no cyclic
    # GC until build_long_lived_server (or another command) turns it back on.
    gc.disable()
    try:
        return _run(argv)
    finally:
        gc.enable()


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    # The demo draws a progress line on the terminal: only warnings should interrupt it.
    _configure_logging("WARNING" if command == "demo" else "INFO")
    if command == "emulator":
        gc.enable()
        from hailuo_mcp.emulator import EmulatorConfig, serve

        serve(args.host, args.port, EmulatorConfig(api_key=args.api_key, speed=args.speed))
        return 0
    from hailuo_mcp.config import Settings

    settings = Settings.from_env()
    for problem in settings.problems:
        # The server starts anyway: its tools answer this through the client, which would
        # otherwise only see "connection closed".
        logging.getLogger("hailuo_mcp").error("configuration: %s", problem)
    if command == "demo":
        gc.enable()
        if settings.problems:
            return 2
        from hailuo_mcp.demo import run_demo

        return run_demo(
            settings,
            prompt=args.prompt,
            model=args.model,
            duration=args.duration,
            resolution=args.resolution,
            image_url=args.image_url,
            speed=args.speed,
        )
    http = getattr(args, "transport", "stdio") == "streamable-http"
    # Over HTTP the webhook receiver is a route of the app; over stdio it listens on its own.
    server = build_long_lived_server(settings, listen_for_webhooks=not http)
    if http:
        return _serve_http(server, settings, args.host, args.port)
    server.run()
    return 0


def _serve_http(server: HailuoServer, settings: Settings, host: str, port: int) -> int:
    """Serve streamable HTTP; 2 when the bind would be open to anyone (nothing listens then)."""
    # Imported here: uvicorn and the HTTP stack are no cost of the stdio server.
    import anyio

    from hailuo_mcp.http_app import build_http_app, serve_http

    try:
        app = build_http_app(server, settings, host, port)
    except ConfigurationError as exc:
        logging.getLogger("hailuo_mcp").error("%s", exc.message)
        return 2
    anyio.run(serve_http, app, host, port)
    return 0
