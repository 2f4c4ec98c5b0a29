"""Job kinds: a name, a handler, the model its params must fit, and what an interruption does.

An **external** kind (``Registry.add_external``, or ``JOBSTREAM_EXTERNAL_KINDS``) has no handler
here: its jobs are queued like any other, but only a worker outside jobstream runs them, claiming
them over HTTP (``POST /api/v1/workers/claim``, ``worker/external.py``). Its params are any JSON
object; its jobs are re-queued when their worker goes silent.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from jobstream.worker.context import JobContext

Handler = Callable[["JobContext", Any], Awaitable[Any] | Any]
InterruptPolicy = Literal["requeue", "fail"]
H = TypeVar("H", bound=Handler)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnyParams(BaseModel):
    """The params of an external kind: any JSON object, kept as given."""

    model_config = ConfigDict(extra="allow")


def _external_handler(ctx: JobContext, params: Any) -> Any:
    raise RuntimeError("an external kind is run by a worker outside jobstream, never here")


@dataclass(slots=True, frozen=True)
class JobKind:
    name: str
    handler: Handler
    params: type[BaseModel] = NoParams
    on_interrupt: InterruptPolicy = "requeue"
    progress_interval: float = 0.1
    """Throttle at the source: at most one progress event per this many seconds (a step change
    always goes through)."""
    cost: int = 0
    """Credits debited from the owner at submit, refunded if the job fails or is cancelled."""
    description: str = ""
    eta_bucket: Callable[[Any], str] | None = None
    """The parameter bucket a run's step durations are learned under, from its validated
    params (``pdf``: its ``pages``, rounded up to a power of two), for a kind whose duration
    depends on them; ``None``: every run of the kind in one bucket."""

    def bucket(self, params: Any) -> str:
        """``params``' ETA bucket (``""`` for a kind without ``eta_bucket``)."""
        return "" if self.eta_bucket is None else self.eta_bucket(params)

    external: bool = False
    """Run by a worker outside jobstream (over HTTP); the embedded pool never claims it."""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


class UnknownKind(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown job kind {self.name!r}; known kinds: {', '.join(self.known) or 'none'}"


class Registry:
    """The job kinds a server accepts and its workers run."""

    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}

    def add(self, kind: JobKind) -> JobKind:
        if kind.name in self._kinds:
            raise ValueError(f"job kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind
        return kind

    def register(
        self,
        name: str,
        *,
        params: type[BaseModel] = NoParams,
        on_interrupt: InterruptPolicy = "requeue",
        progress_interval: float = 0.1,
        cost: int = 0,
        description: str = "",
        eta_bucket: Callable[[Any], str] | None = None,
    ) -> Callable[[H], H]:
        """Decorator: ``@registry.register("video", params=VideoParams)``."""

        def decorate(handler: H) -> H:
            self.add(
                JobKind(
                    name=name,
                    handler=handler,
                    params=params,
                    on_interrupt=on_interrupt,
                    progress_interval=progress_interval,
                    cost=cost,
                    description=description or (inspect.getdoc(handler) or "").split("\n")[0],
                    eta_bucket=eta_bucket,
                )
            )
            return handler

        return decorate

    def add_external(self, name: str, *, cost: int = 0, description: str = "") -> JobKind:
        """Declare ``name`` a kind that workers outside jobstream run (its params: any JSON
        object; re-queued when its worker goes silent)."""
        return self.add(
            JobKind(
                name=name,
                handler=_external_handler,
                params=AnyParams,
                on_interrupt="requeue",
                cost=cost,
                description=description or "Run by an external worker over HTTP",
                external=True,
            )
        )

    def get(self, name: str) -> JobKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKind(name, sorted(self._kinds)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[JobKind]:
        return iter(self._kinds.values())

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def local_names(self) -> list[str]:
        """The kinds this process's workers run (every kind but the external ones)."""
        return sorted(name for name, kind in self._kinds.items() if not kind.external)

    def external_names(self) -> list[str]:
        return sorted(name for name, kind in self._kinds.items() if kind.external)

    def is_external(self, name: str) -> bool:
        kind = self._kinds.get(name)
        return kind is not None and kind.external
