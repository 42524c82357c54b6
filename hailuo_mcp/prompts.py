"""The server's prompts: how to write a prompt Hailuo renders well, and a storyboard planner.

A prompt here is a message the user picks in their client (a slash command, a menu entry); it
tells the assistant how to use generate_video well. The prices come from the price table, so
the text cannot drift from what estimate_cost says.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import Field

from hailuo_mcp.branding import server_icons
from hailuo_mcp.models import PROMPT_MAX_CHARS
from hailuo_mcp.pricing import PRICES_USD

SHOT_SECONDS = 6
SHOTS_DEFAULT = 4
SHOTS_MIN, SHOTS_MAX = 2, 10

GUIDE = f"""\
How to write a prompt that MiniMax Hailuo 2.3 (the model behind generate_video) renders well.

Hailuo turns one paragraph of plain description into one continuous shot of 6 or 10 seconds.
Write it like a shot in a screenplay, in full sentences, not as a list of keywords. Cover five
things, in this order, a sentence or two each:

1. Subject: who or what is on screen, in concrete visual terms, and where. "A red fox with a
   white-tipped tail on a forest path covered in orange leaves", not "an animal outdoors".
2. Motion: what moves during the shot, and how. "It trots towards the camera, stops, and
   lifts its head." One clear action fills 6 s; two or three beats in a row fill 10 s. Verbs
   do more than adjectives.
3. Camera: a framing (close-up, medium shot, wide shot, low angle, overhead) and at most one
   movement (static, slow push in, pan left, tracking alongside, orbit, handheld). Write "the
   camera ..." so that its movement is not read as the subject's.
4. Light: the time of day and the quality of the light. "Low golden sunlight from behind,
   long shadows, a soft haze", or "neon signs reflected on wet asphalt at night".
5. Style: the look of the whole clip. "Photorealistic, shallow depth of field, 35 mm film
   grain", or "hand-painted watercolour animation", or "stop-motion clay figures".

Keep to one shot: cuts, scene changes or several places in one prompt rarely come out well;
make several videos instead (the storyboard prompt plans them). Describe what is seen, not what
it means: "tears run down her cheeks", not "she is sad". Lettering on signs and exact numbers
of things often come out wrong, so do not make a video depend on them. A prompt may have up to
{PROMPT_MAX_CHARS:,} characters, but 40 to 120 words are usually enough; more words do not make
it more precise.

expand_prompt: when it is on (the default, unless the server sets
HAILUO_EXPAND_PROMPT_DEFAULT=0), Hailuo first rewrites the prompt with more detail of its own
(MiniMax calls this the prompt optimizer). That helps a short idea such as "autumn wind" become
a full scene. Turn it off (expand_prompt=false) when the prompt is already complete and its
wording must be kept, for example the shots of one storyboard, which must match each other: the
rewrite may add different details to each one.

With image_url, the image is the first frame: describe the motion, the camera and any change of
light from there, and do not describe the scene differently from the image. v2.3-fast needs an
image; v2.3 takes text alone or text with an image.
"""


def price_lines() -> str:
    """The price table as lines of text (charged only when a video completes)."""
    lines = [
        f"- {model}, {duration} s, {resolution}p: ${usd:.2f}"
        for (model, duration, resolution), usd in PRICES_USD.items()
    ]
    return "\n".join(
        [
            "Prices per video, charged only when it completes (estimate_cost gives the same):",
            *lines,
            "1080p exists only for 6 s videos.",
        ]
    )


def guide_text(idea: str | None) -> str:
    """The text of hailuo_prompt_guide, ending with the idea to write a prompt for, if any."""
    ending = (
        "Now write one prompt for this idea, covering the five parts above, and show it to me "
        f"before calling generate_video:\n\n{idea.strip()}"
        if idea and idea.strip()
        else "Follow this guide whenever you write a prompt for generate_video."
    )
    return f"{GUIDE}\n{price_lines()}\n\n{ending}\n"


def parse_shots(raw: str | int) -> int:
    """The number of shots asked for; anything else is an invalid-params error saying the rule."""
    try:
        shots = int(str(raw).strip())
    except ValueError:
        shots = 0
    if not SHOTS_MIN <= shots <= SHOTS_MAX:
        raise MCPError(
            INVALID_PARAMS,
            f"shots must be a whole number from {SHOTS_MIN} to {SHOTS_MAX}; got {str(raw)!r}",
        )
    return shots


def storyboard_text(idea: str, shots: int) -> str:
    """The text of the storyboard prompt for an idea and a number of shots."""
    price = PRICES_USD[("v2.3", SHOT_SECONDS, 768)]
    price_1080 = PRICES_USD[("v2.3", SHOT_SECONDS, 1080)]
    cost = (
        f"{shots} videos x ${price:.2f} = ${price * shots:.2f} with v2.3 at 768p "
        f"(${price_1080 * shots:.2f} at 1080p), charged only for videos that complete"
    )
    return f"""\
