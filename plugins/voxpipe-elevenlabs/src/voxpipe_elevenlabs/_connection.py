"""What connections share: one TLS context per process (for HTTPS and WSS alike) and, for
the HTTP backend, one connection pool per event loop, so the sessions of a process reuse
warm connections instead of each paying its own TLS handshake."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
import ssl
from dataclasses import dataclass

import httpx2

#: httpx2's transport loads anyio's asyncio backend on its first request: some 30 ms of
#: imports that would block the loop during the first phrase of the first session. Loaded
#: with this module instead (when the config names the backend), before any session starts.
with contextlib.suppress(ImportError):
    importlib.import_module("anyio._backends._asyncio")


def tls_context() -> ssl.SSLContext:
    """The TLS context every connection of the process uses: made once (loading the CA
    certificates takes tens of ms, blocking whatever loop is running), again only if
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` change. Contexts are safe to share across threads."""
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx2.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR itself


@dataclass(eq=False)
class _Pool:
    """The connection pool of one event loop and how many backends hold it."""

    loop: asyncio.AbstractEventLoop
    http: httpx2.AsyncClient
    users: int = 0


#: The shared pool of each running event loop (by id; the pool keeps its loop alive, so an
#: id is not reused while its pool is here). A pool leaves with its last backend.
_pools: dict[int, _Pool] = {}


def _new_http() -> httpx2.AsyncClient:
    """A pool with the shared TLS context. Timeouts and the key come with each request, so
    one pool serves backends of any options; bodies are asked for uncompressed (PCM gains
    nothing from compression)."""
    return httpx2.AsyncClient(verify=tls_context(), headers={"accept-encoding": "identity"})


class SharedPool:
    """A backend's share of its loop's connection pool (``http``). ``aclose()`` lets go of
    it; the last backend of the loop to do so closes the pool, so closing one backend never
    breaks another's requests. Made outside a running loop, it gets a pool of its own
    (connections belong to the loop that opens them)."""

    def __init__(self) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        pool = _pools.get(id(loop)) if loop is not None else None
        if loop is not None and (pool is None or pool.loop is not loop or pool.http.is_closed):
            pool = _pools[id(loop)] = _Pool(loop, _new_http())
        self._pool = pool
        self.http = pool.http if pool is not None else _new_http()
        if pool is not None:
            pool.users += 1
        self._closed = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        pool = self._pool
        if pool is None:
            await self.http.aclose()
            return
        pool.users -= 1
        if pool.users > 0:
            return
        if _pools.get(id(pool.loop)) is pool:
            del _pools[id(pool.loop)]
        await pool.http.aclose()
