"""Local Pub/Sub + Eventarc: the same CloudEvents, delivered to the same handlers.

``publish`` delivers a Pub/Sub ``messagePublished`` event to the functions subscribed to
the topic (export). After every delivery the bucket folder is scanned, and every new or
rewritten object is delivered as a ``storage.object.v1.finalized`` event to the
functions triggered by the bucket (cluster, dataflow_launch), exactly like Cloud Storage
notifications through Eventarc; the handlers ignore what is not their manifest.
Events the local job launchers ``emit`` (Dataflow's job ``statusChanged`` -> dataflow_launch,
the job-watch tick -> cluster) are delivered the same way, after the bucket. Who gets
which event is :data:`simrec.stages.routes.ROUTES`, as on Google Cloud.
Delivery is synchronous and in order, so ``publish`` returns when the chain is done.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from cloudevents.http import CloudEvent

from simrec.adapters.local_launchers import LOCAL_PREFIX, OUTBOX
from simrec.config import Settings, settings_to_env
from simrec.stages.cloudevents import NIGHTLY, make_pubsub_event, make_storage_event
from simrec.stages.routes import FUNCTIONS as ROUTED
from simrec.stages.routes import subscribers

#: The local topics, named as Terraform names them (``<prefix>-<role>``); the job-watch
#: topic is the one the local Spark launcher ticks.
NIGHTLY_TOPIC = f"{LOCAL_PREFIX}-{NIGHTLY}"

#: function name -> its entry point (same names as the Cloud Functions).
FUNCTIONS = {name: name for name in ROUTED}

@dataclass
class Delivery:
    function: str
    event_type: str
    subject: str
    seconds: float
    result: Any = None


@dataclass
class Deliveries:
    items: list[Delivery] = field(default_factory=list)

    def acted(self) -> list[Delivery]:
        """Deliveries whose handler did something other than ignore the event."""
        return [d for d in self.items if getattr(d.result, "action", "") != "ignored"]


def function_source(name: str) -> Path:
    """``functions/<name>/main.py``: the deployed handler file, in the checkout above the
    (editable) package, or under ``SIMREC_HOME``. (The jobs need no checkout: they are
    modules of the package, :mod:`simrec.jobs`.)"""
    env = os.environ.get("SIMREC_HOME")
    root = Path(env) if env else Path(__file__).resolve().parents[2]
    source = root / "functions" / name / "main.py"
    if not source.is_file():
        raise FileNotFoundError(
            f"no {source}: set SIMREC_HOME to the simrec repository folder"
        )
    return source


def load_function(name: str) -> ModuleType:
    """Import ``functions/<name>/main.py`` as its own module, as the runtime does."""
    source = function_source(name)
    spec = importlib.util.spec_from_file_location(f"simrec_function_{name}", source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def settings_environment(settings: Settings) -> Iterator[None]:
    """Handlers read ``Settings()`` from the environment, as on Cloud Functions."""
    env = settings_to_env(settings)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class LocalCloud:
    """Delivers events to the function handlers with the local adapters behind them."""

    def __init__(
        self,
        settings: Settings,
        project: str = "local",
        on_deliver: Callable[[str, CloudEvent], None] | None = None,
        on_done: Callable[[Delivery], None] | None = None,
    ) -> None:
        if settings.backend != "local":
            raise ValueError("the local dispatcher runs the local backend only")
        self.settings = settings
        self.project = project
        self.bucket_root = Path(settings.data_uri).resolve()
        self.bucket_root.mkdir(parents=True, exist_ok=True)
        self.handlers = {
            name: getattr(load_function(name), entry) for name, entry in FUNCTIONS.items()
        }
        self.on_deliver = on_deliver
        self.on_done = on_done
        self.deliveries = Deliveries()
        self._seen = dict(self._objects())
        self._generation = time.time_ns() // 1000
        OUTBOX.clear()

    # --- the bucket ----------------------------------------------------------------
    def _objects(self) -> Iterator[tuple[str, tuple[int, int]]]:
        for dirpath, dirnames, filenames in os.walk(self.bucket_root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):  # local temp and checksum files
                    continue
                path = Path(dirpath, filename)
                stat = path.stat()
                name = path.relative_to(self.bucket_root).as_posix()
                yield name, (stat.st_size, stat.st_mtime_ns)

    def _new_objects(self) -> list[tuple[str, int]]:
        current = dict(self._objects())
        new = [
            (name, meta) for name, meta in current.items() if self._seen.get(name) != meta
        ]
        self._seen = current
        new.sort(key=lambda item: (item[1][1], item[0]))  # finalize order: oldest first
        return [(name, meta[0]) for name, meta in new]

    # --- delivery ------------------------------------------------------------------
    def _deliver(self, function: str, event: CloudEvent) -> None:
        if self.on_deliver:
            self.on_deliver(function, event)
        started = time.perf_counter()
        with settings_environment(self.settings):
            result = self.handlers[function](event)
        delivery = Delivery(
            function,
            event["type"],
            event.get("subject") or event["source"],
            time.perf_counter() - started,
            result,
        )
        self.deliveries.items.append(delivery)
        if self.on_done:
            self.on_done(delivery)

    def publish(self, topic: str, payload: dict[str, Any]) -> Deliveries:
        """Publish a message and deliver everything that follows from it."""
        event = make_pubsub_event(self.project, topic, payload)
        for function in subscribers(event):
            self._deliver(function, event)
            self.drain()
        return self.deliveries

    def drain(self) -> None:
        """Deliver finalize events for new objects, and the events local jobs emitted,
        until the bucket is quiet and nothing is queued."""
        while True:
            new = self._new_objects()
            if not new and not OUTBOX:
                return
            for name, size in new:
                self._generation += 1
                event = make_storage_event(str(self.bucket_root), name, size, self._generation)
                for function in subscribers(event):
                    self._deliver(function, event)
            if not new:
                event = OUTBOX.pop(0)
                for function in subscribers(event):
                    self._deliver(function, event)
