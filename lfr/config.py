"""Configuration: parsed once at the entry point (YAML file + LFR_* environment), then passed down."""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lfr.adapters.embedder import ModelSettings
from lfr.adapters.index_spec import IndexSpec
from lfr.domain.errors import InvalidInput
from lfr.domain.evaluation import EXACT_INDEX, EquityGate, EvidenceRules
from lfr.domain.retention import RetentionPolicy
from lfr.services.backoff import BackoffPolicy
from lfr.services.sign_in_throttle import ThrottlePolicy

if TYPE_CHECKING:
    from lfr.adapters.storage.sql.engine import StoreTimeouts


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(Section):
    url: str = Field(
        default="sqlite:///var/lfr.db",
        description="sqlite:///path (embedded), postgresql+psycopg://... (scale-out), memory://",
    )
    connect_timeout_s: float = Field(default=5, ge=1, le=300, description="PostgreSQL: connecting")
    statement_timeout_s: float = Field(
        default=5,
        gt=0,
        le=600,
        description="PostgreSQL: server statement_timeout; a call with no answer 1 s later is broken off",
    )
    tcp_user_timeout_s: float = Field(
        default=10, gt=0, le=600, description="PostgreSQL: a connection whose data goes unacknowledged"
    )
    keepalive_idle_s: float = Field(default=5, ge=1, le=3600, description="PostgreSQL: TCP keepalive idle")
    sqlite_busy_timeout_s: float = Field(default=10, ge=0, le=600, description="SQLite: write lock wait")

    def timeouts(self) -> StoreTimeouts:
        from lfr.adapters.storage.sql.engine import StoreTimeouts

        return StoreTimeouts(
            connect_s=self.connect_timeout_s,
            statement_s=self.statement_timeout_s,
            tcp_user_timeout_s=self.tcp_user_timeout_s,
            keepalive_idle_s=self.keepalive_idle_s,
            sqlite_busy_s=self.sqlite_busy_timeout_s,
        )


class GrpcSettings(Section):
    listen: str = Field(
        default="127.0.0.1:50051", description="host:port for camera nodes and control clients"
    )
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024)
    subscribe_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="no longer used: subscriptions follow the alert feed, pushed across replicas by "
        "PostgreSQL NOTIFY (kept so existing configs load)",
    )
    grace_seconds: float = Field(default=5.0, ge=0, le=60, description="graceful shutdown period")
    resend_memory_entries: int = Field(
        default=65_536,
        ge=0,
        le=10_000_000,
        description="recent answers kept to recognise re-sent observations",
    )
    resend_memory_seconds: float = Field(
        default=300, gt=0, le=3600, description="how long an answer is kept for a camera's re-send"
    )
    stream_max_in_flight: int = Field(
        default=16, ge=1, le=1024, description="messages of one ingest stream read but not yet answered"
    )
    stream_max_unread_answers: int = Field(
        default=15,
        ge=1,
        le=100_000,
        description="answers a camera may leave unread (ObservationBatch.answers_read) before its stream "
        "is cut off with RESOURCE_EXHAUSTED; below stream_max_in_flight, a silent stream is cut as soon "
        "as it is read, before the matcher has done more than this much of its work",
    )
    max_streams_per_camera: int = Field(
        default=4, ge=1, le=1024, description="ingest streams one camera account may hold open at once"
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate chain of the gRPC port; TLS when set (with the key)"
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of that certificate")
    client_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle: when set, every client must present a certificate it signed "
        "(mutual TLS; the bearer token is still required)",
    )
    reflection: bool = Field(
        default=False, description="serve gRPC reflection (lists every service and message; for grpcurl)"
    )
    access_poll_seconds: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="how often accounts are re-read, so streams of a disabled account end",
    )
    token_failures_per_address: int = Field(
        default=10, ge=1, le=10_000, description="unknown bearer tokens from one address before back-off"
    )
    token_backoff_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="first refusal after that; doubles per further unknown token"
    )
    token_backoff_max_seconds: float = Field(default=300, gt=0, le=86400, description="longest refusal")
    forwarded_allow_ips: str = Field(
        default="",
        description="comma-separated addresses or networks of gRPC load balancers whose x-forwarded-for "
        "metadata names the client for the token-guessing throttle; empty believes no one",
    )

    @model_validator(mode="after")
    def _proxies_parse(self) -> GrpcSettings:
        for part in self.forwarded_allow_ips.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError as exc:
                    raise ValueError(f"forwarded_allow_ips: {exc}") from exc
        return self

    def token_backoff(self) -> BackoffPolicy:
        return BackoffPolicy(
            self.token_failures_per_address,
            timedelta(minutes=5),
            timedelta(seconds=self.token_backoff_seconds),
            timedelta(seconds=self.token_backoff_max_seconds),
        )

    @model_validator(mode="after")
    def _tls_files_together(self) -> GrpcSettings:
        if self.tls_cert_file is not None and self.tls_key_file is None:
            raise ValueError(f"tls_key_file is missing: tls_cert_file {self.tls_cert_file} needs its key")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError(
                f"tls_cert_file is missing: tls_key_file {self.tls_key_file} needs its certificate"
            )
        if self.client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file as well")
        return self


