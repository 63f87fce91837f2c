"""Initial schema: tenants, keys, jobs and their events, sweep results, datasets, outbox.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

# Integer keys: BIGINT on Postgres, INTEGER (the rowid alias, autoincrementing) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("created_at", Time, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("revoked_at", Time, nullable=True),
        sa.UniqueConstraint("key_sha256"),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])

    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(96), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("sweep_spec", sa.JSON(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=False),
        sa.Column("notify_email", sa.Text(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("deadline_at", Time, nullable=False),
        sa.Column("started_at", Time, nullable=True),
        sa.Column("completed_at", Time, nullable=True),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("percent", sa.Double(), nullable=False),
        sa.Column("progress_message", sa.Text(), nullable=False),
        sa.Column("sweep_run_id", sa.String(32), nullable=True),
        sa.Column("combinations", sa.Integer(), nullable=False),
        sa.Column("estimated_duration_seconds", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=False),
        sa.Column("last_event_seq", sa.Integer(), nullable=False),
    )
    op.create_index("ix_jobs_tenant_created", "jobs", ["tenant_id", "created_at"])
    op.create_index("ix_jobs_state_deadline", "jobs", ["state", "deadline_at"])

    op.create_table(
        "job_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(96), sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),
    )

    op.create_table(
        "sweep_runs",
        sa.Column("sweep_run_id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(96), sa.ForeignKey("jobs.job_id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False),
        sa.Column("ticker", sa.String(64), nullable=False),
        sa.Column("strategy_type", sa.String(16), nullable=False),
        sa.Column("min_trades", sa.Integer(), nullable=False),
        sa.Column("total_combinations", sa.Integer(), nullable=False),
        sa.Column("execution_time_seconds", sa.Double(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.UniqueConstraint("job_id"),
    )
    op.create_index("ix_sweep_runs_tenant_id", "sweep_runs", ["tenant_id"])

    op.create_table(
        "sweep_results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "sweep_run_id", sa.String(32), sa.ForeignKey("sweep_runs.sweep_run_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("ticker", sa.String(64), nullable=False),
        sa.Column("strategy_type", sa.String(16), nullable=False),
        sa.Column("fast_period", sa.Integer(), nullable=False),
        sa.Column("slow_period", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("sharpe_ratio", sa.Double(), nullable=True),
        sa.Column("sortino_ratio", sa.Double(), nullable=True),
        sa.Column("total_return_pct", sa.Double(), nullable=True),
        sa.Column("annualized_return", sa.Double(), nullable=True),
        sa.Column("max_drawdown_pct", sa.Double(), nullable=True),
        sa.Column("win_rate_pct", sa.Double(), nullable=True),
        sa.Column("profit_factor", sa.Double(), nullable=True),
        sa.Column("total_trades", sa.Integer(), nullable=False),
        sa.Column("trades_per_month", sa.Double(), nullable=True),
        sa.Column("avg_trade_duration", sa.String(64), nullable=False),
    )
    op.create_index("ix_sweep_results_run_score", "sweep_results", ["sweep_run_id", "score"])

    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False),
        sa.Column("ticker", sa.String(64), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("calendar", sa.String(16), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.UniqueConstraint("tenant_id", "ticker", "interval", name="uq_datasets_tenant_ticker_interval"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("version_id", sa.String(40), primary_key=True),
        sa.Column(
            "dataset_id", sa.String(32), sa.ForeignKey("datasets.dataset_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("bars", sa.Integer(), nullable=False),
        sa.Column("start_at", Time, nullable=False),
        sa.Column("end_at", Time, nullable=False),
        sa.Column("bars_npz", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_dataset_version"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("sent_at", Time, nullable=True),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "id"])


def downgrade() -> None:
    for index, table in (
        ("ix_outbox_unsent", "outbox"),
        ("ix_sweep_results_run_score", "sweep_results"),
        ("ix_sweep_runs_tenant_id", "sweep_runs"),
        ("ix_jobs_state_deadline", "jobs"),
        ("ix_jobs_tenant_created", "jobs"),
        ("ix_api_keys_tenant_id", "api_keys"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "outbox",
        "dataset_versions",
        "datasets",
        "sweep_results",
        "sweep_runs",
        "job_events",
        "jobs",
        "api_keys",
        "tenants",
    ):
        op.drop_table(table)
