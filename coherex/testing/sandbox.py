"""A local sandbox server for tests and benchmarks (real isolation, on a free port)."""

from __future__ import annotations

from pathlib import Path

from coherex.settings import Settings


def start_local_sandbox(data_dir: Path, pool_size: int = 2):
    """(server, settings): stop with `server.stop()`; `settings` point the SDK at it."""
    from coherex.sandbox.server.run import ServerThread, free_port, local_api_key

    port = free_port()
    settings = Settings(data_dir=data_dir, sandbox_port=port, sandbox_pool_size=pool_size, sandbox_backend="local")
    server = ServerThread(settings, port=port, api_key=local_api_key(settings, create=True)).start()
    return server, settings