class MetricsSettings(Section):
    enabled: bool = True
    listen: str = Field(
        default="127.0.0.1:9464",
        description="host:port of the Prometheus endpoint, a port of its own, apart from gRPC and the tablet",
    )
    token_file: Path | None = Field(
        default=None,
        description="file holding a bearer token every scrape must send (Prometheus "
        "authorization.credentials_file); unset: no token, so keep `listen` on loopback",
    )
    audit_verify_minutes: float = Field(
        default=60,
        ge=0,
        le=24 * 60,
        description="verify the audit chain this often and export the result (0: never)",
    )

    def token(self) -> str | None:
        if self.token_file is None:
            return None
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read metrics.token_file {self.token_file}: {exc.strerror}") from exc
        if len(token) < 16:
            raise InvalidInput(
                f"metrics.token_file {self.token_file} must hold a token of 16 characters or more"
            )
        return token


class MatchingSettings(Section):
    top_k: int = Field(default=5, ge=1, le=50, description="candidates kept on an alert")
    batch_max: int = Field(default=256, ge=1, le=4096, description="most observations searched at once")
    batch_wait_ms: float = Field(default=1.5, ge=0, le=50, description="how long to gather a batch")
    max_crop_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    gate_refresh_seconds: float = Field(default=1.0, gt=0, le=30)
    gate_max_staleness_seconds: float = Field(
        default=5.0, gt=0, le=300, description="disarm if windows could not be read for this long"
    )
    counter_flush_seconds: float = Field(default=2.0, gt=0, le=60)
    max_clock_skew_seconds: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="a replica whose clock is further than this from the store's (PostgreSQL) disarms",
    )
    replica_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="this matcher's name in the audit trail; default host:pid",
    )
    captured_at_max_age_s: float = Field(
        default=600,
        gt=0,
        le=86400,
        description="refuse (bad_time) observations captured longer ago than this by the matcher's clock",
    )
    captured_at_max_ahead_s: float = Field(
        default=30,
        ge=0,
        le=3600,
        description="refuse (bad_time) observations captured this far in the future",
    )
    index: str = Field(
        default="flat",
        pattern=r"^[A-Za-z0-9_,.=+\-]{1,200}$",
        description="search index: flat (exact), sq8, ivf, hnsw, or a FAISS index factory string; "
        "the equity gate compares it with the evaluated one",
    )
    index_params: dict[str, int] = Field(
        default_factory=dict, description="FAISS search parameters: nprobe (ivf), efSearch (hnsw)"
    )
    search_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="index shards searched in parallel, one thread each; each costs a few percent more CPU "
        "per query, so more than 1 only where a core is free for it (docs/benchmarks.md)",
    )

    track_fusion: bool = Field(default=True, description="also search with each track's fused faces")
    track_support_margin: float = Field(
        default=0.10, ge=0, le=1, description="a fused alert needs one face at threshold minus this"
    )
    track_memory_seconds: float = Field(
        default=10.0, gt=0, le=120, description="a track with no face for this long is forgotten"
    )

    def index_spec(self) -> IndexSpec:
        return IndexSpec(self.index, dict(self.index_params), self.search_threads)


class RetentionSettings(Section):
    alert_days: float = Field(default=31, gt=0, le=3650, description="alerts and crops purged after this")
    watchlist_destroy_hours: float = Field(
        default=24, ge=0, le=24 * 365, description="a finished deployment's watchlist destroyed after this"
    )
    purge_interval_seconds: float = Field(default=300, gt=0, le=86400)

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(timedelta(days=self.alert_days), timedelta(hours=self.watchlist_destroy_hours))


