"""One typed settings object, read from ``SIMREC_*`` environment variables.

Every stage, function and the CLI read their configuration from here, so the cloud
deployment (Terraform sets the environment) and the embedded default share one
definition of every knob and its default.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from simrec import sql as export_sql
from simrec.core.actions import (
    ACTIONS,
    GA4_EVENT_ACTIONS,
    ActionWeights,
    format_event_actions,
    parse_event_actions,
)
from simrec.core.params import (
    BASKET_ACTIONS_DESCRIPTION,
    BASKET_KEY_DESCRIPTION,
    BOUNDS,
    DEFAULTS,
    NAMES,
    USER_WEIGHTING_DESCRIPTION,
    ModelParams,
)

#: The settings that make up ModelParams, in its order: ``weights`` is one setting per action
#: (``weight_<action>``). Terraform's ``model`` variable sets exactly these (deploy_contract).
MODEL_SETTINGS: tuple[str, ...] = tuple(
    setting
    for name in NAMES
    for setting in ([f"weight_{a}" for a in ACTIONS] if name == "weights" else [name])
)


def _model_field(name: str) -> Any:
    """A settings field for a model parameter: its default and bounds from ModelParams."""
    bounds = BOUNDS[name]
    return Field(
        getattr(DEFAULTS, name), ge=bounds.ge, le=bounds.le, gt=bounds.gt,
        description=bounds.description,
    )


def _weight_field(action: str) -> Any:
    """A settings field for one action's weight (ActionWeights: its default, >= 0)."""
    return Field(
        getattr(DEFAULTS.weights, action), ge=0, description=f"Weight of a {action} event."
    )


