"""Apply Alembic migrations programmatically (`gateway migrate`, and `serve` at start).

Each plane's tables live on their own Alembic branch rooted at the baseline revision, so
planes can evolve independently; upgrading to `heads` applies all of them. A PostgreSQL
advisory lock (taken in `env.py`) serialises concurrent upgrades from several replicas.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from gateway.core.database import async_database_url

SCRIPT_LOCATION = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our scripts and the given database."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["database_url"] = async_database_url(database_url)
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every pending migration on every branch."""
    command.upgrade(alembic_config(database_url), "heads")