class PolicySettings(Section):
    two_person_rule: bool = Field(default=False, description="a confirmed match needs a second officer")
    separation_of_duties: bool = Field(
        default=True, description="the supervisor who created a window may not authorise it"
    )
    equity_gate: EquityGate = Field(
        default=EquityGate.REFUSE,
        description="authorising without sufficient evaluation evidence: refuse (default), warn or off",
    )
    equity_detectable_ratio: float = Field(
        default=2.0,
        gt=1,
        le=100,
        description="the FPIR ratio between groups an evaluation must be able to detect",
    )
    equity_power: float = Field(default=0.8, ge=0.5, lt=1, description="power to detect that ratio")
    equity_alpha: float = Field(default=0.05, gt=0, le=0.2, description="two-sided significance level")
    equity_min_threshold: float = Field(
        default=0.3, ge=0, le=1, description="no window is authorised below this threshold, whatever the gate"
    )

    @field_validator("equity_gate", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted `off` as false.
        return EquityGate.OFF if value is False else value

    def evidence_rules(self) -> EvidenceRules:
        return EvidenceRules(
            self.equity_detectable_ratio, self.equity_power, self.equity_alpha, self.equity_min_threshold
        )


class TabletSettings(Section):
    """The officers' tablet web app. The session secret is read by the tablet adapter (file or env)."""

    enabled: bool = Field(default=True, description="mount the tablet app in `lfr serve`")
    listen: str = Field(default="127.0.0.1:8443", description="host:port of the tablet web app")
    session_secret_file: Path | None = Field(
        default=None,
        description="file holding the cookie-signing secret; else LFR_TABLET_SESSION_SECRET; "
        "else a random per-process secret (sessions then end on restart)",
    )
    cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto", description="Secure cookie flag: auto = when the request came over HTTPS"
    )
    idle_timeout_minutes: float = Field(default=15, gt=0, le=24 * 60, description="sign out after this")
    session_max_hours: float = Field(default=12, gt=0, le=72, description="sign out after this regardless")
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate chain for HTTPS")
    tls_key_file: Path | None = Field(default=None, description="PEM private key for HTTPS")
    forwarded_allow_ips: str = Field(
        default="",
        description="comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed; empty (the default) believes no one",
    )
    poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="no longer used: live feeds follow the alert feed, pushed across replicas by "
        "PostgreSQL NOTIFY (kept so existing configs load)",
    )
    group_interval_seconds: float = Field(
        default=300,
        ge=0,
        le=24 * 3600,
        description="repeat sightings of one subject in one window whose alerts follow each other within "
        "this many seconds share one card on the tablet (each alert is still decided on its own); "
        "0 shows every alert on its own card",
    )
    openapi: Literal["off", "signed_in", "public"] = Field(
        default="signed_in", description="who may read /api/openapi.json"
    )
    sign_in_max_failures_per_name: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="failed sign-ins for one name from one address before that pair is throttled",
    )
    sign_in_max_failures_per_address: int = Field(
        default=20, ge=1, le=100_000, description="failed sign-ins from one client address before throttling"
    )
    sign_in_window_minutes: float = Field(
        default=5, gt=0, le=24 * 60, description="failures are forgotten this long after a lock ends"
    )
    sign_in_backoff_seconds: float = Field(
        default=30, gt=0, le=3600, description="first refusal of a name from an address; then doubles"
    )
    sign_in_backoff_max_seconds: float = Field(
        default=900, gt=0, le=86400, description="longest refusal of a name from an address"
    )

    def throttle_policy(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            self.sign_in_max_failures_per_name,
            self.sign_in_max_failures_per_address,
            timedelta(minutes=self.sign_in_window_minutes),
            timedelta(seconds=self.sign_in_backoff_seconds),
            timedelta(seconds=self.sign_in_backoff_max_seconds),
        )


class AuditSettings(Section):
    """Signed checkpoints of the audit chain (docs/security/audit-and-data-at-rest.md)."""

    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) this matcher signs checkpoints with; `lfr audit keygen` "
        "makes one. Unset with SQLite: <database folder>/audit/signing-key.pem. Unset with PostgreSQL: "
        "no checkpoints (a warning; verification then cannot stand against a database administrator)",
    )
    create_missing_key: bool = Field(
        default=True,
        description="generate the key on first start (with a warning) if the file does not exist; "
        "false: refuse to start without it (production)",
    )
    trusted_public_keys: list[Path] = Field(
        default_factory=list,
        description="PEM public keys (files or folders of *.pub) whose checkpoints verify: other "
        "replicas' keys and retired keys; this matcher's own key is always trusted",
    )
    anchor_file: Path | None = Field(
        default=None,
        description="append-only file outside the database where every checkpoint is also written. "
        "Unset with SQLite: <database folder>/audit/anchor.jsonl",
    )
    anchor_command: list[str] = Field(
        default_factory=list,
        description="optional external log: command run per checkpoint with its JSON line on stdin",
    )
    checkpoint_seconds: float = Field(
        default=60, gt=0, le=3600, description="how often the chain head is signed while serving"
    )


