"""Load stage: neighbor lists -> Cloud Datastore, and the serving model snapshot.

Reads one similarity run (``<similarities>/{neighbors,items}/*.parquet`` and its
``_MANIFEST.json``), optionally upserts one ``ItemNeighbors`` entity per item into Cloud
Datastore, and publishes a ``ModelSnapshot`` under ``<models_root>/models/<tenant>/``.

Idempotent by construction: the model version defaults to the manifest's ``run_id``,
every timestamp written (``updated_at``, ``created_at``) is the manifest's ``created_at``,
Datastore writes are upserts keyed by sku, and publishing an already complete version
with the same content rewrites nothing. So a rerun, or a runner retrying a bundle,
yields the same entities, the same version and the same LATEST. LATEST moves by the one
policy of :mod:`simrec.publishing` (only forward in run date unless the run's params say
``publish``), on the local runner and on Dataflow workers alike.

Usage (the local Dataflow launcher runs exactly this as a subprocess; the Flex
Template's main file, ``beam/load_pipeline.py``, calls :func:`main`)::

    python -m simrec.jobs.beam_load --similarities URI --models_root URI [--tenant T]
        [--model_version V] [--datastore_project P] [--datastore_namespace NS]
        [--catalog URI]

``--catalog``: an item catalog Parquet file (sku, category, in_stock, attributes),
validated before the pipeline starts and published as the snapshot's ``catalog.parquet``.

On success it prints one JSON line (version, model folder, counts) to stdout; on bad
input it prints ``load_pipeline: error: ...`` to stderr and exits with status 2.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new.datastoreio import WriteToDatastore
from apache_beam.io.gcp.datastore.v1new.types import Entity, Key
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from simrec import logs, publishing, storage
from simrec.core import layout, model_builder, tenancy
from simrec.core.snapshot import ModelSnapshot, catalog_table
from simrec.storage import snapshots
from simrec.storage.similarities import ITEMS_SCHEMA

# The FnApiRunner runs batch pipelines in-process, offline (no Prism download) and
# faster than the BundleBasedDirectRunner here; it is the default without --runner.
DEFAULT_RUNNER = "FnApiRunner"
ENTITY_KIND = "ItemNeighbors"
UNINDEXED = ("items", "scores")
EMULATOR_ENV = "DATASTORE_EMULATOR_HOST"


class LoadError(ValueError):
    """Bad input: the pipeline is not started (exit status 2)."""


# --- reading --------------------------------------------------------------------------
def _beam_path(uri: str) -> str:
    """Beam's local filesystem takes plain paths, not ``file://`` URIs."""
    return uri[len("file://") :] if uri.startswith("file://") else uri


class _ReadOutputTable(beam.PTransform):
    """One table of a similarity run (:mod:`simrec.core.layout`), each row normalised."""

    table: str
    columns: tuple[str, ...]

    def __init__(self, similarities_uri: str) -> None:
        super().__init__()
        folder = layout.similarity_outputs(similarities_uri)[self.table]
        self._pattern = _beam_path(layout.join(folder, "*.parquet"))

    @staticmethod
    def normalise(record: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "ReadParquet" >> beam.io.ReadFromParquet(self._pattern, columns=list(self.columns))
            | "Normalise" >> beam.Map(self.normalise)
        )


class ReadNeighborLists(_ReadOutputTable):
    """``neighbors/*.parquet`` -> ``{sku, items, scores, users}`` (score desc, sku asc)."""

    table = layout.NEIGHBORS
    columns = layout.NEIGHBORS_COLUMNS
    normalise = staticmethod(model_builder.neighbor_row)


class ReadBoughtTogether(ReadNeighborLists):
    """``bought_together/*.parquet`` (the second neighbor model, same columns) ->
    ``{sku, items, scores, users}``."""

    table = layout.BOUGHT_TOGETHER