Plan a storyboard of {shots} shots of {SHOT_SECONDS} seconds each for the idea below, to be made
with MiniMax Hailuo 2.3 through generate_video, one video per shot.

Idea: {idea.strip()}

Work in this order.

1. A continuity sheet: three lines that every shot's prompt repeats word for word.
   - Subject line: the main character(s) or object(s), described once in concrete visual
     terms (age, build, hair, clothing and its colours; or shape, material, colour).
   - World line: the place and the time of day.
   - Style line: the look and the colour palette ("photorealistic, soft natural light, 35 mm
     film grain, muted greens and ambers").
   Hailuo makes every shot on its own and knows nothing of the others: the same words are what
   keep the character, the place and the look the same from shot to shot. Never replace these
   lines by a synonym, a shorter form or a pronoun.

2. The shots, numbered 1 to {shots}. For each one:
   - Beat: what happens, in one sentence of story.
   - Prompt: the subject line, then the one action of this shot (what moves, from where to
     where, in {SHOT_SECONDS} s), the camera (a framing and at most one movement), the light if
     it changes, then the world line and the style line. One continuous action, no cut inside
     a shot. Keep each prompt under {PROMPT_MAX_CHARS:,} characters (a few hundred are plenty).
   Vary the framing from shot to shot (a wide shot to set the scene, medium shots, a close-up
   for a detail) so that the cuts read clearly, and start each shot where the previous one
   ended.

3. The cost: {cost}. Then ask me to confirm or change anything.
   Generate nothing before I confirm.

When I confirm, call generate_video once per shot, in order, with duration={SHOT_SECONDS} and
expand_prompt=false, so that Hailuo renders the wording as written instead of adding different
details to each shot. A video takes about 80 s; if a call comes back with done=false and a
task_id, go on with the next shot and collect that one later with get_task. Finish with the
saved file of every shot, in order.
"""


def register_prompts(mcp: MCPServer[Any]) -> None:
    """Add hailuo_prompt_guide and storyboard to the server."""
    icons = server_icons()

    @mcp.prompt(
        name="hailuo_prompt_guide",
        title="Write a Hailuo video prompt",
        description="How to write a prompt Hailuo renders well (subject, motion, camera, light, "
        "style), what expand_prompt does, and the prices; optionally applied to an idea.",
        icons=icons,
    )
    async def hailuo_prompt_guide(
        idea: Annotated[
            str | None,
            Field(description="Optional: an idea to write a prompt for, following the guide."),
        ] = None,
    ) -> str:
        return guide_text(idea)

    @mcp.prompt(
        name="storyboard",
        title="Storyboard a Hailuo video",
        description=f"Turn an idea into {SHOTS_MIN}-{SHOTS_MAX} shots of {SHOT_SECONDS} s with "
        "the same wording for the same character, place and style, priced, then generated "
        "shot by shot once you confirm.",
        icons=icons,
    )
    async def storyboard(
        idea: Annotated[str, Field(description="What the video should tell or show.")],
        shots: Annotated[
            str,
            Field(
                description=f"How many shots of {SHOT_SECONDS} s, {SHOTS_MIN} to {SHOTS_MAX} "
                f"(default {SHOTS_DEFAULT})."
            ),
        ] = str(SHOTS_DEFAULT),
    ) -> str:
        if not idea.strip():
            raise MCPError(INVALID_PARAMS, "idea must not be empty")
        return storyboard_text(idea, parse_shots(shots))
