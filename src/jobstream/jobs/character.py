"""``character``: the character creation job of seed 001.

Four steps of 1.25 s each at speed 1 (5 s in all). The result holds a new random
``characterId``, which seed 001's client reads from the completed job. With ``fail_at_step=k``
the job fails halfway through step ``k`` with "Pipeline error: <step name> failed".

Interrupt policy ``requeue``: nothing is saved anywhere until the job completes, so a re-run
just creates the character (with a fresh id) from the start.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobstream.jobs._common import ADVANCED, Pace
from jobstream.worker.context import JobContext, JobFailed

STEP_SECONDS = 1.25
CHARACTER_STEPS: tuple[tuple[str, str], ...] = (
    ("Validating", "Validating character details"),
    ("Generating appearance", "Generating appearance"),
    ("Writing backstory", "Writing backstory"),
    ("Saving", "Saving character"),
)
TOTAL_STEPS = len(CHARACTER_STEPS)


class CharacterParams(BaseModel):
    """Parameters of a ``character`` job: create a character."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(
        default="Character", min_length=1, max_length=100, description="The character's name."
    )
    age: int = Field(default=25, ge=0, le=10000, description="The character's age, in years.")
    fail_at_step: int | None = Field(
        default=None,
        ge=1,
        le=TOTAL_STEPS,
        description=f"For demos and tests: fail the job at this step (1-{TOTAL_STEPS}).",
        json_schema_extra=ADVANCED,
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value


async def run_character(
    ctx: JobContext, params: CharacterParams, *, speed: float = 1.0
) -> dict[str, Any]:
    """The ``character`` handler's body, at ``speed`` times the real pace."""
    pace = Pace(speed)
    for number, (name, message) in enumerate(CHARACTER_STEPS, start=1):
        ctx.progress(step=number, total_steps=TOTAL_STEPS, step_name=name, message=f"{message}...")
        ctx.log(f"{message}: {params.name}", step=number)
        if params.fail_at_step == number:
            await pace.sleep(ctx, STEP_SECONDS / 2)
            raise JobFailed(f"Pipeline error: {name} failed")
        await pace.sleep(ctx, STEP_SECONDS)
    return {"characterId": str(uuid.uuid4()), "name": params.name, "age": params.age}


__all__ = ["CHARACTER_STEPS", "CharacterParams", "run_character"]
