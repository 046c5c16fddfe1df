"""The HTTP query API behind ``lcrag serve``.

``create_app`` builds a FastAPI application from collaborators that are already
built (the live index, the reader, the ledger, the configuration), so tests,
benchmarks and the CLI assemble the same application from their own parts and
nothing is read from a global.
"""

from lcrag.app.service.app import create_app

__all__ = ["create_app"]
