#!/usr/bin/env python3
"""psycopg 3 against the Amoeba server.

Connection from the libpq environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
Prints `RESULT <name>=<value>` for checks of ../checks.sql and asserts driver behaviour itself:
server-side prepared statements (prepare=True, run several times) with int, numeric, text, date,
timestamp and bool parameters; binary-format parameters and results; a named (server-side)
cursor read with fetchmany inside a transaction; SHOW / SET; BEGIN / COMMIT / ROLLBACK; version()
and current_schema(). Every step runs even if an earlier one fails; the script exits 1 listing
every failed step.
"""
import datetime as dt
import faulthandler
import os
import sys
import traceback
from decimal import Decimal

import psycopg

from harness import FAILURES, check, result, step  # noqa: E402 (next to this script)
PREPARE_RUNS = 4  # psycopg prepares server-side at once with prepare=True; run each one several times


def connect(**kw):
    # Empty conninfo: libpq reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
    return psycopg.connect("", application_name="amoeba-psycopg-check", **kw)


def one_value(cur, sql, params, prepare=True):
    cur.execute(sql, params, prepare=prepare)
    rows = cur.fetchall()
    check(len(rows) == 1 and len(rows[0]) == 1, f"expected one row, one column from {sql!r}, got {rows!r}")
    return rows[0][0]


def prepared(conn, name, sql, params, expect_type):
    """Runs `sql` PREPARE_RUNS times as a server-side prepared statement; all runs must agree."""
    values = []
    with conn.cursor() as cur:
        for _ in range(PREPARE_RUNS):
            values.append(one_value(cur, sql, params, prepare=True))
    check(all(v == values[0] for v in values), f"{name}: prepared statement runs disagree: {values!r}")
    check(isinstance(values[0], expect_type), f"{name}: expected {expect_type.__name__}, got {type(values[0]).__name__} {values[0]!r}")
    result(name, values[0])
    return values[0]