class ReadItemStats(_ReadOutputTable):
    """``items/*.parquet`` -> ``{sku, users, weight, recent_weight, prior_weight}``
    (popularity for the fallback, the trending sums)."""

    table = layout.ITEMS
    columns = tuple(ITEMS_SCHEMA.names)
    normalise = staticmethod(model_builder.item_stats)


# --- Datastore ------------------------------------------------------------------------
def neighbor_entity(
    row: Mapping[str, Any],
    project: str,
    namespace: str | None,
    model_version: str,
    updated_at: dt.datetime,
) -> Entity:
    """One ``ItemNeighbors`` entity keyed by sku; list properties are unindexed because
    Datastore caps the index entries of one entity and nothing queries by neighbor."""
    entity = Entity(
        Key([ENTITY_KIND, row["sku"]], project=project, namespace=namespace or None),
        exclude_from_indexes=UNINDEXED,
    )
    entity.set_properties(
        {
            "items": list(row["items"]),
            "scores": [float(s) for s in row["scores"]],
            "model_version": model_version,
            "updated_at": updated_at,
        }
    )
    return entity


class ToNeighborEntities(beam.PTransform):
    """Neighbor rows -> Datastore ``Entity`` (v1new types).

    ``updated_at`` defaults to the construction time; the pipeline passes the
    similarity manifest's ``created_at`` so reruns write identical entities.
    """

    def __init__(
        self,
        project: str,
        namespace: str | None,
        model_version: str,
        updated_at: dt.datetime | None = None,
    ) -> None:
        super().__init__()
        if not project:
            raise LoadError("a Datastore project is required")
        self._project = project
        self._namespace = namespace or None
        self._version = model_version
        self._updated_at = updated_at or dt.datetime.now(dt.UTC)

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return rows | "ToEntity" >> beam.Map(
            neighbor_entity, self._project, self._namespace, self._version, self._updated_at
        )


class WriteNeighborsToDatastore(beam.PTransform):
    """``entities`` | WriteToDatastore into their project (upserts: a rerun overwrites,
    never adds).

    ``throttle_rampup=None`` follows Datastore's ramp-up advice against the real service
    and turns it off against the emulator, where it would only sleep (1 write/s/worker).
    Returns the (empty) write output, usable as a completion barrier.
    """

    def __init__(self, entities: ToNeighborEntities, throttle_rampup: bool | None = None) -> None:
        super().__init__()
        self._entities = entities
        self._project = entities._project
        if throttle_rampup is None:
            throttle_rampup = not os.environ.get(EMULATOR_ENV)
        self._rampup = throttle_rampup

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return (
            rows
            | "ToEntities" >> self._entities
            | "Write" >> WriteToDatastore(self._project, throttle_rampup=self._rampup)
        )


