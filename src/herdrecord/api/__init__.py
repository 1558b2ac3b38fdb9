"""The HTTP service (FastAPI): `create_app(settings)`, run by `herdrecord serve`."""

from herdrecord.api.app import create_app

__all__ = ["create_app"]
