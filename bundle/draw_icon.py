"""Draw hailuo-mcp's PNG icon with Pillow, the same picture as hailuo_mcp/assets/icon.svg.

Pillow cannot read SVG, so the shapes are drawn again here from the SVG's numbers (a 512 x 512
canvas): a rounded square shading from blue to teal, a white play triangle with round corners
and a pale wave below it. Drawn four times larger, then scaled down, for smooth edges.

    .venv/bin/python bundle/draw_icon.py     # rewrites bundle/icon.png and the package's icon.png

The bundle's icon is 512 px (what Claude Desktop shows best); the package's is 128 px, small
enough to travel inline as a data: URI in every initialize answer.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 512
SCALE = 4
TOP = (0x1D, 0x4E, 0xD8)
BOTTOM = (0x08, 0x91, 0xB2)
WHITE = (0xFF, 0xFF, 0xFF)
WAVE = (0xA5, 0xF3, 0xFC)
CORNER = 112
TRIANGLE = [(196, 132), (372, 236), (196, 340)]
TRIANGLE_STROKE = 28
WAVE_START = (96, 404)
WAVE_STEP, WAVE_RISE, WAVE_HUMPS = 80, 32, 4
WAVE_STROKE = 24
HERE = Path(__file__).resolve().parent
# Where each size goes: the bundle's icon, and the package data the server sends.
OUTPUTS = {
    HERE / "icon.png": 512,
    HERE.parent / "hailuo_mcp" / "assets" / "icon.png": 128,
}

Point = tuple[float, float]
RGB = tuple[int, int, int]


def _wave() -> list[Point]:
    """The SVG's `q40 -32 80 0 t80 0 ...`: quadratic humps alternating up and down."""
    points: list[Point] = []
    x0, y0 = WAVE_START
    for hump in range(WAVE_HUMPS):
        start = (x0 + hump * WAVE_STEP, y0)
        control = (start[0] + WAVE_STEP / 2, y0 - WAVE_RISE * (1 if hump % 2 == 0 else -1))
        end = (start[0] + WAVE_STEP, y0)
        for i in range(33):
            t = i / 32
            x = (1 - t) ** 2 * start[0] + 2 * (1 - t) * t * control[0] + t**2 * end[0]
            y = (1 - t) ** 2 * start[1] + 2 * (1 - t) * t * control[1] + t**2 * end[1]
            points.append((x, y))
    return points


def _brush(draw: ImageDraw.ImageDraw, points: list[Point], width: float, fill: RGB) -> None:
    """A round-capped, round-joined stroke along `points`, stamped as discs one pixel apart."""
    radius = width * SCALE / 2
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        steps = max(1, math.ceil(math.dist((x0, y0), (x1, y1)) * SCALE))
        for i in range(steps + 1):
            x = (x0 + (x1 - x0) * i / steps) * SCALE
            y = (y0 + (y1 - y0) * i / steps) * SCALE
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)


def draw() -> Image.Image:
    """The icon as a 512 x 512 RGBA image."""
    big = SIZE * SCALE
    shade = Image.new("RGB", (1, big))
    for y in range(big):
        t = y / (big - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM, strict=True))
        shade.putpixel((0, y), colour)
    canvas = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, big - 1, big - 1), CORNER * SCALE, fill=255)
    canvas.paste(shade.resize((big, big)), (0, 0), mask)

    pen = ImageDraw.Draw(canvas)
    pen.polygon([(x * SCALE, y * SCALE) for x, y in TRIANGLE], fill=WHITE)
    _brush(pen, [*TRIANGLE, TRIANGLE[0], TRIANGLE[1]], TRIANGLE_STROKE, WHITE)
    _brush(pen, _wave(), WAVE_STROKE, WAVE)
    return canvas.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> int:
    """Write both PNGs, optimised."""
    picture = draw()
    for target, size in OUTPUTS.items():
        image = picture if size == SIZE else picture.resize((size, size), Image.Resampling.LANCZOS)
        image.save(target, format="PNG", optimize=True)
        print(f"{target.relative_to(HERE.parent)}: {size} px, {target.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
