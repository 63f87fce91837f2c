"""Settings of every service, read from the environment in one place.

Only the wiring (`__main__` modules and the standalone launcher) constructs a
`Settings`; everything else receives the values it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The key the seeds' examples send; standalone mode accepts it on loopback.
SEED_DEV_API_KEY = "dev-key-000000000000000000000000"
DEV_TENANT = "dev"


class Settings(BaseSettings):
    """Environment of a Hindsight process (names are the upper-cased fields)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # standalone: one process tree, SQLite, in-process bus; distributed: Postgres + RabbitMQ.
    hindsight_mode: Literal["standalone", "distributed"] = "standalone"
    hindsight_host: str = "127.0.0.1"
    hindsight_port: int = 8000
    hindsight_data_dir: Path = Path(".hindsight")
    hindsight_dev_api_key: str = SEED_DEV_API_KEY
    # "tenant:key,tenant2:key2", created at start when absent.
    hindsight_bootstrap_keys: str = ""
    hindsight_require_auth: bool = False
    # Signs session cookies; standalone generates and keeps one in the data dir.
    hindsight_session_secret: str = ""
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

    @property
    def standalone(self) -> bool:
        return self.hindsight_mode == "standalone"

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
