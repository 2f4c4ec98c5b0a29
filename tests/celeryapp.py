"""An application's own Celery app, as a user has it, with jobstream added to it: the kinds'
task registered on it, and plain tasks reporting as jobstream jobs (``base=JobTask``)."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery
from celery.backends.rpc import RPCBackend

from jobstream.celery import JobTask, register_kinds, worker_runtime


class OrderCheckingBackend(RPCBackend):  # type: ignore[misc]
    """Celery's ``rpc://`` backend, noting in a ``resize`` result the status its job had when
    Celery marked the task done (the test wants ``completed``: the end written first)."""

    def mark_as_done(self, task_id: str, result: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(result, dict) and "resized" in result:
            runtime = worker_runtime(self.app)
            job = runtime.call(runtime.store.get(task_id))
            result = {**result, "job_when_done": job.status.value if job else None}
        return super().mark_as_done(task_id, result, *args, **kwargs)


app = Celery(
    "shop",
    broker=os.environ["JOBSTREAM_CELERY_BROKER_URL"],
    backend="celeryapp:OrderCheckingBackend",
)
app.conf.update(
    task_default_queue=os.environ["JOBSTREAM_CELERY_QUEUE"],
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
register_kinds(app)


class UpstreamDown(ConnectionError):
    pass


@app.task(bind=True, base=JobTask)
def resize(self: JobTask, images: int) -> dict[str, int]:
    for _ in self.job.tqdm(range(images), desc="resizing"):
        time.sleep(0.01)
    self.job.log(f"resized {images} images")
    return {"resized": images}


@app.task(
    bind=True,
    base=JobTask,
    autoretry_for=(UpstreamDown,),
    retry_kwargs={"countdown": 0.2},
    max_retries=3,
)
def flaky(self: JobTask, failures: int) -> str:
    self.job.progress(step=self.request.retries + 1, total_steps=failures + 1, step_name="fetch")
    if self.request.retries < failures:
        raise UpstreamDown(f"attempt {self.request.retries + 1} could not reach upstream")
    return "fetched"


@app.task(bind=True, base=JobTask, max_retries=2)
def retried_by_hand(self: JobTask) -> str:
    self.job.log("working")
    if self.request.retries == 0:
        raise self.retry(countdown=0.2, exc=TimeoutError("slow upstream"))
    return "done"
