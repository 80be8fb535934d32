"""Gateway settings: one object, environment variables with the FACEGATE_ prefix.

Built in create_app (or by the CLI), never at import time.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway import defaults
from gateway.admission import parse_rate_limits
from gateway.gallery_ports import DEFAULT_EF_SEARCH
from gateway.processing import parse_det_sizes
from gateway.triton import spec


class Settings(BaseSettings):
    """Everything the gateway reads from its environment (FACEGATE_<NAME>)."""

    model_config = SettingsConfigDict(env_prefix="FACEGATE_", extra="ignore")

    # Triton
    triton_url: str = Field("localhost:8001", description="Triton gRPC host:port")
    triton_repository_key: SecretStr = Field(
        SecretStr(""), description="key for Triton's restricted model-repository API"
    )
    triton_timeout_s: float = Field(
        defaults.TRITON_TIMEOUT_S, gt=0, description="deadline of every Triton call"
    )
    triton_unavailable_retries: int = Field(
        defaults.TRITON_UNAVAILABLE_RETRIES,
        ge=0,
        description="retries when Triton answers UNAVAILABLE",
    )
    detector_model: str = spec.DETECTOR
    recognizer_model: str = spec.RECOGNIZER
    swapper_model: str = spec.SWAPPER
    genderage_model: str = spec.GENDERAGE
    liveness_model: str = spec.LIVENESS
    landmark_2d_106_model: str = spec.LANDMARK_2D106
    landmark_3d_68_model: str = spec.LANDMARK_3D68

    # Limits on what clients send
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0, description="per image")
    max_image_pixels: int = Field(
        defaults.MAX_IMAGE_PIXELS, gt=0, description="checked before full decode"
    )
    max_batch_images: int = Field(16, gt=0, description="images per /v1/detect/batch request")

    # Detection and verification defaults (InsightFace's classic buffalo_l setting)
    detect_threshold: float = Field(defaults.DETECT_THRESHOLD, ge=0, le=1)
    nms_iou: float = Field(defaults.NMS_IOU, gt=0, le=1)
    det_sizes: str = Field(
        defaults.DET_SIZES,
        description="detector frame sides, one pass each, merged by one NMS (insightface "
        "2.1's FaceAnalysis default '128,640'; '640' = single scale)",
    )
    det_sizes_allowed: str = Field(
        "",
        description="the only detector sizes requests may ask for (422 otherwise), e.g. the "
        "sizes a TensorRT detector was warmed up for; empty: any",
    )
    liveness_threshold: float = Field(
        defaults.LIVENESS_THRESHOLD,
        ge=0,
        le=1,
        description="live when the liveness score is at or above this (insightface 2.1: 0.8)",
    )
    verify_threshold: float = Field(
        defaults.VERIFY_THRESHOLD,
        ge=-1,
        le=1,
        description="cosine similarity at or above which two faces match",
    )

    # Swapper lifecycle
    swapper_idle_ttl_s: float = Field(
        600.0, ge=0, description="unload the swapper after this long unused (0 = never)"
    )
    swapper_load_timeout_s: float = Field(
        defaults.SWAPPER_LOAD_TIMEOUT_S, gt=0, description="per load of the swapper"
    )
    swapper_preload: bool = Field(False, description="load the swapper when the gateway starts")
    swapper_wait_s: float = Field(
        30.0,
        gt=0,
        description="how long a swap waits for a cold load before 503 + Retry-After "
        "(the load goes on); keep it below request_timeout_s",
    )

    # Access control and admission
    api_keys: SecretStr = Field(
        SecretStr(""), description="'user/<name>:<key>,admin:<key>' entries (keys >= 16 characters)"
    )
    api_keys_file: Path | None = Field(None, description="file of 'scope:key' lines (a Secret)")
    auth_disabled: bool = Field(False, description="run without API keys (warned at start)")
    cors_origins: list[str] = Field(default_factory=list, description="CORS origins; off if empty")
    max_in_flight: int = Field(64, gt=0, description="per worker; beyond it 429 + Retry-After")
    max_in_flight_per_key: int = Field(
        4,
        ge=0,
        description="per worker and API key: a key's share of max_in_flight (429 key_overloaded "
        "beyond it; 0 = no share, only the global cap)",
    )
    key_rate_limits: str = Field(
        "",
        description="requests per second per key: 'NAME=RATE[:BURST]', 'scope:SCOPE=RATE' or "
        "'*=RATE', comma separated (429 rate_limited + Retry-After); off if empty",
    )
    body_timeout_s: float = Field(
        15.0,
        gt=0,
        description="the whole request body must arrive within this (408 body_timeout, and "
        "the slot is freed); keep it well under request_timeout_s",
    )
    request_timeout_s: float = Field(60.0, gt=0, description="per-request deadline (504)")
    drain_s: float = Field(5.0, ge=0, description="on SIGTERM: refuse new requests this long first")

    # Compatibility routes for other projects' clients (gateway/api/compat/); off by default.
    # They cannot send an API key, so they answer only callers from compat_networks.
    compat: str = Field(
        "", description="comma list of 'ifr' (InsightFace-REST /extract) and 'immich' (/predict)"
    )
    compat_networks: str = Field(
        "127.0.0.1/32,::1/128", description="comma list of client networks (CIDR) allowed in"
    )
    compat_images_dir: Path | None = Field(
        None, description="folder that InsightFace-REST images.urls paths resolve under"
    )
    compat_url_hosts: str = Field(
        "", description="comma list of hosts images.urls may fetch over http(s); none if empty"
    )
    compat_max_images: int = Field(64, gt=0, description="images per InsightFace-REST /extract")
    compat_max_request_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="body limit of /extract (its images together)"
    )
    compat_immich_models: str = Field(
        "buffalo_l", description="Immich model names the served detector/recognizer stand for"
    )
    compat_immich_prefix: str = Field(
        "", description="also serve Immich's /predict and /ping under this path, e.g. /immich"
    )

    @field_validator("key_rate_limits")
    @classmethod
    def _valid_rate_limits(cls, value: str) -> str:
        parse_rate_limits(value)  # ValueError names the bad entry
        return value

    @field_validator("compat")
    @classmethod
    def _known_protocols(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - {"ifr", "immich"})
        if unknown:
            raise ValueError(f"unknown compatibility protocol(s) {unknown}: use ifr and/or immich")
        return ",".join(names)

    @field_validator("compat_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                ipaddress.ip_network(item.strip(), strict=False)  # ValueError names the bad one
        return value

    # Face gallery (PostgreSQL + pgvector); `facegate serve` fills the URL with its embedded one
    gallery_url: SecretStr = Field(
        SecretStr(""),
        description="libpq URL of a PostgreSQL with pgvector; empty = no gallery (routes answer 503)",
    )
    gallery_pool_size: int = Field(8, gt=0, description="database connections per worker")
    gallery_timeout_s: float = Field(10.0, gt=0, description="wait for a free connection")
    gallery_statement_timeout_s: float = Field(
        10.0,
        gt=0,
        description="bound on one gallery database call (connect, query, commit): 503 after it",
    )
    gallery_migrate: bool = Field(True, description="apply pending schema migrations at start")
    gallery_ef_search: int = Field(
        DEFAULT_EF_SEARCH,
        ge=10,
        le=1000,
        description="HNSW search breadth: higher finds more, slower (200: top-1 equal to an "
        "exact search for 0.990 of queries at 1M faces, p50 6.8 ms; docs/BENCHMARKS.md)",
    )
    recognizer_sha256: str = Field(
        "",
        description="the recognizer's prepared model sha256 if Triton's config does not carry it",
    )

    # Process
    cpu_threads: int = Field(4, gt=0, description="threads for decode/letterbox/warp")
    reduced_decode: bool = Field(
        False,
        description="detector frames of large JPEGs from a 1/2-scale decode (faster; detector "
        "scores move slightly, alignment still uses the full image: see docs/BENCHMARKS.md)",
    )
    models_label: str = Field(
        "", description="shown in /v1/models, e.g. 'synthetic: not a face model'"
    )
    audit_log_file: Path | None = Field(
        None,
        description="the audit trail of gallery changes and searches as JSON lines in this "
        "file (appended) instead of among the other logs",
    )
    audit_table: bool = Field(
        False,
        description="also store the audit trail in the gallery database (table gallery_audit)",
    )
    audit_retention_days: int = Field(
        365, gt=0, description="audit records older than this are deleted from the table"
    )
    log_level: str = "INFO"
    json_logs: bool = Field(True, description="structured JSON log lines")

    @field_validator("det_sizes")
    @classmethod
    def _check_det_sizes(cls, value: str) -> str:
        return ",".join(str(s) for s in parse_det_sizes(value))

    @field_validator("det_sizes_allowed")
    @classmethod
    def _check_det_sizes_allowed(cls, value: str) -> str:
        return ",".join(str(s) for s in parse_det_sizes(value)) if value.strip() else ""

    @model_validator(mode="after")
    def _default_det_sizes_allowed(self) -> Settings:
        if self.det_sizes_allowed_px and not set(self.det_sizes_px) <= set(
            self.det_sizes_allowed_px
        ):
            raise ValueError(
                f"FACEGATE_DET_SIZES ({self.det_sizes}) must be among FACEGATE_DET_SIZES_ALLOWED "
                f"({self.det_sizes_allowed}): every request would be refused otherwise"
            )
        return self

    @property
    def det_sizes_px(self) -> tuple[int, ...]:
        """det_sizes as integers, in order."""
        return parse_det_sizes(self.det_sizes)

    @property
    def det_sizes_allowed_px(self) -> tuple[int, ...]:
        """det_sizes_allowed as integers; () when any size is allowed."""
        return parse_det_sizes(self.det_sizes_allowed) if self.det_sizes_allowed else ()