class EncryptionSettings(Section):
    """Envelope encryption of face images at rest (docs/security/audit-and-data-at-rest.md)."""

    key_file: Path | None = Field(
        default=None,
        description="key-encryption key (32 bytes as hex; `lfr db keygen-images`) that wraps each image's "
        "data key; keep it off the database's storage. Unset with SQLite: <database folder>/keys/"
        "image-kek.hex. Unset with PostgreSQL: images stored in clear (an error is logged)",
    )
    retired_key_files: list[Path] = Field(
        default_factory=list, description="earlier key-encryption keys, still able to open older images"
    )
    create_missing_key: bool = Field(
        default=True, description="create key_file on first start (a warning); false: refuse to start"
    )


class LfrConfig(Section):
    store: StoreSettings = StoreSettings()
    grpc: GrpcSettings = GrpcSettings()
    metrics: MetricsSettings = MetricsSettings()
    matching: MatchingSettings = MatchingSettings()
    retention: RetentionSettings = RetentionSettings()
    policy: PolicySettings = PolicySettings()
    models: ModelSettings = ModelSettings()
    tablet: TabletSettings = TabletSettings()
    audit: AuditSettings = AuditSettings()
    encryption: EncryptionSettings = EncryptionSettings()


def environment_variable(section: str, key: str) -> str:
    return f"LFR_{section}_{key}".upper()


def environment_values() -> dict[tuple[str, str], str]:
    """Every config key set in the environment as LFR_<SECTION>_<KEY> (e.g. LFR_GRPC_LISTEN)."""
    found = {}
    for section, field in LfrConfig.model_fields.items():
        keys = field.annotation.model_fields if isinstance(field.annotation, type) else {}
        for key in keys:
            if value := os.environ.get(environment_variable(section, key)):  # empty: unset
                found[(section, key)] = value
    return found


def _relative_to(folder: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The file's relative paths (path settings, an SQLite store URL) made relative to `folder`."""
    resolved: dict[str, Any] = {}
    for section, values in data.items():
        field = LfrConfig.model_fields.get(section)
        if not isinstance(values, dict) or field is None or not isinstance(field.annotation, type):
            resolved[section] = values
            continue
        fields = field.annotation.model_fields
        resolved[section] = {
            key: _resolved(folder, value, key in fields and _is_path(fields[key].annotation))
            for key, value in values.items()
        }
        if section == "store" and isinstance(url := values.get("url"), str):
            resolved[section]["url"] = _sqlite_relative_to(folder, url)
    return resolved


def _is_path(annotation: Any) -> bool:
    return annotation is Path or Path in get_args(annotation)


def _resolved(folder: Path, value: Any, is_path: bool) -> Any:
    if is_path and isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str(folder / value)
    return value


def _sqlite_relative_to(folder: Path, url: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url  # not SQLite, or already absolute (sqlite:////abs)
    database = url.removeprefix(prefix)
    if not database or database.startswith((":memory:", "~")):
        return url
    return prefix + str(folder / database)


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> LfrConfig:
    """Reads YAML (if given; its relative paths are relative to the file), then LFR_<SECTION>_<KEY>
    environment variables (LFR_STORE_URL, LFR_GRPC_LISTEN, ...), then explicit overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise InvalidInput(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise InvalidInput(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidInput(f"config file {path} must hold a mapping at the top level")
        data = _relative_to(path.resolve().parent, loaded)
    for (section, key), value in environment_values().items():
        if not isinstance(data.get(section), dict):
            data[section] = {}
        data[section][key] = value
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})[key] = value
    try:
        return LfrConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid configuration: {problems}") from exc


def matching_index_type(config: LfrConfig) -> str:
    """The index type windows are matched with, as the equity gate compares it with an evaluation's:
    `matching.index` with the search parameters that apply to it ("flat", "hnsw,efSearch=128", ...), the
    same label an evaluation run with that `protocol.index` records."""
    return config.matching.index_spec().label() or EXACT_INDEX
