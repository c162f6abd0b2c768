"""The database line: a service's PostgreSQL databases read only, as pg_stat_activity,
pg_locks and the replication views show them."""

from __future__ import annotations

from typing import Any

from dutydesk.runbooks.dbchange._targets import Login, first_line

LONG_QUERY_SECONDS = 30
LAG_SECONDS = 60

_BY_STATE = (
    "SELECT coalesce(state, 'background'), count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() GROUP BY 1 ORDER BY 1"
)
_LONG = (
    "SELECT pid, extract(epoch FROM now() - query_start)::int, left(query, 200) "
    "FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
    "AND pid <> pg_backend_pid() AND now() - query_start > make_interval(secs => %s) "
    "ORDER BY 2 DESC LIMIT 10"
)
_LOCK_WAITS = (
    "SELECT pid, pg_blocking_pids(pid), extract(epoch FROM now() - query_start)::int, "
    "left(query, 200) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' ORDER BY 3 DESC LIMIT 10"
)
_LAG = (
    "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN "
    "extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)
_REPLICAS = (
    "SELECT coalesce(application_name, ''), coalesce(client_addr::text, 'local'), "
    "extract(epoch FROM replay_lag) FROM pg_stat_replication"
)


class DatabaseUnreachable(Exception):
    """The database cannot be reached or refused the login; the message says why."""


def activity(login: Login, *, timeout_seconds: int = 3) -> dict[str, Any]:
    """Connections by state, long-running queries, lock waits and replication lag of one
    PostgreSQL database, read in a read-only transaction."""
    import psycopg

    url = login.url
    try:
        connection = psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            dbname=url.database,
            user=url.username or "",
            password=login.password or None,
            connect_timeout=max(1, timeout_seconds),
            application_name="dutydesk diagnose",
        )
    except psycopg.Error as error:
        where = url.render_as_string(hide_password=True)
        raise DatabaseUnreachable(
            f"cannot connect to {where}: {first_line(error, login)}"
        ) from None
    try:
        connection.read_only = True
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = '5s'")
            cursor.execute(_BY_STATE)
            states = {str(state): int(count) for state, count in cursor.fetchall()}
            cursor.execute(_LONG, [LONG_QUERY_SECONDS])
            long = [
                {"pid": pid, "seconds": seconds, "query": query}
                for pid, seconds, query in cursor.fetchall()
            ]
            cursor.execute(_LOCK_WAITS)
            waits = [
                {"pid": pid, "blocked_by": list(blockers), "seconds": seconds, "query": query}
                for pid, blockers, seconds, query in cursor.fetchall()
            ]
            cursor.execute(_LAG)
            row = cursor.fetchone()
            in_recovery, replay_lag = (bool(row[0]), row[1]) if row else (False, None)
            cursor.execute(_REPLICAS)
            replicas = [
                {"name": name, "client": client, "lag_seconds": None if lag is None else float(lag)}
                for name, client, lag in cursor.fetchall()
            ]
            cursor.execute("SHOW max_connections")
            shown = cursor.fetchone()
            max_connections = int(shown[0]) if shown else 0
        connection.rollback()
    except psycopg.Error as error:
        raise DatabaseUnreachable(f"reading activity failed: {first_line(error, login)}") from None
    finally:
        connection.close()
    return {
        "connections": states,
        "max_connections": max_connections,
        "long_queries": long,
        "lock_waits": waits,
        "standby": in_recovery,
        "replay_lag_seconds": None if replay_lag is None else float(replay_lag),
        "replicas": replicas,
    }