class Settings(BaseSettings):
    """Configuration of a simrec deployment (cloud or embedded)."""

    model_config = SettingsConfigDict(env_prefix="SIMREC_", extra="ignore", frozen=True)

    # --- where things live -------------------------------------------------------
    backend: Literal["local", "gcp"] = Field(
        "local", description="Adapters to use: 'local' (embedded default) or 'gcp'."
    )
    tenant: str = Field("default", description="Shop whose data and model this is.")
    data_uri: str = Field(
        ".simrec", description="Root of the data bucket (a folder locally, gs://bucket)."
    )
    models_uri: str = Field(
        "", description="Root of the models bucket; empty means the same as data_uri."
    )

    # --- events source (export stage) ---------------------------------------------
    events_source: str = Field(
        "",
        description="Events table: a CSV/Parquet file or folder locally, "
        "`project.dataset.table` on BigQuery (for GA4, `project.dataset` of events_*).",
    )
    events_schema: Literal["plain", "ga4"] = Field(
        "plain", description="Plain events table or the GA4 BigQuery export schema."
    )
    # GA4 rules (README "GA4 exports"); the same for BigQuery and DuckDB (ExportRules).
    ga4_event_actions: str = Field(
        format_event_actions(GA4_EVENT_ACTIONS), description="GA4 event_name=action pairs, "
        "comma-separated; other events are counted per name in the summary, never used."
    )
    ga4_user_key: export_sql.GA4UserKey = Field(
        "user_pseudo_id", description="GA4 shopper key: 'user_pseudo_id' (per device) or "
        "'user_id' (the login id when set, else user_pseudo_id)."
    )
    ga4_time_zone: str = Field(
        "UTC", description="Time zone of the GA4 property: the run's days follow it (plain "
        "sources use UTC)."
    )
    placeholder_ids: str = Field(
        ",".join(export_sql.PLACEHOLDER_IDS), description="Comma-separated user/sku values "
        "meaning 'unknown', rejected as placeholder_id (case-insensitive)."
    )
    duplicate_tolerance_seconds: float = Field(
        export_sql.DUPLICATE_TOLERANCE_S, ge=0, description="GA4: repeats of an event (same "
        "user, event name and item) within this many seconds count once."
    )

    # --- training parameters ------------------------------------------------------
    window_days: int = Field(30, ge=1, le=3650, description="Days of events per run.")
    # Defaults, bounds and meaning of the model's parameters live in simrec.core.params.
    weight_browsed: float = _weight_field("browsed")
    weight_basket: float = _weight_field("basket")
    weight_purchase: float = _weight_field("purchase")
    threshold: float = _model_field("threshold")
    top_k: int = _model_field("top_k")
    seed: int = _model_field("seed")
    max_items_per_user: int = _model_field("max_items_per_user")
    min_items_per_user: int = _model_field("min_items_per_user")
    half_life_days: float = _model_field("half_life_days")
    user_weighting: Literal["none", "log", "power"] = Field(
        DEFAULTS.user_weighting, description=USER_WEIGHTING_DESCRIPTION
    )
    user_alpha: float = _model_field("user_alpha")
    shrinkage: float = _model_field("shrinkage")
    cell_cap_percentile: float = _model_field("cell_cap_percentile")
    asymmetric_alpha: float = _model_field("asymmetric_alpha")
    bm25_b: float = _model_field("bm25_b")
    bm25_k1: float = _model_field("bm25_k1")
    popularity_discount: float = _model_field("popularity_discount")
    popularity_fill: int = _model_field("popularity_fill")
    trending_recent_days: int = _model_field("trending_recent_days")
    trending_min_support: float = _model_field("trending_min_support")
    trending_smoothing: float = _model_field("trending_smoothing")
    tune_holdout_days: int = _model_field("tune_holdout_days")
    basket_key: Literal["order", "session", "day"] = Field(
        DEFAULTS.basket_key, description=BASKET_KEY_DESCRIPTION
    )
    basket_actions: Literal["strict", "relaxed"] = Field(
        DEFAULTS.basket_actions, description=BASKET_ACTIONS_DESCRIPTION
    )
    engine: Literal["spark", "local"] = Field(
        "spark", description="Similarity engine: the Spark job or the single-machine one."
    )
    spark_master: str = Field("local[*]", description="Spark master for the local run.")

    # --- Google Cloud ---------------------------------------------------------------
    gcp_project: str = Field("", description="Google Cloud project id.")
    gcp_region: str = Field("europe-west1", description="Region of Dataproc and Dataflow.")
    datastore_project: str = Field(
        "", description="Project of Cloud Datastore; empty skips the Datastore write."
    )
    datastore_namespace: str = Field(
        "",
        description="Datastore namespace of a tenant's neighbor lists: '' = one named after "
        "the tenant, '{tenant}' is replaced by it (simrec.core.tenancy.datastore_namespace).",
    )
    bigquery_location: str = Field("EU", description="Location of the BigQuery export job.")
    export_timeout_seconds: float = Field(
        480.0, gt=0, description="How long the export function waits for its BigQuery job."
    )
    staging_uri: str = Field(
        "", description="Staging bucket (gs://...) for job files and Dataflow temp files."
    )
    dataproc_workflow_template: str = Field(
        "simrec-dimsum", description="Id of the Dataproc workflow template the cluster fn runs."
    )
    flex_template_uri: str = Field(
        "", description="gs:// path of the Dataflow Flex Template spec of the load pipeline."
    )
    dataflow_service_account: str = Field(
        "", description="Service account email the Dataflow load job runs as."
    )
    dataflow_max_workers: int = Field(2, ge=1, description="Most workers of the load job.")
    dataflow_machine_type: str = Field(
        "n1-standard-2", description="Machine type of the load job's workers."
    )
    dataflow_network: str = Field("", description="VPC network of the load job's workers.")
    dataflow_subnetwork: str = Field(
        "", description="Subnetwork of the load job's workers (regions/R/subnetworks/S or URL)."
    )
    job_max_attempts: int = Field(
        3, ge=1, le=10, description="Attempts of a Dataproc/Dataflow job that ends failed or "
        "cancelled (the first included) before the run is given up and alerted."
    )
    bigquery_endpoint: str = Field(
        "", description="BigQuery API endpoint; empty means Google's. An http:// URL is a "
        "local emulator or test endpoint, used without credentials."
    )
    dataproc_endpoint: str = Field(
        "", description="Dataproc API endpoint; empty means the region's "
        "(<region>-dataproc.googleapis.com). http://host:port: a plaintext local stub."
    )
    dataflow_endpoint: str = Field(
        "", description="Dataflow API endpoint; empty means Google's. http://host:port: a "
        "plaintext local stub."
    )

    # --- serving ------------------------------------------------------------------
    serving_backend: Literal["memory", "datastore"] = Field(
        "memory", description="Score from the in-memory snapshot or from Datastore."
    )
    model_refresh_seconds: float = Field(
        60.0, ge=0, description="How often the endpoint checks models/LATEST (0 = never)."
    )
    max_skus_per_request: int = Field(200, ge=1, description="Most skus in one request.")
    max_n: int = Field(100, ge=1, description="Largest n a request may ask for.")
    serving_tenants: str = Field(
        "",
        description="Other tenants (shops) the endpoint serves besides `tenant`, "
        "comma-separated, chosen per request by `tenant=`; '*' = any tenant with a model.",
    )
    datastore_cache_items: int = Field(
        50_000, ge=0, description="Neighbor lists the Datastore backend keeps in its LRU."
    )
    datastore_cache_seconds: float = Field(
        300.0, ge=0, description="How long the Datastore backend trusts a cached list."
    )
    catalog_uri: str = Field(
        "",
        description="Item catalog (Parquet: sku, category, in_stock, attributes) the load "
        "stage publishes with each model; empty = none.",
    )

    reports_uri: str = Field(
        "", description="Folder of the latest run's summary.json (`simrec run`) and evaluation "
        "report (evaluation/report.html, `simrec evaluate --out <it>/evaluation`) that /ui "
        "shows; empty = only what the model's storage holds.",
    )

    # --- public mode: callable from a shop's pages (simrec.serving.access) ----------
    allowed_origins: str = Field(
        "", description="Comma-separated origins (https://shop.example) whose pages may call "
        "the endpoint (CORS); '*' = any; empty = no CORS headers (server-side callers only).",
    )
    api_keys: str = Field(
        "", description="Where the per-shop API keys are: empty = no key needed; a file path "
        "(JSON {name: sha256 hex of the key}); projects/P/secrets/S = that Secret Manager "
        "secret's latest version (same JSON).",
    )
    api_keys_refresh_seconds: float = Field(
        60.0, gt=0, description="How often the keys are re-read, so a rotation needs no "
        "redeploy.",
    )
    rate_limit_per_minute: float = Field(
        0.0, ge=0, description="Requests a minute each API key may make (token bucket per "
        "key, per server process); 0 = no limit.",
    )
    rate_limit_burst: int = Field(
        60, ge=1, description="Requests an API key may make at once before the rate applies.",
    )

    @field_validator("tenant")
    @classmethod
    def _tenant_is_a_path_segment(cls, value: str) -> str:
        from simrec.core.tenancy import check_tenant

        return check_tenant(value)

    @model_validator(mode="after")
    def _model_is_valid(self) -> Settings:
        try:
            self.model  # noqa: B018 - builds and validates ModelParams once
        except ValueError as exc:
            raise ValueError(f"model parameters: {exc}") from None
        return self

    @field_validator("ga4_event_actions")
    @classmethod
    def _event_actions_parse(cls, value: str) -> str:
        parse_event_actions(value)
        return value

    @field_validator("ga4_time_zone")
    @classmethod
    def _time_zone_exists(cls, value: str) -> str:
        return export_sql.check_time_zone(value)

    @cached_property
    def export_rules(self) -> export_sql.ExportRules:
        return export_sql.ExportRules(
            event_actions=parse_event_actions(self.ga4_event_actions),
            placeholders=tuple(p for p in self.placeholder_ids.split(",") if p.strip()),
            duplicate_tolerance_s=self.duplicate_tolerance_seconds,
            user_key=self.ga4_user_key,
            time_zone=self.ga4_time_zone,
        )

    @cached_property
    def weights(self) -> ActionWeights:
        return ActionWeights(
            browsed=self.weight_browsed, basket=self.weight_basket, purchase=self.weight_purchase
        )

    @cached_property
    def model(self) -> ModelParams:
        """The model's parameters as this deployment sets them."""
        fields = {name: getattr(self, name) for name in MODEL_SETTINGS if name in NAMES}
        return ModelParams(weights=self.weights, **fields)

    @property
    def models_root(self) -> str:
        return self.models_uri or self.data_uri


def model_settings(params: dict[str, Any]) -> dict[str, Any]:
    """Settings fields for values shaped like ModelParams' JSON (``weights`` by action),
    e.g. the CLI's model flags (simrec.core.params.overrides_from_args)."""
    fields = {name: value for name, value in params.items() if name != "weights"}
    for action, weight in params.get("weights", {}).items():
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} in weights; expected one of "
                             f"{', '.join(ACTIONS)}")  # fmt: skip
        fields[f"weight_{action}"] = weight
    return fields


def settings_env_names() -> list[str]:
    """Every environment variable the settings object reads (Terraform sets these)."""
    prefix = Settings.model_config["env_prefix"]
    return sorted(f"{prefix}{name}".upper() for name in Settings.model_fields)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``Settings()`` equal ``settings`` in another process."""
    prefix = Settings.model_config["env_prefix"]
    return {
        f"{prefix}{name}".upper(): str(getattr(settings, name))
        for name in Settings.model_fields
    }
