#!/usr/bin/env python3
"""SQLAlchemy 2 (postgresql+psycopg dialect) and pandas against the Amoeba server.

Connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE. Runs the dialect's connect-time
queries, the inspector's catalog queries (schemas, tables, views, columns of `pnl`), Core queries
with bound parameters, and pandas.read_sql of a text() query bound with :month. Prints
`RESULT <name>=<value>` for checks of ../checks.sql; every step runs, exit 1 lists the failures.
"""
import datetime as dt
import os
import sys
import traceback
from decimal import Decimal

import pandas as pd
import sqlalchemy
from sqlalchemy import bindparam, create_engine, inspect, text
from sqlalchemy.engine import URL

from harness import FAILURES, check, result, step  # noqa: E402 (next to this script)

PNL_COLUMNS = {"date", "month", "platform", "shop_id", "sku", "campaign", "unit_id", "gross_sales", "refund", "cogs",
               "net_sales", "gross_profit", "cm2", "cm3", "net_profit"}
ORDER_LINE_COLUMNS = {"platform", "shop_id", "order_id", "line_id", "sku", "qty", "net_sales", "status", "paid_at"}


def main():
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        if not os.environ.get(var):
            print(f"sqlalchemy_client: {var} is not set", file=sys.stderr)
            return 2
    print(f"SQLAlchemy {sqlalchemy.__version__}, pandas {pd.__version__}", file=sys.stderr)
    url = URL.create("postgresql+psycopg", username=os.environ["PGUSER"], password=os.environ.get("PGPASSWORD"),
                     host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]), database=os.environ["PGDATABASE"])
    engine = create_engine(url)
    state = {}

    @step("connect (dialect initialisation: version, current_schema, standard_conforming_strings, ...)")
    def _():
        with engine.connect() as conn:
            check(conn.execute(text("select 1")).scalar_one() == 1, "select 1")
            print(f"server_version_info={engine.dialect.server_version_info!r} default_schema_name="
                  f"{engine.dialect.default_schema_name!r}", file=sys.stderr)
            check(engine.dialect.default_schema_name == "public",
                  f"default_schema_name = {engine.dialect.default_schema_name!r}")

    if FAILURES:  # no connection: every other step would fail the same way
        print(f"sqlalchemy_client: cannot connect, stopping: {FAILURES[0]}", file=sys.stderr)
        return 1

    @step("inspect: get_schema_names")
    def _():
        insp = inspect(engine)
        schemas = insp.get_schema_names()
        check({"public", "cubes"} <= set(schemas), f"schemas {schemas!r} lack public/cubes")
        check("pg_catalog" not in schemas and "information_schema" not in schemas,
              f"system schemas listed: {schemas!r}")

    @step("inspect: get_table_names")
    def _():
        insp = inspect(engine)
        tables = insp.get_table_names()
        check({"amoeba_units", "pnl_ledger"} <= set(tables), f"public tables {tables!r} lack amoeba_units/pnl_ledger")

    @step("inspect: get_view_names")
    def _():
        insp = inspect(engine)
        views = insp.get_view_names()
        check({"pnl", "order_lines", "shops"} <= set(views), f"public views {views!r} lack pnl/order_lines/shops")
        cube_views = insp.get_view_names(schema="cubes")
        check("unit_monthly" in cube_views, f"cubes views {cube_views!r} lack unit_monthly")

    @step("inspect: get_columns('pnl') and get_columns('order_lines')")
    def _():
        insp = inspect(engine)
        cols = {c["name"]: c for c in insp.get_columns("pnl")}
        check(PNL_COLUMNS <= set(cols), f"pnl columns lack {sorted(PNL_COLUMNS - set(cols))}: {sorted(cols)}")
        check(isinstance(cols["net_sales"]["type"], sqlalchemy.Numeric), f"pnl.net_sales type {cols['net_sales']['type']!r}")
        check(isinstance(cols["date"]["type"], sqlalchemy.Date), f"pnl.date type {cols['date']['type']!r}")
        check(isinstance(cols["month"]["type"], sqlalchemy.String), f"pnl.month type {cols['month']['type']!r}")
        ol = {c["name"]: c for c in insp.get_columns("order_lines")}
        check(ORDER_LINE_COLUMNS <= set(ol), f"order_lines columns lack {sorted(ORDER_LINE_COLUMNS - set(ol))}")
        check(isinstance(ol["paid_at"]["type"], sqlalchemy.DateTime), f"order_lines.paid_at type {ol['paid_at']['type']!r}")
        check(isinstance(ol["qty"]["type"], sqlalchemy.Integer), f"order_lines.qty type {ol['qty']['type']!r}")
        cube_cols = {c["name"] for c in insp.get_columns("unit_monthly", schema="cubes")}
        check({"unit_id", "net_sales", "_set"} <= cube_cols, f"cubes.unit_monthly columns {sorted(cube_cols)}")

    @step("inspect: has_table, get_pk_constraint, get_foreign_keys, get_indexes of amoeba_units")
    def _():
        insp = inspect(engine)
        check(insp.has_table("pnl"), "has_table('pnl') is false")
        check(insp.has_table("amoeba_units"), "has_table('amoeba_units') is false")
        insp.get_pk_constraint("amoeba_units")
        insp.get_foreign_keys("amoeba_units")
        insp.get_indexes("amoeba_units")

    @step("Core query with bound parameters (text with :month, :unit)")
    def _():
        with engine.connect() as conn:
            value = conn.execute(text("select sum(net_sales) from pnl where unit_id = :unit and month = :month"),
                                 {"unit": "U07", "month": "2025-11"}).scalar_one()
            check(isinstance(value, Decimal), f"expected Decimal, got {type(value).__name__} {value!r}")
            result("unit_u07_net_sales_2025_11", value)
            state["u07"] = value
            since = conn.execute(text("select count(*) from order_lines where paid_at >= :since"),
                                 {"since": dt.datetime(2025, 12, 24)}).scalar_one()
            result("order_lines_paid_since_2025_12_24", since)

    @step("pandas.read_sql of text() with :month")
    def _():
        query = text("select unit_id, sum(net_sales) as net_sales, sum(net_profit) as net_profit"
                     " from pnl where month = :month group by unit_id order by unit_id")
        with engine.connect() as conn:
            df = pd.read_sql(query, conn, params={"month": "2025-11"}, coerce_float=False)
        check(list(df.columns) == ["unit_id", "net_sales", "net_profit"], f"columns {list(df.columns)!r}")
        check(len(df) >= 8 and df["unit_id"].is_unique, f"{len(df)} rows, unit_ids {list(df['unit_id'])!r}")
        by_unit = df.set_index("unit_id")
        for col in ("net_sales", "net_profit"):
            bad = [v for v in df[col] if not isinstance(v, Decimal)]
            check(not bad, f"{col} values are not Decimal: {bad[:3]!r}")
        if "u07" in state:
            check(by_unit.loc["U07", "net_sales"] == state["u07"],
                  f"U07 net_sales from pandas {by_unit.loc['U07', 'net_sales']!r} != Core {state['u07']!r}")
        result("unit_u01_net_profit_2025_11", by_unit.loc["U01", "net_profit"])
        total = sum(df["net_sales"], Decimal(0))
        result("net_sales_2025_11", total)

    @step("pandas.read_sql with an expanding IN parameter and a date parameter")
    def _():
        query = text("select platform, count(*) as n from order_lines where platform in :platforms"
                     " and cast(paid_at as date) >= :day group by platform order by platform"
                     ).bindparams(bindparam("platforms", expanding=True))
        with engine.connect() as conn:
            df = pd.read_sql(query, conn, params={"platforms": ["jd", "tmall"], "day": dt.date(2025, 1, 1)})
        check(list(df["platform"]) == ["jd", "tmall"], f"platforms {list(df['platform'])!r}")
        check(all(int(n) > 0 for n in df["n"]), f"counts {list(df['n'])!r}")

    @step("pandas.read_sql_query of a date result")
    def _():
        with engine.connect() as conn:
            df = pd.read_sql_query(text("select max(cast(paid_at as date)) as last_day from order_lines"), conn)
        value = df["last_day"].iloc[0]
        if isinstance(value, pd.Timestamp):
            value = value.date()
        check(isinstance(value, dt.date), f"last_day is {type(value).__name__} {value!r}")
        result("last_paid_date", value)

    engine.dispose()
    if FAILURES:
        print(f"sqlalchemy_client: {len(FAILURES)} step(s) failed:", file=sys.stderr)
        for f in FAILURES:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("sqlalchemy_client: all steps passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        print("sqlalchemy_client: FAILED with an exception", file=sys.stderr)
        sys.exit(1)
