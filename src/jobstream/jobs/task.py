"""``task``: the transcription-like task of seed 003.

Three named states, each reported as progress with ``state`` (and as step ``i`` of 3):
``downloading`` (0 → 20 %, 4 s at speed 1), ``transcribing`` (20 → 90 %, 23 s, in 1 % ticks so
the server's ETA has a steady rate to work from) and ``finalizing`` (90 → 100 %, 3 s): 30 s in
all. Recognised segments are logged as they come. The result is the transcript. With
``fail_at_step=k`` the task fails halfway through state ``k`` (1 downloading, 2 transcribing,
3 finalizing) with that state's error message (``TASK_ERRORS``).

Interrupt policy ``requeue``: the task reads nothing and writes nothing outside its own job,
so it simply starts over.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobstream.jobs._common import ADVANCED, Pace
from jobstream.worker.context import JobContext, JobFailed

TOTAL_STEPS = 3
DOWNLOAD_SECONDS, DOWNLOAD_TICKS = 4.0, 10
TRANSCRIBE_SECONDS, TRANSCRIBE_TICKS = 23.0, 70
FINALIZE_SECONDS, FINALIZE_TICKS = 3.0, 5
AUDIO_SECONDS = 84.0
"""Length of the pretend recording."""
DOWNLOAD_MB = 12.0
TASK_ERRORS = {
    1: "Download failed: the recording could not be fetched",
    2: "Transcription failed: the audio could not be decoded",
    3: "Finalizing failed: the transcript could not be saved",
}
"""The failure message of each state, for ``fail_at_step``."""

_SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "Welcome to this short demonstration of real-time progress.",
        "Each update you see was pushed by the server the moment it happened.",
        "No polling is involved, so the progress bar moves smoothly.",
        "If the connection drops, the client resumes from the last event it saw.",
        "Nothing is missed and nothing is shown twice.",
        "The estimated time left is computed from the rate of progress.",
        "Thank you for listening.",
    ),
    "es": (
        "Bienvenidos a esta breve demostración de progreso en tiempo real.",
        "Cada actualización llega del servidor en el momento en que ocurre.",
        "No hace falta consultar, así que la barra avanza con suavidad.",
        "Si la conexión se corta, el cliente continúa desde el último evento.",
        "Gracias por escuchar.",
    ),
    "fr": (
        "Bienvenue dans cette courte démonstration de progression en temps réel.",
        "Chaque mise à jour est envoyée par le serveur dès qu'elle se produit.",
        "Aucune interrogation répétée n'est nécessaire.",
        "Si la connexion tombe, le client reprend au dernier événement reçu.",
        "Merci de votre écoute.",
    ),
    "de": (
        "Willkommen zu dieser kurzen Vorführung von Fortschritt in Echtzeit.",
        "Jede Meldung kommt vom Server, sobald sie entsteht.",
        "Es wird nicht abgefragt, deshalb bewegt sich der Balken gleichmäßig.",
        "Bricht die Verbindung ab, macht der Client beim letzten Ereignis weiter.",
        "Danke fürs Zuhören.",
    ),
}


class TaskParams(BaseModel):
    """Parameters of a ``task`` job: transcribe a (pretend) recording."""

    model_config = ConfigDict(extra="forbid", strict=True)

    source_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="The recording to transcribe; a built-in sample when omitted.",
    )
    language: str = Field(
        default="en",
        max_length=35,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description='Language of the recording, as a BCP 47 tag ("en", "pt-BR").',
    )
    fail_at_step: int | None = Field(
        default=None,
        ge=1,
        le=TOTAL_STEPS,
        description=(
            "For demos and tests: fail halfway through this state "
            "(1 downloading, 2 transcribing, 3 finalizing)."
        ),
        json_schema_extra=ADVANCED,
    )


def _sentences(language: str) -> tuple[str, ...]:
    return _SENTENCES.get(language.split("-")[0].lower(), _SENTENCES["en"])


def _timestamp(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def _maybe_fail(params: TaskParams, step: int, tick: int, ticks: int) -> None:
    if params.fail_at_step == step and tick == ticks // 2:
        raise JobFailed(TASK_ERRORS[step])


async def run_task(ctx: JobContext, params: TaskParams, *, speed: float = 1.0) -> dict[str, Any]:
    """The ``task`` handler's body, at ``speed`` times the real pace."""
    pace = Pace(speed)
    source = params.source_url or "sample recording"

    # 1. downloading: 0 -> 20 %
    for tick in range(DOWNLOAD_TICKS):
        done = tick / DOWNLOAD_TICKS
        ctx.progress(
            20.0 * done,
            step=1,
            total_steps=TOTAL_STEPS,
            step_name="Downloading",
            state="downloading",
            message=f"Downloading {source} ({DOWNLOAD_MB * done:.1f} / {DOWNLOAD_MB:.1f} MB)",
        )
        if tick == 0:
            ctx.log(f"Downloading {source}", step=1)
        _maybe_fail(params, 1, tick, DOWNLOAD_TICKS)
        await pace.sleep(ctx, DOWNLOAD_SECONDS / DOWNLOAD_TICKS)

    # 2. transcribing: 20 -> 90 %, one segment recognised every few ticks
    sentences = _sentences(params.language)
    transcript: list[str] = []
    every = TRANSCRIBE_TICKS // len(sentences)
    ctx.log(f"Transcribing {AUDIO_SECONDS:.0f} s of audio ({params.language})", step=2)
    for tick in range(TRANSCRIBE_TICKS):
        done = tick / TRANSCRIBE_TICKS
        heard = AUDIO_SECONDS * done
        ctx.progress(
            20.0 + 70.0 * done,
            step=2,
            total_steps=TOTAL_STEPS,
            step_name="Transcribing",
            state="transcribing",
            message=f"Transcribing: {_timestamp(heard)} / {_timestamp(AUDIO_SECONDS)}",
        )
        _maybe_fail(params, 2, tick, TRANSCRIBE_TICKS)
        await pace.sleep(ctx, TRANSCRIBE_SECONDS / TRANSCRIBE_TICKS)
        if (tick + 1) % every == 0 and len(transcript) < len(sentences):
            sentence = sentences[len(transcript)]
            transcript.append(sentence)
            ctx.log(f"[{_timestamp(heard)}] {sentence}", step=2)
    transcript.extend(sentences[len(transcript) :])

    # 3. finalizing: 90 -> 100 %
    text = " ".join(transcript)
    words = len(text.split())
    for tick in range(FINALIZE_TICKS):
        ctx.progress(
            90.0 + 10.0 * tick / FINALIZE_TICKS,
            step=3,
            total_steps=TOTAL_STEPS,
            step_name="Finalizing",
            state="finalizing",
            message="Punctuating and formatting the transcript",
        )
        if tick == 0:
            ctx.log(f"Finalizing transcript ({words} words)", step=3)
        _maybe_fail(params, 3, tick, FINALIZE_TICKS)
        await pace.sleep(ctx, FINALIZE_SECONDS / FINALIZE_TICKS)

    return {
        "transcript": text,
        "language": params.language,
        "words": words,
        "source_url": params.source_url,
        "audio_seconds": AUDIO_SECONDS,
    }


__all__ = ["TASK_ERRORS", "TaskParams", "run_task"]
