"""The PostgreSQL diagnostics (`db`, `db top`) with psycopg 3 against a real PostgreSQL
(postgres_server: pg_stat_statements preloaded and installed in database `app`)."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from diagnostics.postgres import database_health, top_statements
from diagnostics.result import Status

pytestmark = pytest.mark.integration


def dsn_for(server, database: str) -> str:
    return f"postgresql://{server.user}@{server.host}:{server.port}/{database}"


@pytest.fixture
def scratch_db(postgres_server) -> Iterator[str]:
    """A throwaway database (no pg_stat_statements in it): its DSN."""
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    postgres_server.psql(f"CREATE DATABASE {name}", database="postgres")
    yield dsn_for(postgres_server, name)
    postgres_server.psql(f"DROP DATABASE {name} WITH (FORCE)", database="postgres")


@pytest.fixture
async def hold_connections(postgres_server) -> AsyncIterator:
    """`await hold(n)` opens n more client connections, kept open until the test ends."""
    held: list[psycopg.AsyncConnection] = []

    async def hold(n: int) -> None:
        held.extend(await asyncio.gather(*(psycopg.AsyncConnection.connect(postgres_server.dsn) for _ in range(n))))

    yield hold
    await asyncio.gather(*(c.close() for c in held))


def in_use(server) -> int:
    return int(server.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"))


async def test_db_reports_round_trip_connections_and_version(postgres_server):
    result = await database_health(postgres_server.dsn, timeout=5)
    assert result.status is Status.OK, result.summary
    assert result.title == "PostgreSQL"
    assert result.summary.startswith("Answering in ") and "% of connections in use" in result.summary
    assert result.fields["version"] == postgres_server.psql("SHOW server_version")
    assert result.fields["server"] == f"127.0.0.1:{postgres_server.port}/app"
    assert result.fields["round trip"].endswith(" ms (SELECT 1)")


async def test_connections_are_counted_against_max_connections(postgres_server, hold_connections):
    max_connections = int(postgres_server.psql("SHOW max_connections"))
    await hold_connections(5)
    result = await database_health(postgres_server.dsn, timeout=5)
    counted, of = result.fields["connections"].split(" (")[0].split(" / ")
    assert int(of) == max_connections
    assert int(counted) >= 6  # the five held and the diagnostic's own
    assert result.fields["connections"].endswith(f"({100 * int(counted) / max_connections:.0f} %)")


@pytest.mark.parametrize("share, status", [(0.75, Status.WARNING), (0.93, Status.CRITICAL)])
async def test_connections_over_70_percent_warn_and_over_90_percent_are_critical(postgres_server, hold_connections,
                                                                                  share, status):
    max_connections = int(postgres_server.psql("SHOW max_connections"))
    await hold_connections(math.ceil(share * max_connections) - in_use(postgres_server) - 1)
    result = await database_health(postgres_server.dsn, timeout=5)
    assert result.status is status, result.fields["connections"]
    assert f"> {70 if status is Status.WARNING else 90} %" in result.summary


async def test_a_refused_connection_is_a_connection_error_with_the_reason(unused_tcp_port):
    with pytest.raises(ConnectionError, match="^cannot connect: Connection refused$"):
        await database_health(f"postgresql://app:s3cret@127.0.0.1:{unused_tcp_port}/app", timeout=2)


async def test_db_top_lists_the_statements_taking_the_most_time_first(postgres_server):
    postgres_server.psql("SELECT pg_stat_statements_reset()")
    for _ in range(3):
        postgres_server.psql("SELECT pg_sleep(0.05)")
    postgres_server.psql("SELECT count(*) FROM generate_series(1, 10)")
    result = await top_statements(postgres_server.dsn, timeout=5)
    assert result.status is Status.OK
    assert result.summary.startswith("Top ") and "database `app` by total time" in result.summary
    assert len(result.rows) <= 5
    query, total, mean, calls, _rows = result.rows[0].cells
    assert query == "SELECT pg_sleep($1)"
    assert calls == "3" and total.endswith(" ms") and float(total.split()[0]) >= 150
    assert float(mean.split()[0]) >= 50


async def test_db_top_cuts_long_queries_to_one_short_line(postgres_server):
    postgres_server.psql("SELECT pg_stat_statements_reset()")
    columns = ",\n       ".join(f"{i} AS column_number_{i}" for i in range(40))
    postgres_server.psql(f"SELECT pg_sleep(0.2), {columns}")
    result = await top_statements(postgres_server.dsn, timeout=5)
    query = result.rows[0].cells[0]
    assert query.startswith("SELECT pg_sleep($1), $2 AS column_number_0, ")
    assert len(query) == 160 and query.endswith("…") and "\n" not in query


async def test_db_top_without_the_extension_says_how_to_install_it(scratch_db):
    result = await top_statements(scratch_db, timeout=5)
    assert result.status is Status.UNKNOWN
    assert result.summary.startswith("pg_stat_statements is not installed in database `scratch_")
    assert "CREATE EXTENSION pg_stat_statements;" in result.summary
    assert "shared_preload_libraries" in result.summary


async def test_db_top_reads_the_pre_13_column_names_too(postgres_server, scratch_db):
    database = scratch_db.rsplit("/", 1)[1]
    # The view as PostgreSQL 12 and older named it: total_time and mean_time.
    postgres_server.psql("CREATE EXTENSION pg_stat_statements; "
                         "ALTER VIEW pg_stat_statements RENAME COLUMN total_exec_time TO total_time; "
                         "ALTER VIEW pg_stat_statements RENAME COLUMN mean_exec_time TO mean_time", database=database)
    postgres_server.psql("SELECT pg_sleep(0.1)", database=database)
    result = await top_statements(scratch_db, timeout=5)
    assert result.status is Status.OK, result.summary
    assert result.rows[0].cells[0] == "SELECT pg_sleep($1)"
    assert float(result.rows[0].cells[1].split()[0]) >= 100
