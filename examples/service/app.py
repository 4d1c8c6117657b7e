"""The reference service: a small, real Redis-backed HTTP API in the shape such services have.

Async Python: FastAPI on uvicorn, ``redis.asyncio`` with one pool whose retry and backoff come from
the settings below (environment variables). Run it as the pack does (targets/service.py)::

    RS_REDIS_URL=redis://127.0.0.1:6379/0 python -m uvicorn examples.service.app:app --port 8000

Endpoints:

- ``GET /items/{item}``, ``PUT /items/{item}`` (``{"value": "..."}``): read and write a string;
- ``POST /counters/{name}/incr``: count;
- ``GET /health``: ``PING`` through the pool: 200 ``{"status": "healthy"}``, else 503 ``unhealthy``;
- ``POST /chaos/redis-reset`` (``{"force": true}``): closes the pool's connections (in use too when
  forced) under an ``asyncio.Lock``, as services with a chaos endpoint do. With ``RS_RESET_DELAY_S`` it
  then holds the lock that long before it answers, and requests meanwhile get a 503 (``PoolResetting``),
  as a service does that swaps its pool: a slow reset whose own failures come while its call runs;
- ``GET /chaos/status``: the pool's own connection counts (in use, idle, connections opened since the
  start), the last reset, and the server's view (its connections named ``RS_CLIENT_NAME``).

A Redis error is a 503 with the error's class: the service stays up while its Redis is not.

``RS_FLAW`` switches on one of the bugs the pack exists to find (tests/test_service_mode.py uses them;
docs/service.md shows what the report says of each):

- ``no_reconnect``: once a connection to Redis fails (Redis down, restarting), the service gives up on
  it for good: every request is a 503 until the service is restarted;
- ``health_200``: the health endpoint answers 200 even when Redis is down, saying so only in its body
  (``{"status": "unhealthy"}``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError


def setting(name: str, default: str) -> str:
    return os.environ.get(f"RS_{name}", default)


class PoolResetting(RedisError):
    """A request came while ``POST /chaos/redis-reset`` held the pool (``RS_RESET_DELAY_S``)."""


class Pool(aioredis.ConnectionPool):
    """The service's pool: it counts every socket its connections open (redis-py's connect callback),
    so ``opened_since_start`` comes from the pool itself."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.opened = 0

    def make_connection(self) -> Any:
        connection = super().make_connection()
        connection.register_connect_callback(self._opened)  # held weakly: a bound method of the pool
        return connection

    def _opened(self, connection: Any) -> None:
        self.opened += 1


def make_pool() -> Pool:
    url = setting("REDIS_URL", "redis://127.0.0.1:6379/0")
    options = aioredis.connection.parse_url(url)
    backoff = ExponentialWithJitterBackoff(
        base=float(setting("BACKOFF_BASE_S", "0.01")), cap=float(setting("BACKOFF_CAP_S", "1"))
    )
    return Pool(
        **options,
        client_name=setting("CLIENT_NAME", "rs-service"),
        max_connections=int(setting("MAX_CONNECTIONS", "50")),
        socket_timeout=float(setting("SOCKET_TIMEOUT_S", "5")),
        socket_connect_timeout=float(setting("SOCKET_CONNECT_TIMEOUT_S", "5")),
        retry=Retry(backoff, int(setting("RETRIES", "3"))),
    )


class State:
    def __init__(self) -> None:
        self.pool = make_pool()
        self.flaw = setting("FLAW", "")
        self._redis = aioredis.Redis(connection_pool=self.pool)
        self.reset_lock = asyncio.Lock()
        self.resetting = False  # a reset holds the pool (RS_RESET_DELAY_S): requests are refused meanwhile
        self.last_reset: float | None = None  # epoch seconds
        self.resets = 0
        self.gave_up: str | None = None  # the no_reconnect flaw: why the service stopped trying

    @property
    def redis(self) -> aioredis.Redis:
        if self.gave_up is not None:
            raise RedisConnectionError(f"gave up on Redis after: {self.gave_up}")
        if self.resetting:
            raise PoolResetting("the pool is being reset")
        return self._redis


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.s = State()
    yield
    await app.state.s._redis.aclose()
    await app.state.s.pool.disconnect()


app = FastAPI(title="redis-resilience reference service", lifespan=lifespan)


def state(request: Request) -> State:
    s: State = request.app.state.s
    return s


@app.exception_handler(RedisError)
async def redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
    s = state(request)
    if s.flaw == "no_reconnect" and isinstance(exc, RedisConnectionError) and s.gave_up is None:
        s.gave_up = str(exc)[:200]
    return JSONResponse(status_code=503, content={"error": type(exc).__name__, "detail": str(exc)[:200]})


def key(kind: str, name: str) -> str:
    return f"{setting('KEY_PREFIX', 'rs')}:{kind}:{name}"


class Item(BaseModel):
    value: str


@app.get("/items/{item}")
async def get_item(item: str, request: Request) -> JSONResponse:
    value = await state(request).redis.get(key("item", item))
    if value is None:
        return JSONResponse(status_code=404, content={"item": item, "found": False})
    return JSONResponse(content={"item": item, "found": True, "value": value.decode()})


@app.put("/items/{item}")
async def put_item(item: str, body: Item, request: Request) -> dict[str, Any]:
    await state(request).redis.set(key("item", item), body.value)
    return {"item": item, "stored": True}


@app.post("/counters/{name}/incr")
async def incr(name: str, request: Request) -> dict[str, Any]:
    return {"counter": name, "value": await state(request).redis.incr(key("counter", name))}


@app.get("/health")
async def health(request: Request) -> JSONResponse:
    s = state(request)
    try:
        await s.redis.ping()
    except RedisError as exc:
        if s.flaw == "no_reconnect" and isinstance(exc, RedisConnectionError) and s.gave_up is None:
            s.gave_up = str(exc)[:200]
        status = 200 if s.flaw == "health_200" else 503
        return JSONResponse(status_code=status, content={"status": "unhealthy", "error": type(exc).__name__})
    return JSONResponse(content={"status": "healthy"})


class Reset(BaseModel):
    force: bool = False


@app.post("/chaos/redis-reset")
async def redis_reset(body: Reset, request: Request) -> dict[str, Any]:
    s = state(request)
    async with s.reset_lock:
        before = pool_counts(s.pool)
        delay_s = float(setting("RESET_DELAY_S", "0"))
        s.resetting = delay_s > 0
        try:
            await s.pool.disconnect(inuse_connections=body.force)
            await asyncio.sleep(delay_s)
        finally:
            s.resetting = False
        s.last_reset, s.resets = time.time(), s.resets + 1
    return {"reset": True, "force": body.force, "before": before, "at": s.last_reset}


def pool_counts(pool: Pool) -> dict[str, int]:
    """The pool's own counts: connections in use and idle now, and sockets opened since the start."""
    (idle, _), (in_use, _) = pool.get_connection_count()
    return {"in_use": in_use, "idle": idle, "opened_since_start": pool.opened}


@app.get("/chaos/status")
async def chaos_status(request: Request) -> dict[str, Any]:
    s = state(request)
    server: dict[str, Any] = {"clients": None, "error": None}
    try:
        name = setting("CLIENT_NAME", "rs-service")
        server["clients"] = sum(1 for c in await s.redis.client_list() if c.get("name") == name)
    except RedisError as exc:
        server["error"] = type(exc).__name__
    return {
        "pool": pool_counts(s.pool),
        "resets": s.resets,
        "last_reset": s.last_reset,
        "server": server,
        "gave_up": s.gave_up,
    }
