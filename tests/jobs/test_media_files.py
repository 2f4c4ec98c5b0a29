"""The demo kinds' output files are real: playable MP4, multi-page PDF, PNG, WAV."""

from __future__ import annotations

import re
import struct
import time
import wave
from pathlib import Path

import av
import pytest
from PIL import Image, PdfParser

from jobstream.jobs.media_files import write_mp4, write_pdf, write_png, write_wav


def top_level_boxes(data: bytes) -> list[str]:
    """The MP4's top-level box types, in file order."""
    boxes = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        assert size >= 8, f"bad box size at {offset}"
        boxes.append(kind.decode("latin-1"))
        offset += size
    assert offset == len(data)
    return boxes


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# -- MP4 -------------------------------------------------------------------------------------


def test_write_mp4_is_playable_h264(tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    frames = write_mp4(path, text="A cat surfing a wave at sunset", seconds=2.0)
    assert frames == 48
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (320, 180)
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 24
        decoded = list(container.decode(video=0))
    assert len(decoded) == 48
    assert (decoded[0].width, decoded[0].height) == (320, 180)
    # the frames differ (the bar moves)
    first = decoded[0].to_image().tobytes()  # type: ignore[no-untyped-call]
    last = decoded[-1].to_image().tobytes()  # type: ignore[no-untyped-call]
    assert first != last
    assert decoded[-1].time == pytest.approx(47 / 24, abs=0.01)
    assert no_temp_files(tmp_path)


def test_write_mp4_is_faststart(tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    write_mp4(path, text="faststart", seconds=1.0)
    boxes = top_level_boxes(path.read_bytes())
    assert boxes[0] == "ftyp"
    assert "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat")


@pytest.mark.parametrize(
    ("seconds", "fps", "size"),
    [(0.5, 24, (320, 180)), (3.0, 12, (160, 90)), (1.0, 30, (640, 360))],
)
def test_write_mp4_frame_count_and_size(
    tmp_path: Path, seconds: float, fps: int, size: tuple[int, int]
) -> None:
    path = tmp_path / "v.mp4"
    frames = write_mp4(path, text="sizes", seconds=seconds, fps=fps, size=size)
    assert frames == round(seconds * fps)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == size
        assert sum(1 for _ in container.decode(video=0)) == frames


def test_write_mp4_any_text(tmp_path: Path) -> None:
    text = "日本語のプロンプト 🎬 " + "very long prompt " * 80
    assert write_mp4(tmp_path / "v.mp4", text=text, seconds=0.5) == 12
    assert write_mp4(tmp_path / "e.mp4", text="", seconds=0.5) == 12


def test_write_mp4_is_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    write_mp4(tmp_path / "v.mp4", text="timing", seconds=2.0)
    # Typically ~0.1 s; the bound is loose so a busy CI machine does not fail it.
    assert time.perf_counter() - started < 3.0


def test_write_mp4_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "v.mp4", text="x", seconds=1, size=(321, 180))
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "v.mp4", text="x", seconds=0)
    with pytest.raises(ValueError):
        write_mp4(tmp_path / "v.mp4", text="x", seconds=1, fps=0)
    assert not (tmp_path / "v.mp4").exists()


def test_write_mp4_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_mp4(path, text="first", seconds=1.0)
    write_mp4(path, text="second", seconds=0.5)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
    assert no_temp_files(tmp_path)


# -- PDF -------------------------------------------------------------------------------------


def pdf_page_count(path: Path) -> int:
    data = path.read_bytes()
    by_regex = len(re.findall(rb"/Type\s*/Page\b", data))
    parser = PdfParser.PdfParser(str(path))
    try:
        by_parser = len(parser.pages)
    finally:
        parser.close()
    assert by_regex == by_parser
    return by_parser


@pytest.mark.parametrize("pages", [1, 2, 12, 40])
def test_write_pdf_page_count(tmp_path: Path, pages: int) -> None:
    path = tmp_path / "document.pdf"
    assert write_pdf(path, pages, "Test document") == pages
    assert path.read_bytes().startswith(b"%PDF")
    assert path.read_bytes().rstrip().endswith(b"%%EOF")
    assert pdf_page_count(path) == pages
    assert no_temp_files(tmp_path)


def test_write_pdf_pages_differ(tmp_path: Path) -> None:
    """Each page is drawn on its own (page number, layout), not one image repeated."""
    path = tmp_path / "document.pdf"
    write_pdf(path, 6, "Distinct pages")
    images = re.findall(rb"stream\r?\n(\xff\xd8.*?\xff\xd9)\r?\nendstream", path.read_bytes(), re.S)
    assert len(images) == 6
    assert len(set(images)) == 6


def test_write_pdf_max_pages(tmp_path: Path) -> None:
    path = tmp_path / "document.pdf"
    write_pdf(path, 500, "Five hundred pages")
    assert pdf_page_count(path) == 500


def test_write_pdf_rejects_zero_pages(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_pdf(tmp_path / "d.pdf", 0, "nothing")


# -- PNG and WAV -----------------------------------------------------------------------------


def test_write_png(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    write_png(path, text="My media 🖼️", size=(200, 100))
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (200, 100)
        image.load()
    assert no_temp_files(tmp_path)


def test_write_wav(tmp_path: Path) -> None:
    path = tmp_path / "audio.wav"
    assert write_wav(path, seconds=1.0, frequency=440.0, sample_rate=22050) == 22050
    assert path.read_bytes()[:4] == b"RIFF"
    with wave.open(str(path), "rb") as audio:
        assert audio.getnchannels() == 1
        assert audio.getsampwidth() == 2
        assert audio.getframerate() == 22050
        assert audio.getnframes() == 22050
        raw = audio.readframes(audio.getnframes())
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    assert max(samples) > 10000
    assert min(samples) < -10000
    # starts and ends silent (fades), so it does not click
    assert abs(samples[0]) < 100 and abs(samples[-1]) < 100
    assert no_temp_files(tmp_path)