# --- serving model --------------------------------------------------------------------
def read_catalog(uri: str) -> Any:
    """The catalog Parquet file at ``uri`` as a checked pyarrow Table."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as f:
        return catalog_table(pq.read_table(f))


def _build_model(
    rows: list[dict[str, Any]],
    items: list[dict[str, Any]],
    metadata: dict[str, Any],
    catalog_uri: str | None = None,
    together: list[dict[str, Any]] | None = None,
) -> ModelSnapshot:
    if not rows:
        raise ValueError(f"no neighbor rows in {metadata.get('source')}: nothing to load")
    snapshot = model_builder.build_snapshot(rows, items, metadata, together)
    if catalog_uri:
        snapshot.catalog = read_catalog(catalog_uri)
    return snapshot


class BuildServingModel(beam.PTransform):
    """``(neighbor rows, item rows[, bought-together rows])`` -> one ``ModelSnapshot``
    (the bought-together model published with it, in the same version).

    Both inputs are gathered on one worker: the snapshot is a single set of arrays, and
    a global combine is the one place that sees every row.
    """

    def __init__(self, metadata: Mapping[str, Any], catalog_uri: str | None = None) -> None:
        super().__init__()
        if not metadata.get("version"):
            raise LoadError("model metadata needs a version")
        self._metadata = dict(metadata)
        self._catalog = catalog_uri

    def expand(self, inputs: tuple[beam.PCollection, ...]) -> beam.PCollection:
        neighbors, items, *together = inputs
        rows = neighbors | "GatherNeighbors" >> beam.combiners.ToList()
        stats = items | "GatherItems" >> beam.combiners.ToList()
        extra = {}
        if together:
            gathered = together[0] | "GatherBoughtTogether" >> beam.combiners.ToList()
            extra["together"] = beam.pvalue.AsSingleton(gathered)
        return rows | "Build" >> beam.Map(
            _build_model, beam.pvalue.AsSingleton(stats), self._metadata, self._catalog,
            **extra,
        )  # fmt: skip


def publish_snapshot(
    models_root: str, tenant: str, snapshot: ModelSnapshot, publish: bool = False
) -> str:
    """Write the version and move LATEST by the one policy (:mod:`simrec.publishing`):
    idempotent, versions immutable, LATEST only forward in run date unless ``publish``."""
    return publishing.publish_version(models_root, tenant, snapshot, publish=publish).folder


class PublishServingModel(beam.PTransform):
    """Publish the (single) snapshot; outputs the version folder URI.

    ``after``: PCollections that must be complete first (passed as side inputs, which a
    runner materialises before this step runs), e.g. the Datastore write, so LATEST moves
    only when everything else of the load succeeded.
    """

    def __init__(
        self,
        models_root: str,
        tenant: str,
        after: Sequence[beam.PCollection] = (),
        publish: bool = False,
    ) -> None:
        super().__init__()
        self._models_root = models_root
        self._tenant = tenant
        self._after = list(after)
        self._publish = publish

    def expand(self, snapshots: beam.PCollection) -> beam.PCollection:
        barriers = [beam.pvalue.AsList(pc) for pc in self._after]
        return snapshots | "Publish" >> beam.ParDo(
            _PublishFn(self._models_root, self._tenant, self._publish), *barriers
        )


class _PublishFn(beam.DoFn):
    """Runs where the runner puts it (on Dataflow: a worker), with the same policy."""

    def __init__(self, models_root: str, tenant: str, publish: bool = False) -> None:
        self._models_root = models_root
        self._tenant = tenant
        self._publish = publish

    def process(self, snapshot, *barriers):  # untyped: Beam reads hints from annotations
        yield publish_snapshot(self._models_root, self._tenant, snapshot, self._publish)


# --- options and wiring ---------------------------------------------------------------
class LoadOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--similarities", help="similarity run folder (has _MANIFEST.json)")
        parser.add_argument("--models_root", help="root under which models/<tenant>/ lives")
        parser.add_argument("--tenant", help="tenant (default: the manifest's)")
        parser.add_argument("--model_version", help="default: the manifest's run_id")
        parser.add_argument("--datastore_project", help="also upsert ItemNeighbors entities")
        parser.add_argument(
            "--datastore_namespace",
            help="Datastore namespace; '{tenant}' is replaced by the tenant; default: the "
            "tenant's name (simrec.core.tenancy.datastore_namespace)",
        )
        parser.add_argument(
            "--catalog", help="item catalog Parquet file published with the model (optional)"
        )
        parser.add_argument(
            "--datastore_rampup",
            choices=("auto", "on", "off"),
            default="auto",
            help="Datastore ramp-up throttling; auto = off against the emulator",
        )


@dataclass
class LoadPlan:
    """What one load will do, decided before the pipeline starts."""

    similarities: str
    models_root: str
    tenant: str
    version: str
    created_at: dt.datetime
    manifest: dict[str, Any]
    datastore_project: str | None = None
    datastore_namespace: str | None = None
    throttle_rampup: bool | None = None
    catalog: str | None = None
    #: The run has a bought-together table (runs made before it have none).
    bought_together: bool = False

    @property
    def publish(self) -> bool:
        """The operator asked to serve this run even if it is older (``--publish``)."""
        return bool(self.manifest.get("params", {}).get("publish", False))

    def metadata(self) -> dict[str, Any]:
        extra = {"catalog": self.catalog} if self.catalog else {}
        return {
            **extra,
            "version": self.version,
            "tenant": self.tenant,
            "run_id": self.manifest["run_id"],
            "params": self.manifest.get("params", {}),
            "created_at": self.manifest["created_at"],
            "source": self.similarities,
            "counts": {},
        }


@dataclass
class BuiltPipeline:
    plan: LoadPlan
    neighbors: beam.PCollection
    items: beam.PCollection
    model: beam.PCollection
    published: beam.PCollection
    datastore: beam.PCollection | None = None  # the write's (empty) output


def _parse_time(value: Any, where: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise LoadError(f"{where}: created_at is not an ISO timestamp: {value!r}") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _parquet_rows(folder: str) -> int | None:
    """Rows in ``folder/*.parquet`` from the footers alone; None when there is no file."""
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(folder)
    files = sorted(fs.glob(layout.join(path, "*.parquet")))
    if not files:
        return None
    total = 0
    for name in files:
        with fs.open(name, "rb") as f:
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def plan_load(options: PipelineOptions) -> LoadPlan:
    """Validate the options and the input; raises ``LoadError`` with a clear message."""
    opts = options.view_as(LoadOptions)
    if not opts.similarities:
        raise LoadError("--similarities is required (a similarity run folder)")
    if not opts.models_root:
        raise LoadError("--models_root is required")
    similarities = opts.similarities.rstrip("/")
    outputs = layout.similarity_outputs(similarities)
    manifest_uri = outputs["manifest"]
    try:
        manifest = storage.read_json(manifest_uri)
    except FileNotFoundError:
        raise LoadError(
            f"no manifest at {manifest_uri}: the similarity run is missing or incomplete"
        ) from None
    except ValueError as exc:
        raise LoadError(f"unreadable manifest {manifest_uri}: {exc}") from None
    if not isinstance(manifest, dict):
        raise LoadError(f"manifest {manifest_uri} is not a JSON object")
    for key in ("run_id", "tenant", "created_at"):
        if not manifest.get(key):
            raise LoadError(f"manifest {manifest_uri} lacks {key!r}")
    tenant = opts.tenant or manifest["tenant"]
    if tenant != manifest["tenant"]:
        raise LoadError(
            f"--tenant {tenant!r} does not match the manifest's tenant {manifest['tenant']!r}"
        )
    neighbor_rows = _parquet_rows(outputs[layout.NEIGHBORS])
    if neighbor_rows is None:
        raise LoadError(f"no neighbors/*.parquet under {similarities}")
    if neighbor_rows == 0:
        raise LoadError(f"the neighbor lists under {similarities} are empty: nothing to load")
    if _parquet_rows(outputs[layout.ITEMS]) is None:
        raise LoadError(f"no items/*.parquet under {similarities}")
    try:
        tenancy.check_tenant(tenant)
        layout.check_name(opts.model_version or manifest["run_id"], "model version")
    except layout.BadName as exc:
        raise LoadError(str(exc)) from None
    rampup = {"auto": None, "on": True, "off": False}[opts.datastore_rampup]
    if opts.catalog:
        try:
            read_catalog(opts.catalog)
        except FileNotFoundError:
            raise LoadError(f"no catalog file at {opts.catalog}") from None
        except Exception as exc:  # not Parquet, missing columns, duplicate skus, ...
            raise LoadError(f"bad catalog {opts.catalog}: {exc}") from None
    namespace = None
    if opts.datastore_project:  # the one rule serving reads the lists by
        try:
            namespace = tenancy.datastore_namespace(opts.datastore_namespace, tenant)
        except ValueError as exc:
            raise LoadError(str(exc)) from None
    return LoadPlan(
        similarities=similarities,
        models_root=opts.models_root.rstrip("/"),
        tenant=tenant,
        version=opts.model_version or manifest["run_id"],
        created_at=_parse_time(manifest["created_at"], manifest_uri),
        manifest=manifest,
        datastore_project=opts.datastore_project or None,
        datastore_namespace=namespace,
        throttle_rampup=rampup,
        catalog=opts.catalog or None,
        bought_together=_parquet_rows(outputs[layout.BOUGHT_TOGETHER]) is not None,
    )


def build_pipeline(p: beam.Pipeline, options: PipelineOptions) -> BuiltPipeline:
    """Apply the whole load to ``p``; validates the input first (``LoadError``)."""
    plan = plan_load(options)
    neighbors = p | "ReadNeighborLists" >> ReadNeighborLists(plan.similarities)
    items = p | "ReadItemStats" >> ReadItemStats(plan.similarities)
    written = None
    if plan.datastore_project:
        entities = ToNeighborEntities(
            plan.datastore_project, plan.datastore_namespace, plan.version, plan.created_at
        )
        written = neighbors | "WriteNeighborsToDatastore" >> WriteNeighborsToDatastore(
            entities, throttle_rampup=plan.throttle_rampup
        )
    inputs: tuple[beam.PCollection, ...] = (neighbors, items)
    if plan.bought_together:
        inputs += (p | "ReadBoughtTogether" >> ReadBoughtTogether(plan.similarities),)
    model = inputs | "BuildServingModel" >> BuildServingModel(plan.metadata(), plan.catalog)
    published = model | "PublishServingModel" >> PublishServingModel(
        plan.models_root,
        plan.tenant,
        after=[written] if written is not None else [],
        publish=plan.publish,
    )
    return BuiltPipeline(plan, neighbors, items, model, published, written)


def pipeline_options(argv: Sequence[str] | None = None) -> PipelineOptions:
    """Options from argv, with the offline local runner when none is named."""
    options = PipelineOptions(list(argv) if argv is not None else sys.argv[1:])
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = DEFAULT_RUNNER
    return options


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the load; returns a summary. Raises ``LoadError`` on bad input.

    On a local runner it waits and reports the published model; on a remote runner
    (Dataflow) it returns once the job is submitted, so a launcher is not held open.
    """
    options = pipeline_options(argv)
    p = beam.Pipeline(options=options)
    built = build_pipeline(p, options)
    plan = built.plan
    summary: dict[str, Any] = {
        "tenant": plan.tenant,
        "version": plan.version,
        "model": layout.model_version(plan.models_root, plan.tenant, plan.version),
        "datastore": (
            {"project": plan.datastore_project, "namespace": plan.datastore_namespace}
            if plan.datastore_project
            else None
        ),
    }
    result = p.run()
    runner = str(options.view_as(StandardOptions).runner)
    if runner.rsplit(".", 1)[-1] not in StandardOptions.LOCAL_RUNNERS:
        job_id = getattr(result, "job_id", None)
        return {**summary, "status": "submitted", "job_id": job_id() if job_id else None}
    result.wait_until_finish()
    snapshot = snapshots.read_snapshot(plan.models_root, plan.tenant, plan.version)
    return {
        **summary,
        "status": "ok",
        "latest": snapshots.latest_version(plan.models_root, plan.tenant),
        "counts": snapshot.metadata.get("counts", {}),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: 0 on success, 2 on bad input, 1 when the pipeline fails."""
    logs.configure()
    try:
        summary = run(argv)
    except LoadError as exc:
        print(f"load_pipeline: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the runner wraps DoFn errors; keep the message, drop noise
        print(f"load_pipeline: pipeline failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":  # python -m simrec.jobs.beam_load
    sys.exit(main())
