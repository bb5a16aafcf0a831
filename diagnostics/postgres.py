"""PostgreSQL (psycopg 3, async): the runbook's database checks.

* `database_health`: `SELECT 1` round trip, client connections in use (pg_stat_activity,
  client backends only) against `max_connections`, and the server version. Connections
  above 90 % are CRITICAL, above 70 % WARNING, as the runbook says.
* `top_statements`: pg_stat_statements' statements of this database by total time,
  with either column naming (PostgreSQL 13+ `total_exec_time`, older `total_time`).

Every connection has a connect timeout and a statement timeout. A connection failure is
raised as ConnectionError("cannot connect: <reason>") and a timeout as TimeoutError, so the
caller words them like every other backend's; libpq never puts the password in a message.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import errors, sql

from diagnostics.cache import QueryCache, cached
from diagnostics.result import Result, Row, Status

CONNECTIONS_WARNING, CONNECTIONS_CRITICAL = 70.0, 90.0
QUERY_CHARS = 160
NOT_INSTALLED = (
    "pg_stat_statements is not installed in database `{db}`: run CREATE EXTENSION pg_stat_statements; "
    "(the server also needs shared_preload_libraries = 'pg_stat_statements')"
)

_HEALTH = """
SELECT current_setting('server_version'), current_setting('max_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
"""
# The schema pg_stat_statements was installed in and its view's columns; no row: not installed.
_STATEMENT_COLUMNS = """
SELECT n.nspname::text, array_agg(a.attname::text)
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'pg_stat_statements'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE e.extname = 'pg_stat_statements'
GROUP BY n.nspname
"""
_TOP = """
SELECT query, calls, {total}, {mean}, rows FROM {schema}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY {total} DESC LIMIT %s
"""


@asynccontextmanager
async def connect(url: str, timeout: float) -> AsyncIterator[psycopg.AsyncConnection]:
    try:
        conn = await psycopg.AsyncConnection.connect(
            # libpq rounds connect_timeout to whole seconds and treats less than 2 as 2.
            url, connect_timeout=max(2, math.ceil(timeout)), autocommit=True, application_name="ops-chatops-bot"
        )
    except psycopg.OperationalError as e:
        reason = _reason(e)
        if "timeout expired" in reason:
            raise TimeoutError from None
        raise ConnectionError(f"cannot connect: {reason}") from None
    try:
        await conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(timeout * 1000)}ms",))
        yield conn
    except errors.QueryCanceled:
        raise TimeoutError from None
    finally:
        await conn.close()


def _reason(error: Exception) -> str:
    """libpq's reason without its preamble: `connection to server at "h", port 5 failed: X` -> X."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r'^(connection failed: )?(connection to server (at|on) .*? failed: )?', "", first) or first


async def database_health(url: str, *, timeout: float, cache: QueryCache | None = None) -> Result:
    async def measure() -> tuple[float, str, int, int, str]:
        async with connect(url, timeout) as conn:
            start = time.perf_counter()
            await conn.execute("SELECT 1")
            round_trip = (time.perf_counter() - start) * 1000
            cursor = await conn.execute(_HEALTH)
            row = await cursor.fetchone()
            assert row is not None  # one row: the query selects values, FROM no table
            version, max_connections, in_use = row
            where = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
            return round_trip, version, max_connections, in_use, where

    round_trip, version, max_connections, in_use, where = await cached(cache, ("pg.health", url), measure)
    percent = 100.0 * in_use / max_connections if max_connections else 0.0
    if percent > CONNECTIONS_CRITICAL:
        status, level = Status.CRITICAL, f" > {CONNECTIONS_CRITICAL:.0f} %"
    elif percent > CONNECTIONS_WARNING:
        status, level = Status.WARNING, f" > {CONNECTIONS_WARNING:.0f} %"
    else:
        status, level = Status.OK, ""
    return Result(
        status=status,
        title="PostgreSQL",
        summary=f"Answering in {round_trip:.1f} ms · {percent:.0f} % of connections in use{level}",
        fields={
            "server": where,
            "round trip": f"{round_trip:.1f} ms (SELECT 1)",
            "connections": f"{in_use} / {max_connections} ({percent:.0f} %)",
            "version": version,
        },
    )


async def top_statements(url: str, *, timeout: float, limit: int = 5, cache: QueryCache | None = None) -> Result:
    title = "PostgreSQL · top statements"

    async def read() -> tuple[str, list[tuple[str, int, float, float, int]] | str]:
        async with connect(url, timeout) as conn:
            database = conn.info.dbname
            found = await (await conn.execute(_STATEMENT_COLUMNS)).fetchone()
            if found is None:
                return database, NOT_INSTALLED.format(db=database)
            schema, columns = found
            total = next((c for c in ("total_exec_time", "total_time") if c in columns), None)
            mean = next((c for c in ("mean_exec_time", "mean_time") if c in columns), None)
            if total is None or mean is None:
                return database, f"pg_stat_statements has neither total_exec_time nor total_time ({columns})"
            query = sql.SQL(_TOP).format(total=sql.Identifier(total), mean=sql.Identifier(mean),
                                         schema=sql.Identifier(schema))
            try:
                cursor = await conn.execute(query, (limit,))
            except errors.ObjectNotInPrerequisiteState as e:  # installed but not preloaded
                return database, f"{_reason(e)}: set shared_preload_libraries = 'pg_stat_statements' and restart"
            return database, list(await cursor.fetchall())

    database, statements = await cached(cache, ("pg.top", url, limit), read)
    if isinstance(statements, str):
        return Result(status=Status.UNKNOWN, title=title, summary=statements)
    return Result(
        status=Status.OK,
        title=title,
        summary=f"Top {len(statements)} statements in database `{database}` by total time (since the last "
        "statistics reset)" if statements else f"No statements recorded yet in database `{database}`",
        columns=("query", "total", "mean", "calls", "rows"),
        rows=[
            Row((_one_line(text), f"{total:.1f} ms", f"{mean:.2f} ms", str(calls), str(rows)))
            for text, calls, total, mean, rows in statements
        ],
    )


def _one_line(query: str) -> str:
    text = " ".join((query or "").split())
    return text if len(text) <= QUERY_CHARS else text[: QUERY_CHARS - 1] + "…"
