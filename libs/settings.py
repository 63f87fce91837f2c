"""Settings of every service, read from the environment in one place.

Only the wiring (`__main__` modules and the standalone launcher) constructs a
`Settings`; everything else receives the values it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.shards import SHARD_BAR_PAIRS
from domain.sweep import TIMEOUT_SECONDS_MAX, TIMEOUT_SECONDS_MIN

# The key the seeds' examples send; standalone mode accepts it on loopback.
SEED_DEV_API_KEY = "dev-key-000000000000000000000000"
DEV_TENANT = "dev"
# Bind addresses that count as loopback for the standalone dev conveniences.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", "[::1]"})


class Settings(BaseSettings):
    """Environment of a Hindsight process (names are the upper-cased fields)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # standalone: one process tree, SQLite, in-process bus; distributed: Postgres + RabbitMQ.
    hindsight_mode: Literal["standalone", "distributed"] = "standalone"
    hindsight_host: str = "127.0.0.1"
    hindsight_port: int = 8000
    # Host names the gateway answers to (comma-separated; "*": any). Unset: the loopback
    # names and HINDSIGHT_HOST in standalone, any in distributed (the ingress decides).
    hindsight_allowed_hosts: str | None = None
    # Origins whose pages may call the API with credentials (CORS). Unset: seed 001's
    # dashboard origins http://localhost:3000 and http://127.0.0.1:3000 in standalone, none otherwise.
    hindsight_cors_origins: str | None = None
    hindsight_data_dir: Path = Path(".hindsight")
    hindsight_dev_api_key: str = SEED_DEV_API_KEY
    # "tenant:key,tenant2:key2", created at start when absent.
    hindsight_bootstrap_keys: str = ""
    hindsight_require_auth: bool = False
    # Signs session cookies; standalone generates and keeps one in the data dir.
    hindsight_session_secret: str = ""
    # Encrypts the secrets the database keeps (webhook signing secrets): one or more
    # comma-separated strings of 32+ characters, the first encrypts, all decrypt (rotation).
    # Required in the distributed mode; standalone generates and keeps one in the data dir.
    hindsight_secret_key: str = ""
    # 1: the session cookie is sent without `Secure` (plain-HTTP development on a
    # non-loopback address). Browsers keep Secure cookies of http://localhost and
    # http://127.0.0.1, so loopback needs no such setting.
    hindsight_insecure_cookies: bool = False
    hindsight_job_timeout_seconds: int = 3600
    hindsight_job_max_deliveries: int = 3
    # TTL of day-by-day artifacts (hours).
    hindsight_artifact_ttl_hours: float = 12.0
    hindsight_webhook_allow: str = ""
    hindsight_smtp_url: str = ""

    database_url: str = ""
    amqp_url: str = ""

    # Where the services listen / find each other (gRPC).
    results_addr: str = "127.0.0.1:50051"
    engine_addr: str = "127.0.0.1:50052"
    notifier_addr: str = "127.0.0.1:50053"
    results_port: int = 50051
    engine_port: int = 50052
    notifier_port: int = 50053
    # Extra: gRPC deadline the gateway uses for unary calls (seconds).
    hindsight_rpc_timeout: float = Field(default=10.0)
    # Seconds an SSE stream waits out an unreachable results (a restart), per outage. An
    # open stream stays open (keep-alive comments) while the gateway reconnects and resumes
    # after the last event it sent; a new stream request (an EventSource's reconnect) waits
    # before answering. Past it the stream ends, or the request gets a 503. Nothing is sent
    # while a new request waits: a proxy in front needs a longer read timeout. 0: no waiting.
    hindsight_sse_results_wait_seconds: float = Field(default=60.0, ge=0, le=3600)

    # Notifier (issue 5). Retries of a webhook/email: the n-th retry waits
    # base * factor**(n-1) seconds (at most max_delay), times a random factor in
    # [1 - jitter, 1 + jitter]; no retry starts later than window seconds after
    # the delivery was created, and max_attempts (0: no limit) caps the tries.
    hindsight_notify_retry_base_seconds: float = 10.0
    hindsight_notify_retry_factor: float = 2.0
    hindsight_notify_retry_max_delay_seconds: float = 4 * 3600.0
    hindsight_notify_retry_window_seconds: float = 24 * 3600.0
    hindsight_notify_retry_jitter: float = 0.2
    hindsight_notify_max_attempts: int = 0
    # One webhook POST (connect + send + answer), seconds.
    hindsight_webhook_timeout_seconds: float = 10.0
    # Deliveries in flight at once per notifier process.
    hindsight_notify_concurrency: int = 8
    # From: of notification emails.
    hindsight_smtp_from: str = "Hindsight <hindsight@localhost>"
    # Base URL of the API for links in emails; empty: http://HINDSIGHT_HOST:HINDSIGHT_PORT.
    hindsight_public_url: str = ""
    # Prometheus /metrics of the notifier process (distributed mode); 0: not served.
    notifier_metrics_port: int = 9464

    # Day-by-day backtests (issue 3). Artifact store of the distributed mode (shared
    # storage past one machine); standalone uses HINDSIGHT_DATA_DIR/artifacts unless this is set.
    hindsight_artifact_dir: Path = Path(".hindsight/artifacts")
    # The columnar market-data store (option chains as day-partitioned Parquet, issue 15), owned
    # by results: standalone uses HINDSIGHT_DATA_DIR/market unless this is set; Kubernetes puts it
    # on the artifact volume (deploy/k8s/base/results.yaml).
    hindsight_market_dir: Path = Path(".hindsight/market")
    # DEMO-OPTIONS (a synthetic option chain on DEMO-MINUTE) beside the demo datasets: generated
    # once per market store, a few seconds at the first start. Tests that start many stores turn it off.
    hindsight_demo_option_chain: bool = True
    # How often results deletes expired artifacts (seconds; 0: only at start and on request).
    hindsight_artifact_cleanup_interval_seconds: float = 600.0
    # Days per shard of a day-by-day backtest: longer ranges are split into shards that
    # any engine replica may run (days are independent: every day squares off).
    # Standalone has one engine: there a range is one shard unless this is set.
    hindsight_day_shard_days: int = 60
    # Bar-pairs (pairs x bars) of a sweep's ticker above which its grid is split into pair
    # chunks that any engine replica may run (domain.shards.SHARD_BAR_PAIRS, the documented
    # size; tests set it small to shard small sweeps).
    hindsight_shard_bar_pairs: int = Field(default=SHARD_BAR_PAIRS, ge=1)
    # Dataset uploads one results process imports at once; more are refused (429, Retry-After).
    hindsight_max_concurrent_uploads: int = Field(default=2, ge=1)

    # Fair tenants (issue 12). Jobs one engine process runs at once (the sweep kernel
    # releases the GIL: up to one per core helps).
    hindsight_engine_concurrency: int = Field(default=2, ge=1)
    # Sweep kernel threads per job (OpenMP; results are identical for any count). Unset:
    # the CPUs the process may use // HINDSIGHT_ENGINE_CONCURRENCY, at least 1.
    hindsight_engine_threads: int | None = Field(default=None, ge=1)
    # Bars an engine process keeps between jobs (MiB, least recently used out; 48 bytes a
    # bar). A dataset larger than this is read for its job and not kept.
    hindsight_bar_cache_mb: int = Field(default=512, ge=0)
    # Jobs of one tenant that the engines run at once; its other jobs wait in the queue
    # while other tenants' jobs start.
    hindsight_tenant_max_running_jobs: int = Field(default=1, ge=1)
    # Unfinished (queued + running) jobs of one tenant; more are refused (429, Retry-After).
    hindsight_tenant_max_active_jobs: int = Field(default=100, ge=1)
    # Bar-pairs (a sweep's combinations x bars) of one tenant's unfinished jobs; more are
    # refused (429, Retry-After), a single job larger than this with a 400.
    hindsight_tenant_max_queued_bar_pairs: int = Field(default=10**13, ge=1)
    # Largest timeout_seconds a job may ask for (at most domain.sweep.TIMEOUT_SECONDS_MAX); larger ones get a 400.
    hindsight_max_timeout_seconds: int = Field(default=TIMEOUT_SECONDS_MAX, ge=TIMEOUT_SECONDS_MIN, le=TIMEOUT_SECONDS_MAX)
    # Seconds before a job held back by its tenant's running limit is offered to engines again.
    hindsight_tenant_wait_seconds: float = Field(default=1.0, gt=0, le=60)

    # Overfitting statistics (issue 14): the engine computes PSR, DSR and PBO for every
    # sweep. Off only to measure what they cost (make bench); `best` then says they were
    # not computed.
    hindsight_sweep_statistics: bool = True

    @model_validator(mode="after")
    def _addresses_follow_ports(self) -> Settings:
        """RESULTS_ADDR/ENGINE_ADDR/NOTIFIER_ADDR default to 127.0.0.1 at the matching *_PORT,
        so moving a service's port moves where the others look for it."""
        for name in ("results", "engine", "notifier"):
            if f"{name}_addr" not in self.model_fields_set:
                object.__setattr__(self, f"{name}_addr", f"127.0.0.1:{getattr(self, f'{name}_port')}")
        return self

    def day_shard_days(self) -> int:
        """Days per shard of a day-by-day backtest (0: never split)."""
        if self.standalone and "hindsight_day_shard_days" not in self.model_fields_set:
            return 0
        return max(0, int(self.hindsight_day_shard_days))

    def artifact_root(self) -> Path:
        """Where day-by-day artifacts live in this mode."""
        if self.standalone and "hindsight_artifact_dir" not in self.model_fields_set:
            return Path(self.hindsight_data_dir) / "artifacts"
        return Path(self.hindsight_artifact_dir)

    def market_root(self) -> Path:
        """Where the market-data store (Parquet) lives in this mode."""
        if self.standalone and "hindsight_market_dir" not in self.model_fields_set:
            return Path(self.hindsight_data_dir) / "market"
        return Path(self.hindsight_market_dir)

    @property
    def standalone(self) -> bool:
        return self.hindsight_mode == "standalone"

    @property
    def loopback_bind(self) -> bool:
        return self.hindsight_host.strip().lower() in LOOPBACK_HOSTS

    def dev_access(self) -> bool:
        """The standalone dev conveniences hold: the dev key, requests without
        credentials acting as the dev tenant, webhooks to loopback receivers.

        Only in standalone mode, bound to loopback, with HINDSIGHT_REQUIRE_AUTH unset.
        """
        return self.standalone and self.loopback_bind and not self.hindsight_require_auth

    def dev_access_off_reason(self) -> str:
        """Why `dev_access()` is False (empty when it is True)."""
        if not self.standalone:
            return "distributed mode"
        if self.hindsight_require_auth:
            return "HINDSIGHT_REQUIRE_AUTH is set"
        if not self.loopback_bind:
            return f"bound to {self.hindsight_host}, not loopback"
        return ""

    def bootstrap_keys(self) -> list[tuple[str, str]]:
        """Parsed HINDSIGHT_BOOTSTRAP_KEYS as (tenant, key) pairs."""
        pairs = []
        for item in filter(None, (p.strip() for p in self.hindsight_bootstrap_keys.split(","))):
            tenant, sep, key = item.partition(":")
            if not sep or not tenant or not key:
                raise ValueError(f"HINDSIGHT_BOOTSTRAP_KEYS entry {item!r} is not tenant:key")
            pairs.append((tenant, key))
        return pairs

    def require_distributed(self) -> None:
        """Fail at start when the distributed mode lacks its required settings."""
        missing = [n for n, v in (("DATABASE_URL", self.database_url), ("AMQP_URL", self.amqp_url)) if not v]
        if missing:
            raise SystemExit(f"distributed mode needs {', '.join(missing)} in the environment")

    # Telemetry (issue 6). Prometheus /metrics of a process on a port of its own (the gRPC
    # services; the distributed gateway and standalone too); 0: not served. Standalone's
    # gateway /metrics also shows everything.
    hindsight_metrics_port: int = 0
    # Address of that port: loopback unless configured (Kubernetes: 0.0.0.0, for Prometheus).
    hindsight_metrics_host: str = "127.0.0.1"
    # Scrape token (issue 12): when set, every /metrics wants `Authorization: Bearer <token>`.
    # The gateway's /metrics on its public port needs it anyway, except standalone on
    # loopback without HINDSIGHT_REQUIRE_AUTH.
    hindsight_metrics_token: str = ""

    # Internal gRPC (issue 12): every call between services carries this token and every
    # gRPC server refuses calls without it (health checks excepted). Required by the
    # distributed processes; standalone uses a random one of its process.
    hindsight_internal_token: str = ""
    # Address the gRPC servers bind in the distributed mode: loopback unless configured
    # (Kubernetes: 0.0.0.0 of the pod). Standalone always binds loopback.
    hindsight_grpc_host: str = "127.0.0.1"

    # Sessions (issue 12): lifetime of a session cookie from its login (seconds). Sessions
    # live at results; logout and the revocation of their API key end them at once.
    hindsight_session_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    # Failed logins (issue 12), per gateway process: each client address may fail this many
    # key or session checks in a burst, each key prefix (first 8 characters) this many; the
    # allowance comes back evenly over the window. Beyond it: 429 with Retry-After.
    hindsight_auth_failures_per_address: int = Field(default=20, ge=1)
    hindsight_auth_failures_per_key_prefix: int = Field(default=10, ge=1)
    hindsight_auth_failure_window_seconds: float = Field(default=60.0, gt=0)

    def grpc_bind_host(self) -> str:
        """Where the gRPC servers listen: loopback in standalone, HINDSIGHT_GRPC_HOST otherwise."""
        return "127.0.0.1" if self.standalone else self.hindsight_grpc_host

    def secret_values(self) -> list[str]:
        """Values that must never appear in a log line: API keys, the session secret, passwords in URLs."""
        from urllib.parse import urlsplit

        values = [self.hindsight_dev_api_key, self.hindsight_session_secret, self.hindsight_internal_token,
                  self.hindsight_metrics_token]
        values += [k.strip() for k in self.hindsight_secret_key.split(",") if k.strip()]
        values += [key for _, key in self.bootstrap_keys()]
        for url in (self.database_url, self.amqp_url, self.hindsight_smtp_url):
            try:
                password = urlsplit(url).password if url else None
            except ValueError:
                password = None
            if password:
                values.append(password)
        return [v for v in values if v]