def main():
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        if not os.environ.get(var):
            print(f"psycopg_client: {var} is not set", file=sys.stderr)
            return 2
    print(f"psycopg {psycopg.__version__}", file=sys.stderr)

    conn = connect(autocommit=True)
    print(f"server_version parameter: {conn.info.parameter_status('server_version')!r}", file=sys.stderr)

    @step("select version() / current_schema()")
    def _():
        with conn.cursor() as cur:
            cur.execute("select version()")
            version = cur.fetchone()[0]
            check(isinstance(version, str) and version.strip(), f"version() is empty: {version!r}")
            cur.execute("select current_schema()")
            schema = cur.fetchone()[0]
            check(schema == "public", f"current_schema() = {schema!r}, expected 'public'")

    @step("SHOW")
    def _():
        empty = []
        with conn.cursor() as cur:
            for setting in ("search_path", "transaction isolation level", "server_version", "DateStyle",
                            "standard_conforming_strings", "TimeZone", "client_encoding", "integer_datetimes"):
                cur.execute(f"show {setting}")
                rows = cur.fetchall()
                check(len(rows) == 1 and len(rows[0]) == 1, f"SHOW {setting}: expected one value, got {rows!r}")
                value = rows[0][0]
                if not (isinstance(value, str) and value.strip()):
                    empty.append(f"SHOW {setting} -> {value!r} (column {cur.description[0].name!r})")
        check(not empty, "empty values: " + "; ".join(empty))

    @step("SET then SHOW")
    def _():
        with conn.cursor() as cur:
            cur.execute("set application_name = 'amoeba-psycopg-set'")
            cur.execute("show application_name")
            value = cur.fetchone()[0]
            check(value == "amoeba-psycopg-set", f"SHOW application_name after SET = {value!r}")
            cur.execute("set search_path to public")
            cur.execute("set statement_timeout = 0")
            cur.execute("set datestyle to 'ISO, MDY'")
            cur.execute("select current_schema()")
            check(cur.fetchone()[0] == "public", "current_schema() after SET search_path")

    @step("BEGIN / COMMIT / ROLLBACK as statements")
    def _():
        with conn.cursor() as cur:
            for end in ("commit", "rollback"):
                cur.execute("begin")
                cur.execute("select count(*) from amoeba_units")
                check(cur.fetchone()[0] > 0, "no units inside a transaction")
                cur.execute(end)
            cur.execute("start transaction")
            cur.execute("select 1")
            cur.execute("commit")

    @step("driver-managed transactions (autocommit off, commit/rollback, conn.transaction())")
    def _():
        with connect() as tconn:  # autocommit off: psycopg sends BEGIN before the first query
            with tconn.cursor() as cur:
                cur.execute("select count(*) from amoeba_units")
                check(cur.fetchone()[0] > 0, "no units")
            tconn.commit()
            with tconn.cursor() as cur:
                cur.execute("select 1")
            tconn.rollback()
            with tconn.transaction():
                with tconn.cursor() as cur:
                    cur.execute("select 1")
                    check(cur.fetchone()[0] == 1, "select 1")

    # Prepared statements: one parameter type each, in the WHERE clause of a real query.
    @step("prepared text parameter")
    def _():
        prepared(conn, "net_sales_2025_11", "select sum(net_sales) from pnl where month = %s", ("2025-11",), Decimal)
        prepared(conn, "net_sales_2025_12", "select sum(net_sales) from pnl where month = %s", ("2025-12",), Decimal)

    @step("prepared int parameter")
    def _():
        prepared(conn, "order_lines_qty_ge_3", "select count(*) from order_lines where qty >= %s", (3,), int)
        prepared(conn, "units_headcount_ge_5", "select count(*) from amoeba_units where headcount >= %s", (5,), int)

    @step("prepared numeric (Decimal) parameter")
    def _():
        prepared(conn, "order_lines_net_sales_gt_500", "select count(*) from order_lines where net_sales > %s",
                 (Decimal("500.00"),), int)

    @step("prepared date parameter")
    def _():
        prepared(conn, "net_profit_on_2025_11_11", "select sum(net_profit) from pnl where date = %s",
                 (dt.date(2025, 11, 11),), Decimal)

    @step("prepared timestamp parameter")
    def _():
        prepared(conn, "order_lines_paid_since_2025_12_24", "select count(*) from order_lines where paid_at >= %s",
                 (dt.datetime(2025, 12, 24, 0, 0, 0),), int)

    @step("prepared bool parameter")
    def _():
        prepared(conn, "jd_completed_lines",
                 "select count(*) from order_lines where platform = %s and (status = 'completed') = %s",
                 ("jd", True), int)

    @step("date result")
    def _():
        with conn.cursor() as cur:
            value = one_value(cur, "select max(cast(paid_at as date)) from order_lines", None, prepare=False)
            check(type(value) is dt.date, f"expected a date, got {type(value).__name__} {value!r}")
            result("last_paid_date", value)

    filtered_sql = ("select count(*), sum(net_sales) from order_lines where platform = %s and qty >= %s and net_sales > %s"
                    " and cast(paid_at as date) >= %s and paid_at < %s and (status = 'completed') = %s")
    filtered_params = ("tmall", 2, Decimal("100.00"), dt.date(2025, 11, 1), dt.datetime(2025, 12, 1), True)

    @step("prepared, all parameter types at once (text format)")
    def _():
        with conn.cursor() as cur:
            rows = []
            for _ in range(PREPARE_RUNS):
                cur.execute(filtered_sql, filtered_params, prepare=True)
                rows.append(cur.fetchone())
            check(all(r == rows[0] for r in rows), f"runs disagree: {rows!r}")
            count, total = rows[0]
            check(isinstance(count, int) and isinstance(total, Decimal), f"types: {rows[0]!r}")
            result("tmall_nov_filtered_lines", count)
            result("tmall_nov_filtered_net_sales", total)

    @step("binary parameters and results (cursor(binary=True))")
    def _():
        with conn.cursor(binary=True) as cur:
            for _ in range(2):
                cur.execute(filtered_sql, filtered_params, prepare=True)
                count, total = cur.fetchone()
                check(isinstance(count, int) and isinstance(total, Decimal), f"types: {(count, total)!r}")
            with conn.cursor() as text_cur:
                text_cur.execute(filtered_sql, filtered_params)
                expected = text_cur.fetchone()
            check((count, total) == expected, f"binary {(count, total)!r} != text {expected!r}")
            cur.execute("select max(cast(paid_at as date)) as last_day, min(paid_at) as first_ts from order_lines where platform = %s",
                        ("tmall",), binary=True)
            d, ts = cur.fetchone()
            check(type(d) is dt.date and type(ts) is dt.datetime, f"binary date/timestamp: {(d, ts)!r}")

    @step("max(cast(ts as date)) next to max(ts) in one select (aliased)")
    def _():
        with conn.cursor() as cur:
            cur.execute("select max(cast(paid_at as date)) as last_day, max(paid_at) as last_ts from order_lines")
            last_day, last_ts = cur.fetchone()
            check(last_day == last_ts.date(), f"{last_day!r} vs {last_ts!r}")

    @step("current_user / session_user are the connected user")
    def _():
        with conn.cursor() as cur:
            cur.execute("select current_user as cu, session_user as su")
            row = cur.fetchone()
            check(row == (os.environ["PGUSER"], os.environ["PGUSER"]), f"(current_user, session_user) = {row!r},"
                  f" expected the connected user {os.environ['PGUSER']!r}")

    @step("output columns with the same name (Postgres allows them)")
    def _():
        with conn.cursor() as cur:
            cur.execute("select count(*), count(*) from amoeba_units")
            a, b = cur.fetchone()
            check(a == b, "count(*), count(*)")
            cur.execute("select current_user, session_user")
            check(len(cur.fetchone()) == 2, "current_user, session_user")

    q4_sql = ("select order_id, line_id, net_sales, paid_at from order_lines"
              " where platform = 'tmall' and paid_at >= timestamp '2025-10-01 00:00:00' and paid_at < timestamp '2026-01-01 00:00:00'")
    q4_param_sql = ("select order_id, line_id, net_sales, paid_at from order_lines"
                    " where platform = %s and paid_at >= %s and paid_at < %s")
    q4_params = ("tmall", dt.datetime(2025, 10, 1), dt.datetime(2026, 1, 1))

    BATCH = 100  # the test warehouse has hundreds of such lines

    def read_named_cursor(sql, params):
        with connect() as cconn:
            with cconn.transaction():
                with cconn.cursor(name="amoeba_tmall_q4") as cur:
                    cur.execute(sql, params)  # DECLARE ... CURSOR FOR ..., then Describe Portal
                    # psycopg takes the column layout from Describe Portal of the cursor; with none,
                    # psycopg_binary reads FETCH rows past its loaders (segfault) - fail clearly instead.
                    check(cur.description, "Describe Portal of the DECLAREd cursor returned NoData (no RowDescription):"
                          " psycopg cannot decode the FETCH rows (psycopg_binary segfaults on them)")
                    count, total, batches = 0, Decimal(0), 0
                    while True:
                        rows = cur.fetchmany(BATCH)  # FETCH FORWARD 100 FROM "amoeba_tmall_q4"
                        if not rows:
                            break
                        batches += 1
                        check(len(rows) <= BATCH, f"fetchmany({BATCH}) returned {len(rows)} rows")
                        for _order_id, _line_id, net_sales, paid_at in rows:
                            count += 1
                            total += net_sales if net_sales is not None else 0
                            check(dt.datetime(2025, 10, 1) <= paid_at < dt.datetime(2026, 1, 1),
                                  f"row outside the filter: {paid_at!r}")
                    check(batches == -(-count // BATCH) and batches > 1,
                          f"expected {count} rows in batches of {BATCH}, got {batches} batches")
        return count, total

    @step("server-side cursor (named, fetchmany batches, in a transaction)")
    def _():
        count, total = read_named_cursor(q4_sql, None)
        result("tmall_q4_lines", count)
        result("tmall_q4_net_sales", total)

    @step("server-side cursor with bound parameters (DECLARE ... $1)")
    def _():
        count, total = read_named_cursor(q4_param_sql, q4_params)
        with conn.cursor() as cur:
            cur.execute(f"select count(*), sum(net_sales) from ({q4_sql}) t")
            expected = cur.fetchone()
        check((count, total) == expected, f"cursor read {(count, total)!r}, expected {expected!r}")

    conn.close()
    if FAILURES:
        print(f"psycopg_client: {len(FAILURES)} step(s) failed:", file=sys.stderr)
        for f in FAILURES:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("psycopg_client: all steps passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    faulthandler.enable()
    try:
        sys.exit(main())
    except Exception:  # connection failures etc.
        traceback.print_exc()
        print("psycopg_client: FAILED with an exception", file=sys.stderr)
        sys.exit(1)
