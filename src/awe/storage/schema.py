"""The complete schema: importing this module registers every table on ``Base.metadata``."""

from __future__ import annotations

from sqlalchemy import MetaData

from awe.storage import (
    auth_models,
    engine_models,
    knowledge_models,
    models,
    ops_models,
    secret_models,
)

metadata: MetaData = models.Base.metadata

__all__ = [
    "auth_models",
    "engine_models",
    "knowledge_models",
    "metadata",
    "models",
    "ops_models",
    "secret_models",
]
