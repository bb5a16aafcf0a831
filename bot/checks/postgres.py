"""PostgreSQL checks (DATABASE_URL): `db` and `db top`."""

from __future__ import annotations

from bot.checks.common import Check, run_checks
from bot.commands.args import choice
from bot.commands.model import Arg, Args, Command, Context
from bot.commands.report import Report


async def db(ctx: Context, args: Args) -> Report:
    from diagnostics.postgres import database_health, top_statements

    url, timeout, cache = ctx.settings.database_url, ctx.settings.diagnostic_timeout, ctx.clients.cache
    if args["view"] == "top":
        title = "PostgreSQL · top statements"
        check = Check(title, "database", lambda: top_statements(url, timeout=timeout, cache=cache))
    else:
        title = "PostgreSQL"
        check = Check(title, "database", lambda: database_health(url, timeout=timeout, cache=cache))
    return Report(title=title, results=await run_checks(ctx, [check]))


COMMANDS = [
    Command(
        "db",
        "PostgreSQL round trip, connections in use of max_connections, version; `top`: pg_stat_statements "
        "top 5 by total time",
        (Arg("view", "`top` for the statements taking the most time", required=False, convert=choice("top"),
             metavar="top", kind="word"),),
        run=db,
        backend="database",
        example="db top",
    ),
]
