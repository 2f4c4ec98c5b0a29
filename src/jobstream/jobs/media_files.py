"""Real, small output files for the demo job kinds: MP4 video, PDF, PNG and WAV.

Pure, blocking functions with no knowledge of jobs or the worker, so that they can be tested on
their own. They are CPU-bound: a handler runs them with ``await asyncio.to_thread(...)``.

Every writer writes to a temporary file next to ``path`` and renames it into place, so a reader
never sees a half-written file, even if a job is re-run after an interruption.
"""

from __future__ import annotations

import array
import colorsys
import contextlib
import math
import os
import secrets
import sys
import textwrap
import wave
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont

__all__ = ["write_mp4", "write_pdf", "write_png", "write_wav"]

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_INK = (245, 245, 250)
_MUTED = (200, 205, 220)


@lru_cache(maxsize=16)
def _font(size: int) -> Font:
    """Pillow's built-in font (a scalable one when Pillow has FreeType)."""
    return ImageFont.load_default(size=size)


def _drawable(text: str, font: Font) -> str:
    """The bitmap fallback font only knows Latin-1; replace what it cannot draw."""
    if isinstance(font, ImageFont.FreeTypeFont):
        return text
    return text.encode("latin-1", errors="replace").decode("latin-1")


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    lines = textwrap.wrap(" ".join(text.split()), width=width) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(width - 1, 1)].rstrip() + "…"
    return lines


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# -- video --------------------------------------------------------------------------------------


def _video_frame(
    index: int, total: int, fps: int, size: tuple[int, int], lines: list[str]
) -> Image.Image:
    width, height = size
    t = index / max(total - 1, 1)
    r, g, b = colorsys.hsv_to_rgb((0.62 + 0.25 * t) % 1.0, 0.55, 0.35)
    image = Image.new("RGB", size, (int(r * 255), int(g * 255), int(b * 255)))
    draw = ImageDraw.Draw(image)
    scale = height / 180
    title = _font(max(int(16 * scale), 8))
    small = _font(max(int(11 * scale), 8))
    y = int(14 * scale)
    for line in lines:
        draw.text((int(12 * scale), y), _drawable(line, title), font=title, fill=_INK)
        y += int(20 * scale)
    # A bar sweeping left to right, and a bouncing marker above it.
    bar_y = height - int(40 * scale)
    bar_h = max(int(10 * scale), 2)
    margin = int(12 * scale)
    draw.rectangle((margin, bar_y, width - margin, bar_y + bar_h), outline=_MUTED)
    filled = margin + int((width - 2 * margin) * (index + 1) / total)
    draw.rectangle((margin, bar_y, filled, bar_y + bar_h), fill=(90, 200, 255))
    phase = abs(math.sin(math.pi * index / max(fps, 1)))
    marker_x = margin + int((width - 2 * margin - bar_h) * phase)
    draw.ellipse(
        (marker_x, bar_y - 3 * bar_h, marker_x + bar_h * 2, bar_y - bar_h),
        fill=(255, 200, 80),
    )
    caption = f"frame {index + 1}/{total}  ·  {index / fps:.2f} s"
    draw.text(
        (margin, height - int(22 * scale)), _drawable(caption, small), font=small, fill=_MUTED
    )
    return image


