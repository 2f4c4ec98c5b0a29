"""``pdf``: the 12-step document pipeline of seed 004.

Twelve named steps of 1.5 s each at speed 1 (18 s in all); step 5 is "AI Upscaling". Step 11
writes a real PDF of ``pages`` pages (``document.pdf``) and makes it the job's artifact; the
result's ``page_count`` equals ``pages``. With ``fail_at_step=k`` the pipeline stops at step ``k``
with "Pipeline error: <step name> failed" (step 1: "Pipeline error: PDF extraction failed").

Interrupt policy ``requeue``: the pipeline has no side effects outside the job's own folder and
the PDF is written atomically, so it simply starts over.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobstream.jobs._common import ADVANCED, Pace
from jobstream.jobs.media_files import write_pdf
from jobstream.worker.context import JobContext, JobFailed

PDF_FILENAME = "document.pdf"
STEP_SECONDS = 1.5
"""Each step's duration at speed 1."""
ASSEMBLY_STEP = 11
"""The step that writes the PDF."""

PDF_STEPS: tuple[tuple[str, str], ...] = (
    ("PDF extraction", "Extracting pages from the source document"),
    ("Page analysis", "Analysing page structure"),
    ("OCR", "Recognising text"),
    ("Layout detection", "Detecting columns, headings and figures"),
    ("AI Upscaling", "Upscaling page images"),
    ("Image enhancement", "Enhancing contrast and removing noise"),
    ("Text reconstruction", "Rebuilding the text layer"),
    ("Table extraction", "Extracting tables"),
    ("Font embedding", "Embedding fonts"),
    ("Quality check", "Checking the output"),
    ("PDF assembly", "Assembling the output PDF"),
    ("Packaging", "Packaging the result"),
)
"""(step name, message) of each of the 12 steps, in order."""
TOTAL_STEPS = len(PDF_STEPS)


class PdfParams(BaseModel):
    """Parameters of a ``pdf`` job: run the document pipeline and produce a PDF."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pages: int = Field(
        default=12,
        ge=1,
        le=500,
        description="Number of pages of the output PDF (its page_count).",
    )
    fail_at_step: int | None = Field(
        default=None,
        ge=1,
        le=TOTAL_STEPS,
        description='Fail the pipeline at this step (1-12) with "Pipeline error: …".',
        json_schema_extra=ADVANCED,
    )


def pages_bucket(params: PdfParams) -> str:
    """The ETA bucket of a ``pdf`` run: its page count rounded up to a power of two
    (``pages:16`` for 9-16 pages), since the assembly step's work grows with the pages."""
    return f"pages:{1 << max(params.pages - 1, 0).bit_length()}"


async def run_pdf(ctx: JobContext, params: PdfParams, *, speed: float = 1.0) -> dict[str, Any]:
    """The ``pdf`` handler's body, at ``speed`` times the real pace."""
    pace = Pace(speed)
    for number, (name, message) in enumerate(PDF_STEPS, start=1):
        ctx.progress(step=number, total_steps=TOTAL_STEPS, step_name=name, message=message)
        ctx.log(f"Step {number}/{TOTAL_STEPS}: {name}", step=number)
        if params.fail_at_step == number:
            await pace.sleep(ctx, STEP_SECONDS / 2)
            raise JobFailed(f"Pipeline error: {name} failed")
        if number == ASSEMBLY_STEP:
            path = ctx.artifact_path(PDF_FILENAME)
            title = f"jobstream demo document ({params.pages} pages)"
            await pace.work(ctx, STEP_SECONDS, partial(write_pdf, path, params.pages, title))
            ctx.set_artifact(path, "application/pdf")
        else:
            await pace.sleep(ctx, STEP_SECONDS)
    return {
        "page_count": params.pages,
        "pdf_path": PDF_FILENAME,
        "steps": TOTAL_STEPS,
    }


__all__ = ["PDF_STEPS", "TOTAL_STEPS", "PdfParams", "pages_bucket", "run_pdf"]
