"""Service: the engine behind HTTP (``matcher serve``): micro-batched, hot-reloading, observable.

FastAPI, uvicorn and prometheus-client are imported with this subpackage only; ``import matcher`` does not load it.
"""
from .app import create_app
from .engine import Engine
from .settings import ADMIN_TOKEN_VARIABLE, ServiceSettings

__all__ = ["create_app", "Engine", "ServiceSettings", "ADMIN_TOKEN_VARIABLE"]