def write_mp4(
    path: Path | str,
    *,
    text: str,
    seconds: float,
    fps: int = 24,
    size: tuple[int, int] = (320, 180),
) -> int:
    """Draw ``seconds * fps`` frames (``text``, a moving bar, the frame number) and encode them
    as H.264 (``libx264``, yuv420p) in an MP4 whose ``moov`` atom comes first (``+faststart``),
    so a browser can start playing it while it downloads. Returns the number of frames.
    """
    width, height = size
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"size must be positive and even for yuv420p, not {size!r}")
    if fps <= 0:
        raise ValueError("fps must be positive")
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    total = max(1, round(seconds * fps))
    lines = _wrap(text, width=max(width // 10, 10), max_lines=3)
    time_base = Fraction(1, fps)
    with (
        _atomic(Path(path)) as tmp,
        av.open(
            str(tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"}
        ) as container,
    ):
        stream = container.add_stream(
            "libx264", rate=fps, options={"preset": "ultrafast", "crf": "26"}
        )
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        for index in range(total):
            image = _video_frame(index, total, fps, size, lines)
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            frame = frame.reformat(format="yuv420p")
            frame.pts = index
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return total


# -- PDF ----------------------------------------------------------------------------------------

_PDF_DPI = 60
_PDF_PAGE = (496, 702)  # A4 at 60 dpi


def _pdf_page(number: int, pages: int, title: str) -> Image.Image:
    width, height = _PDF_PAGE
    image = Image.new("RGB", _PDF_PAGE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 56), fill=(36, 64, 120))
    heading = _font(20)
    body = _font(12)
    for i, line in enumerate(_wrap(title, width=40, max_lines=1)):
        draw.text((24, 16 + 24 * i), _drawable(line, heading), font=heading, fill=(255, 255, 255))
    # Grey "paragraphs", different on each page so the pages are distinguishable.
    y = 84
    block = 0
    while y < height - 80:
        rows = 3 + (number + block) % 4
        for row in range(rows):
            ragged = 60 + ((number * 37 + block * 11 + row * 23) % 90)
            right = width - 24 - (ragged if row == rows - 1 else (row * 7) % 20)
            draw.rectangle((24, y, right, y + 7), fill=(205, 208, 215))
            y += 16
        y += 18
        block += 1
    footer = f"Page {number} of {pages}"
    draw.text((24, height - 36), _drawable(footer, body), font=body, fill=(90, 90, 100))
    return image


class _PageSequence(Image.Image):
    """A multi-frame image whose frames are drawn when Pillow seeks to them.

    The PDF writer walks each appended image's frames (``n_frames``, ``seek``) one at a time, so
    a 500-page PDF never holds more than one page in memory. Setting ``_mode`` and ``_size`` is
    how Pillow's own image plugins describe the current frame.
    """

    def __init__(self, draw_page: Callable[[int], Image.Image], count: int) -> None:
        super().__init__()
        self._draw_page = draw_page
        self._count = count
        self._frame = -1
        self.seek(0)

    @property
    def n_frames(self) -> int:
        return self._count

    @property
    def is_animated(self) -> bool:
        return self._count > 1

    def seek(self, frame: int) -> None:
        if not 0 <= frame < self._count:
            raise EOFError("no more pages")
        if frame != self._frame:
            page = self._draw_page(frame)
            self.im = page.im
            self._mode = page.mode
            self._size = page.size
            self._frame = frame

    def tell(self) -> int:
        return self._frame


def write_pdf(path: Path | str, pages: int, title: str) -> int:
    """Write a real ``pages``-page PDF (A4 page images drawn with Pillow). Returns ``pages``."""
    if pages < 1:
        raise ValueError("pages must be at least 1")
    first = _pdf_page(1, pages, title)
    rest = [_PageSequence(lambda i: _pdf_page(i + 2, pages, title), pages - 1)] if pages > 1 else []
    with _atomic(Path(path)) as tmp:
        first.save(
            tmp,
            format="PDF",
            save_all=True,
            append_images=rest,
            resolution=float(_PDF_DPI),
            title=title,
            producer="jobstream demo",
            quality=60,
        )
    return pages


# -- image and audio ----------------------------------------------------------------------------


def write_png(path: Path | str, *, text: str, size: tuple[int, int] = (320, 180)) -> None:
    """Write a PNG: a colour gradient with ``text`` on it."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for x in range(width):
        r, g, b = colorsys.hsv_to_rgb(0.55 + 0.3 * x / max(width - 1, 1), 0.5, 0.6)
        draw.line((x, 0, x, height), fill=(int(r * 255), int(g * 255), int(b * 255)))
    font = _font(max(height // 10, 8))
    y = height // 3
    for line in _wrap(text, width=max(width // 12, 8), max_lines=2):
        draw.text((width // 16, y), _drawable(line, font), font=font, fill=_INK)
        y += height // 8
    with _atomic(Path(path)) as tmp:
        image.save(tmp, format="PNG", optimize=True)


def write_wav(
    path: Path | str,
    *,
    seconds: float = 1.0,
    frequency: float = 440.0,
    sample_rate: int = 22050,
) -> int:
    """Write a mono 16-bit PCM WAV holding a sine tone (with short fades, so it does not click).
    Returns the number of samples."""
    if seconds <= 0 or sample_rate <= 0:
        raise ValueError("seconds and sample_rate must be positive")
    count = max(1, round(seconds * sample_rate))
    fade = max(1, min(count // 10, sample_rate // 50))
    samples = array.array("h")
    for n in range(count):
        envelope = min(1.0, n / fade, (count - 1 - n) / fade)
        samples.append(
            int(0.5 * 32767 * envelope * math.sin(2 * math.pi * frequency * n / sample_rate))
        )
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    with _atomic(Path(path)) as tmp, wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.tobytes())
    return count
