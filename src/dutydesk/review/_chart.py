"""A small line chart as a PNG, drawn without a browser or a plotting library: the points of
one series, those before the reviewed period in grey and those inside it in blue on a shaded
band, so a mail client shows the move as an image."""

from __future__ import annotations

import struct
import zlib

WIDTH, HEIGHT, MARGIN = 480, 120, 6
WHITE = (255, 255, 255)
BAND = (232, 240, 252)
GREY = (150, 150, 150)
BLUE = (31, 90, 180)


def _png(pixels: list[bytearray]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)  # 8-bit RGB
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)  # filter 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _dot(pixels: list[bytearray], x: int, y: int, colour: tuple[int, int, int]) -> None:
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):  # two pixels thick
        px, py = x + dx, y + dy
        if 0 <= px < WIDTH and 0 <= py < HEIGHT:
            pixels[py][px * 3 : px * 3 + 3] = bytes(colour)


def _line(
    pixels: list[bytearray], a: tuple[int, int], b: tuple[int, int], colour: tuple[int, int, int]
) -> None:
    steps = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
    for step in range(steps + 1):
        x = a[0] + (b[0] - a[0]) * step // steps
        y = a[1] + (b[1] - a[1]) * step // steps
        _dot(pixels, x, y, colour)


def line_chart(values: list[float], period_from: int) -> bytes:
    """A PNG of `values` in order; those from index `period_from` on are the reviewed period."""
    pixels = [bytearray(bytes(WHITE) * WIDTH) for _ in range(HEIGHT)]
    if not values:
        return _png(pixels)
    low, high = min(values), max(values)
    spread = (high - low) or 1.0
    count = len(values)

    def x_of(index: int) -> int:
        return MARGIN + (WIDTH - 2 * MARGIN - 2) * index // max(count - 1, 1)

    def y_of(value: float) -> int:
        return HEIGHT - MARGIN - 2 - int((value - low) / spread * (HEIGHT - 2 * MARGIN - 2))

    band_from = x_of(min(max(period_from, 0), count - 1)) if period_from < count else WIDTH
    for row in pixels:
        row[band_from * 3 :] = bytes(BAND) * (WIDTH - band_from)
    points = [(x_of(i), y_of(v)) for i, v in enumerate(values)]
    for index, point in enumerate(points):
        colour = BLUE if index >= period_from else GREY
        previous = points[index - 1] if index else point
        _line(pixels, previous, point, colour)
    return _png(pixels)
