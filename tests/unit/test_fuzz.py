"""Bad input: generated and hostile arguments for every tool, through a real MCP client.

Each property test holds one server and one emulator for all its examples (a blocking portal
keeps the in-process client open while hypothesis drives a sync test). Arguments are drawn per
field from a pool of valid values or a pool of values that are invalid under any coercion the
SDK applies; the test knows which fields it broke, so:

* an invalid argument is an error result naming one of the broken fields, and PiAPI receives no
  create (and, for get_task, no request at all);
* a valid argument does what it says (generate_video with wait_seconds=0 creates exactly one
  task, upstream receives exactly the prompt and options sent);
* nothing ever raises from call_tool (no protocol error) and the server answers a follow-up
  estimate_cost after every example.

Hostile strings (1 MB prompts, control characters, unicode edge cases, NUL bytes) are a table of
their own; garbage on the stdio wire is sent to a real `python -m hailuo_mcp`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, TextContent

from hailuo_mcp.emulator import Emulator
from hailuo_mcp.ledger import open_ledger_sync
from hailuo_mcp.server import build_server
from tests.reliability_stdio import server_env, stdio_server
from tests.support import KEY, MANUAL, MakeEmulator, error_of, make_settings

ABSENT = object()  # the argument is left out
TASK_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
CONTROL = "".join(chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
BOOL_WORDS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}
# USD per generation, from the seed page (an independent copy of the price table).
PRICES = {
    ("v2.3", 6, 768): 0.23,
    ("v2.3", 10, 768): 0.45,
    ("v2.3", 6, 1080): 0.40,
    ("v2.3-fast", 6, 768): 0.16,
    ("v2.3-fast", 10, 768): 0.26,
    ("v2.3-fast", 6, 1080): 0.26,
}
EXAMPLES = {"generate_video": 250, "get_task": 150, "list_tasks": 100, "estimate_cost": 100}
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # The same examples every run, so CI is reproducible; HAILUO_FUZZ_RANDOM=1 explores new ones.
    derandomize=os.environ.get("HAILUO_FUZZ_RANDOM") != "1",
)

# Value pools. `junk` is anything JSON can carry that no field here accepts.

text_chars = st.characters(exclude_categories=["Cs"], exclude_characters=CONTROL)
junk = st.one_of(
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
no_digits = st.text(alphabet="bcdgkmqrswxz -", min_size=1, max_size=8)


def sized(low: int, high: int) -> st.SearchStrategy[str]:
    """A non-blank text of exactly n characters, n in [low, high] (cheap to draw when long)."""
    seed = st.text(text_chars, min_size=1, max_size=8).filter(str.strip)
    return st.integers(low, high).flatmap(lambda n: seed.map(lambda t: (t * n)[:n]))


valid_prompt = st.one_of(
    st.text(text_chars, min_size=1, max_size=300).filter(str.strip), sized(1990, 2000)
)
invalid_prompt = st.one_of(
    st.just(ABSENT),
    sized(2001, 4000),
    st.text(st.sampled_from(" \t\n\r\u2003\u3000\u00a0"), max_size=20),  # empty or blank
    st.tuples(st.text(text_chars, max_size=50), st.sampled_from(CONTROL), st.text(max_size=50)).map(
        "".join
    ),
    st.integers(),
    st.none(),
    st.booleans(),
    finite,
    junk,
)


def not_in(values: set[Any]) -> Callable[[Any], bool]:
    return lambda v: v not in values


def literal_pools(good: list[Any]) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    valid = st.sampled_from([ABSENT, *good])
    invalid = st.one_of(
        st.integers().filter(not_in(set(good))),
        finite.filter(not_in(set(good))),
        st.text(max_size=10),
        st.none(),
        st.booleans(),
        junk,
    )
    return valid, invalid


GENERATE_POOLS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "prompt": (valid_prompt, invalid_prompt),
    "model": (
        st.sampled_from([ABSENT, "v2.3"]),
        st.one_of(
            st.just("v2.3-fast"),  # image-to-video only: needs image_url
            st.text(max_size=12).filter(not_in({"v2.3", "v2.3-fast"})),
            st.integers(),
            st.none(),
            junk,
        ),
    ),
    "duration": literal_pools([6, 10]),
    "resolution": literal_pools([768, 1080]),
    "expand_prompt": (
        st.sampled_from([ABSENT, None, True, False]),
        st.one_of(
            # "null": the SDK reads a JSON-looking string as JSON, and null is a valid choice.
            st.text(max_size=8).filter(lambda s: s.lower() not in BOOL_WORDS | {"null"}),
            st.integers().filter(not_in({0, 1})),
            finite.filter(not_in({0.0, 1.0})),
            junk,
        ),
    ),
    "image_url": (
        st.sampled_from([ABSENT, None, "", "   "]),
        st.one_of(
            st.sampled_from(
                [
                    "ftp://example.com/a.png",
                    "not a url",
                    "/etc/passwd",
                    "file:///etc/passwd",
                    "javascript:alert(1)",
                    "data:image/png;base64,AAAA",
                    "../../../etc/passwd",
                    "http://",
                    "\x00",
                ]
            ),
            st.integers(),
            st.booleans(),
            junk,
        ),
    ),
    "wait_seconds": (
        st.sampled_from([ABSENT, None, 0, 0.0]),  # HAILUO_WAIT_SECONDS is 0 here
        st.one_of(
            finite.filter(lambda x: x < 0 or x > 3600),
            st.integers().filter(lambda x: x < 0 or x > 3600),
            no_digits,
            junk,
        ),
    ),
}
# Words an error about each broken field must contain (any one of them).
NAMES = {
    "model": ("model", "image_url"),
    "combo": ("resolution", "duration"),
}


@st.composite
def arguments(
    draw: st.DrawFn,
    pools: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]],
    combos: tuple[str, ...] = (),
) -> tuple[dict[str, Any], set[str]]:
    """Tool arguments and the set of fields deliberately broken (empty: all valid)."""
    broken = draw(st.sets(st.sampled_from([*pools, *combos]), max_size=3))
    args: dict[str, Any] = {}
    for name, (valid, invalid) in pools.items():
        value = draw(invalid if name in broken else valid)
        if value is not ABSENT:
            args[name] = value
    if "combo" in broken:
        args["duration"], args["resolution"] = 10, 1080
    elif combos and args.get("duration") == 10 and args.get("resolution") == 1080:
        broken.add("combo")  # two valid values that are invalid together
    if draw(st.booleans()):
        # Unknown arguments are ignored: they never make a call valid or invalid.
        extra = draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in pools))
        args[extra] = draw(st.integers())
    return args, broken


@contextmanager
def served(
    make_emulator: MakeEmulator, tmp_path: Path, **env: str
) -> Iterator[tuple[BlockingPortal, Client, Emulator]]:
    """One emulator (frozen clock) and one in-process client for a whole property test."""
    emulator = make_emulator(clock=MANUAL, seed=17)
    settings_ = make_settings(
        emulator, tmp_path, HAILUO_EXPECTED_SECONDS="77", HAILUO_WAIT_SECONDS="0", **env
    )
    with start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(build_server(settings_))) as client:
            yield portal, client, emulator


def call(portal: BlockingPortal, client: Client, name: str, args: dict[str, Any]) -> CallToolResult:
    async def run() -> CallToolResult:
        with anyio.fail_after(30):
            return await client.call_tool(name, args)

    return portal.call(run)


def text_of(result: CallToolResult) -> str:
    return " ".join(b.text for b in result.content if isinstance(b, TextContent))


def assert_alive(portal: BlockingPortal, client: Client) -> None:
    answer = call(portal, client, "estimate_cost", {})
    assert not answer.is_error and (answer.structured_content or {})["usd"] == 0.23


def assert_names_a_broken_field(result: CallToolResult, broken: set[str]) -> None:
    text = text_of(result)
    assert result.is_error, text
    words = [w for field in broken for w in NAMES.get(field, (field,))]
    assert any(w in text for w in words), (sorted(broken), text[:500])
    assert len(text) < 5000  # a refusal never echoes a huge argument back


def count(tool: str, seen: dict[str, int]) -> None:
    """Append how many examples ran to HAILUO_RELIABILITY_REPORT (for docs/RELIABILITY.md)."""
    path = os.environ.get("HAILUO_RELIABILITY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"fuzz": tool, **seen}) + "\n")


def test_generate_video_refuses_every_broken_argument_by_name_and_creates_only_for_valid_ones(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    seen = {"valid": 0, "invalid": 0}
    with served(make_emulator, tmp_path) as (portal, client, emulator):

        @settings(FUZZ, max_examples=EXAMPLES["generate_video"])
        @given(arguments(GENERATE_POOLS, combos=("combo",)))
        def check(drawn: tuple[dict[str, Any], set[str]]) -> None:
            args, broken = drawn
            before = emulator.creates()
            # Examples repeat requests: each valid one must reach PiAPI, not the repeat guard.
            sent_args = args if broken else {**args, "allow_duplicate": True}
            result = call(portal, client, "generate_video", sent_args)
            if broken:
                seen["invalid"] += 1
                assert_names_a_broken_field(result, broken)
                assert emulator.creates() == before
            else:
                seen["valid"] += 1
                assert not result.is_error, text_of(result)
                data = result.structured_content or {}
                assert data["done"] is False and data["status"] == "pending"
                assert emulator.creates() == before + 1
                sent = emulator.task(data["task_id"])["input"]
                assert sent["prompt"] == args["prompt"]  # byte for byte
                assert sent["duration"] == args.get("duration", 6)
                assert sent["resolution"] == args.get("resolution", 768)
                expand = args.get("expand_prompt")
                assert sent["expand_prompt"] is (True if expand is None else expand)
            assert_alive(portal, client)

        check()
    assert seen["valid"] > 10 and seen["invalid"] > 50
    count("generate_video", seen)
    with open_ledger_sync(tmp_path / "state" / "tasks.sqlite3") as conn:
        (rows,) = conn.execute("SELECT COUNT(*) FROM tasks").fetchone()
    assert rows == seen["valid"] == emulator.creates()


GET_TASK_POOLS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "task_id": (
        st.from_regex(TASK_ID_RE, fullmatch=True),
        st.one_of(
            st.just(ABSENT),
            st.text(max_size=140).filter(lambda s: not TASK_ID_RE.fullmatch(s)),
            st.sampled_from(["../../etc/passwd", "..%2F..", "/etc/passwd", "a\x00b", "a" * 129]),
            st.integers(),
            st.none(),
            junk,
        ),
    ),
    "wait_seconds": (
        st.sampled_from([ABSENT, 0, 0.0]),
        st.one_of(finite.filter(lambda x: x < 0 or x > 3600), no_digits, st.none(), junk),
    ),
}


def test_get_task_refuses_malformed_ids_without_any_request_and_looks_up_wellformed_ones(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    seen = {"valid": 0, "invalid": 0}
    with served(make_emulator, tmp_path) as (portal, client, emulator):

        @settings(FUZZ, max_examples=EXAMPLES["get_task"])
        @given(arguments(GET_TASK_POOLS))
        def check(drawn: tuple[dict[str, Any], set[str]]) -> None:
            args, broken = drawn
            gets = emulator.gets()
            result = call(portal, client, "get_task", args)
            if broken:
                seen["invalid"] += 1
                assert_names_a_broken_field(result, broken)
                assert emulator.gets() == gets
            else:
                seen["valid"] += 1
                # A well-formed id nobody created: one GET, a clear "unknown task" answer.
                assert error_of(result)["error_kind"] == "task_not_found"
                assert args["task_id"] in text_of(result)
                assert emulator.gets() == gets + 1
            assert emulator.creates() == 0
            assert_alive(portal, client)

        check()
    assert seen["valid"] > 10 and seen["invalid"] > 50
    assert list((tmp_path / "videos").glob("*")) == []
    count("get_task", seen)


LIST_POOLS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "limit": (
        st.one_of(st.just(ABSENT), st.integers(1, 200)),
        st.one_of(
            st.integers(max_value=0),
            st.integers(min_value=201),
            finite.filter(lambda x: not x.is_integer()),
            no_digits,
            st.none(),
            junk,
        ),
    ),
    "status": (
        st.sampled_from([ABSENT, None, "pending", "processing", "completed", "failed"]),
        st.one_of(
            st.text(max_size=12).filter(not_in({"pending", "processing", "completed", "failed"})),
            st.integers(),
            junk,
        ),
    ),
}


def test_list_tasks_answers_within_its_limits_and_refuses_the_rest_by_name(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    seen = {"valid": 0, "invalid": 0}
    with served(make_emulator, tmp_path) as (portal, client, emulator):
        for n in range(3):  # something to list
            call(portal, client, "generate_video", {"prompt": f"clip {n}"})

        @settings(FUZZ, max_examples=EXAMPLES["list_tasks"])
        @given(arguments(LIST_POOLS))
        def check(drawn: tuple[dict[str, Any], set[str]]) -> None:
            args, broken = drawn
            result = call(portal, client, "list_tasks", args)
            if broken:
                seen["invalid"] += 1
                assert_names_a_broken_field(result, broken)
            else:
                seen["valid"] += 1
                assert not result.is_error, text_of(result)
                tasks = (result.structured_content or {})["tasks"]
                limit = args.get("limit", 20)
                status = args.get("status")
                expected = 3 if status in (None, "pending") else 0
                assert len(tasks) == min(limit, expected)
                assert all(status in (None, t["status"]) for t in tasks)
                stamps = [t["created_at"] for t in tasks]
                assert stamps == sorted(stamps, reverse=True)
            assert emulator.creates() == 3
            assert_alive(portal, client)

        check()
    assert seen["valid"] >= 5 and seen["invalid"] > 30
    count("list_tasks", seen)


ESTIMATE_POOLS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "model": (
        st.sampled_from([ABSENT, "v2.3", "v2.3-fast"]),
        st.one_of(st.text(max_size=12).filter(not_in({"v2.3", "v2.3-fast"})), st.none(), junk),
    ),
    "duration": literal_pools([6, 10]),
    "resolution": literal_pools([768, 1080]),
}


def test_estimate_cost_prices_every_valid_combination_and_refuses_the_rest_by_name(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    seen = {"valid": 0, "invalid": 0}
    with served(make_emulator, tmp_path) as (portal, client, emulator):

        @settings(FUZZ, max_examples=EXAMPLES["estimate_cost"])
        @given(arguments(ESTIMATE_POOLS, combos=("combo",)))
        def check(drawn: tuple[dict[str, Any], set[str]]) -> None:
            args, broken = drawn
            result = call(portal, client, "estimate_cost", args)
            if broken:
                seen["invalid"] += 1
                assert_names_a_broken_field(result, broken)
            else:
                seen["valid"] += 1
                key = (
                    args.get("model", "v2.3"),
                    args.get("duration", 6),
                    args.get("resolution", 768),
                )
                assert not result.is_error, text_of(result)
                assert (result.structured_content or {})["usd"] == PRICES[key]
            assert emulator.creates() == 0
            assert_alive(portal, client)

        check()
    assert seen["valid"] >= 5 and seen["invalid"] > 30
    count("estimate_cost", seen)


# Hostile prompts: (id, prompt, accepted). Lengths are Unicode code points, as JSON Schema's
# maxLength and Python count them: an astral character (an emoji) is one, a ZWJ family of four
# is seven. A lone surrogate is not a Unicode scalar value: refused as an invalid string.
FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
HOSTILE = [
    ("1-MB", "a" * 1_000_000, False),
    ("1-MB-emoji", "\U0001f600" * 250_000, False),
    ("2000-astral", "\U0001f600" * 2000, True),
    ("2001-astral", "\U0001f600" * 2001, False),
    ("2000-cjk", "\u6f22" * 2000, True),
    ("zwj-families-1995-code-points", FAMILY * 285, True),
    ("zwj-families-2002-code-points", FAMILY * 286, False),
    ("combining-marks", "e" + "\u0301" * 1999, True),
    ("zalgo", "z\u0336\u0334\u0337a\u0338\u0335l\u0334g\u0337o\u0336", True),
    (
        "rtl-arabic",
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
        True,
    ),
    ("rtl-override", "\u202egnp.exe a sunset", True),
    ("bidi-isolates", "\u2066abc\u2069 \u2067\u05d0\u05d1\u2069", True),
    ("noncharacters", "\ufffe\uffff\U0010ffff stars", True),
    ("c1-control-nel", "a\x85b", True),
    ("tabs-newlines", "line one\n\tline two\r\n", True),
    ("injection", '"}], "model": "v9"}; DROP TABLE tasks;-- \' OR 1=1', True),
    ("nul-inside", "a\x00b", False),
    ("nul-only", "\x00", False),
    ("nul-trailing", "a sunset\x00", False),
    ("ansi-escape", "\x1b[31mred\x1b[0m", False),
    ("bell", "ding\x07", False),
    ("del", "x\x7f", False),
    ("unicode-blank", "\u2003\u3000\u00a0\n", False),
    ("lone-surrogate", "\ud800 x", False),
]


@pytest.fixture
def hostile_server(
    make_emulator: MakeEmulator, tmp_path: Path
) -> Iterator[tuple[BlockingPortal, Client, Emulator]]:
    with served(make_emulator, tmp_path) as trio:
        yield trio


@pytest.mark.parametrize(
    ("prompt", "accepted"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_prompts_are_refused_by_name_or_sent_upstream_exactly(
    hostile_server: tuple[BlockingPortal, Client, Emulator],
    tmp_path: Path,
    prompt: str,
    accepted: bool,
) -> None:
    portal, client, emulator = hostile_server
    result = call(portal, client, "generate_video", {"prompt": prompt, "wait_seconds": 0})
    if accepted:
        assert not result.is_error, text_of(result)
        task_id = (result.structured_content or {})["task_id"]
        assert emulator.task(task_id)["input"]["prompt"] == prompt
        with open_ledger_sync(tmp_path / "state" / "tasks.sqlite3") as conn:
            (stored,) = conn.execute("SELECT prompt FROM tasks WHERE task_id = ?", (task_id,))
        assert stored[0] == prompt
        assert emulator.creates() == 1
    else:
        assert_names_a_broken_field(result, {"prompt"})
        assert emulator.creates() == 0
    assert_alive(portal, client)


# Raw lines a broken client might write to the server's stdin.
WIRE_GARBAGE = [
    b"\xff\xfe\x00 not utf-8",
    b"not json at all",
    b"[1, 2, 3]",
    b'{"jsonrpc": "2.0"}',
    b'{"jsonrpc": "2.0", "id": 9000, "method": "no/such/method", "params": {}}',
    b'{"jsonrpc": "2.0", "id": 9001, "method": "tools/call", "params": {"name": "nope"}}',
    b'{"jsonrpc": "2.0", "id": 9002, "method": "tools/call", "params": "x"}',
    # An escaped lone surrogate: JSON syntax allows it, Unicode does not.
    b'{"jsonrpc": "2.0", "id": 9003, "method": "tools/call", "params": {"name": '
    b'"generate_video", "arguments": {"prompt": "\\ud800", "wait_seconds": 0}}}',
    b'{"jsonrpc": "2.0", "id": 9004, "method": "tools/call", "params": {"name": '
    b'"generate_video", "arguments": {"prompt": "' + b"a" * 1_000_000 + b'"}}}',
    b"{" * 100_000,
]


@pytest.mark.anyio
async def test_garbage_on_the_stdio_wire_never_crashes_the_server_or_creates_a_task(
    make_emulator: MakeEmulator,
    tmp_path: Path,
) -> None:
    emulator = make_emulator(clock=MANUAL, seed=None)
    env = server_env(emulator, tmp_path, KEY, HAILUO_EXPECTED_SECONDS="77")
    async with stdio_server(env) as server:
        for line in WIRE_GARBAGE:
            await server.send_line(line)
            with anyio.fail_after(20):
                price = await server.call_tool("estimate_cost", {})
            assert price["structuredContent"]["usd"] == 0.23
        assert server.process.returncode is None
    assert emulator.creates() == 0
    assert server.not_protocol == []
    # Requests the SDK can parse are answered with an error; two it cannot (params not an
    # object, a lone surrogate) are dropped by its transport without an answer. None reached a
    # tool that spends money.
    answers = {m["id"]: m for m in server.messages if m.get("id") in {9000, 9001, 9004}}
    assert answers[9000]["error"]["code"] == -32601
    assert answers[9001]["result"]["isError"] and answers[9004]["result"]["isError"]
    assert "prompt" in answers[9004]["result"]["content"][0]["text"]
