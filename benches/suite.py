"""The P&L query suite side by side with DuckDB (benches/suite.sh runs it).

    .venv/bin/python benches/suite.py --warehouse DIR --port PORT --server-pid PID
        [--host 127.0.0.1] [--user amoeba] [--dbname amoeba] [--routing off|on] [--runs 5]
        [--threads 2] [--queries benches/queries] [--only SUBSTRING ...] [--out FILE.md]
        [--views-out FILE.sql]

For every `benches/queries/NN_name.sql` (one SELECT each): one warm-up run, then RUNS timed runs
on Amoeba over pgwire (psycopg 3, autocommit, every row fetched and converted to Python
objects) and RUNS timed runs on DuckDB (in-process in a worker process of its own, `SET
threads=THREADS`, over the same Parquet files); the two warm-up results are compared (same
columns, same rows in the same order; decimals exactly, doubles to 1e-9 relative, a decimal on
one side and a double on the other is a difference). Prints and writes a Markdown table: per
query the rows, Amoeba median (min–max) ms, DuckDB median (min–max) ms, the ratio of the
medians and whether the results are equal; then the geometric mean of the ratios, the DuckDB
worker's peak RSS and the Amoeba server's (VmHWM of --server-pid, reset through
/proc/<pid>/clear_refs before the first query where allowed, so it is the peak during the
suite; the peak since the server started is printed too). Exit status 1 when a query fails on
either side or the results differ.

`--routing off` (the default) runs `SET amoeba.cube_routing = false` on the Amoeba connection:
every aggregate over `pnl` is computed from the ledger, as DuckDB computes it. `--routing on`
lets Amoeba answer from its cubes.

DuckDB sees the same relations, built by this script over what is on disk (written to
--views-out for reading):
  pnl_ledger    the ledger version Amoeba serves: <warehouse>/ledger/<_current>/month=*/*.parquet
                (hive partition `month` as VARCHAR)
  pnl           the same wide view Amoeba defines over pnl_ledger (engine/src/ledger/store.rs
                `pnl_view_sql`): one column per account (the list is read from Amoeba's `pnl`
                and checked against the fixed columns), allocated_total and the profit layers
  amoeba_units  the units of <warehouse>/model/model.toml (Amoeba builds it in memory from there)
  skus, shops, hours, expenses, purchases, stock_adjustments, ad_spend
                the unified views, from the export Parquet files Amoeba serves (`amoeba_files`,
                status 'served', with their delivery numbers), de-duplicated like the catalog
                (newest delivery of each natural key, per shop for platform exports) and mapped
                with the mapping files' own expressions (catalog/mappings/*.toml, replaced by the
                warehouse's model/mappings/*.toml of the same name); only views whose every part
                reads one source (`from = "{source}"`) are built
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import time
import tomllib
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

# What this script needs, installed into the interpreter's environment when missing.
REQUIREMENTS = ["duckdb>=1.1,<3", "psycopg[binary]>=3.2,<4"]


def ensure_requirements() -> None:
    missing = []
    for module, req in (("duckdb", REQUIREMENTS[0]), ("psycopg", REQUIREMENTS[1])):
        try:
            __import__(module)
        except ImportError:
            missing.append(req)
    if missing:
        print(f"suite: pip install {' '.join(missing)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing], check=True)


ROOT = Path(__file__).resolve().parent.parent

# The unified views DuckDB gets (catalog/src/unified.rs): column, DuckDB type, nullable.
UNIFIED = {
    "ad_spend": [
        ("platform", "VARCHAR", False),
        ("shop_id", "VARCHAR", False),
        ("date", "DATE", False),
        ("campaign", "VARCHAR", False),
        ("sku", "VARCHAR", True),
        ("spend", "DECIMAL(18,2)", False),
        ("impressions", "BIGINT", True),
        ("clicks", "BIGINT", True),
        ("attributed_sales", "DECIMAL(18,2)", False),
        ("attributed_orders", "BIGINT", False),
    ],
    "purchases": [
        ("receipt_id", "VARCHAR", False),
        ("sku", "VARCHAR", False),
        ("warehouse", "VARCHAR", False),
        ("received_at", "TIMESTAMP", False),
        ("qty", "BIGINT", False),
        ("unit_cost", "DECIMAL(18,4)", False),
        ("freight", "DECIMAL(18,2)", False),
    ],
    "stock_adjustments": [
        ("adjustment_id", "VARCHAR", False),
        ("sku", "VARCHAR", False),
        ("warehouse", "VARCHAR", False),
        ("date", "DATE", False),
        ("qty", "BIGINT", False),
        ("reason", "VARCHAR", False),
    ],
    "expenses": [
        ("month", "VARCHAR", False),
        ("category", "VARCHAR", False),
        ("cost_center", "VARCHAR", False),
        ("amount", "DECIMAL(18,2)", False),
    ],
    "hours": [
        ("month", "VARCHAR", False),
        ("unit_id", "VARCHAR", False),
        ("hours", "DECIMAL(18,2)", False),
    ],
    "skus": [
        ("sku", "VARCHAR", False),
        ("spu", "VARCHAR", False),
        ("brand", "VARCHAR", False),
        ("category", "VARCHAR", False),
        ("weight_kg", "DECIMAL(18,3)", False),
        ("shelf_life_days", "BIGINT", True),
        ("supplier", "VARCHAR", False),
    ],
    "shops": [
        ("platform", "VARCHAR", False),
        ("shop_id", "VARCHAR", False),
        ("shop_name", "VARCHAR", False),
        ("brand", "VARCHAR", False),
        ("team", "VARCHAR", False),
    ],
}

# The accounts the profit layers sum (catalog/src/cube.rs `layers`); net_profit is every account.
NET_SALES = ["gross_sales", "seller_discount", "shipping_income", "refund"]
CM1 = NET_SALES + ["cogs", "inventory_loss"]
CM2 = CM1 + ["platform_commission", "platform_service_fee", "payment_fee", "shipping_cost", "packaging"]
CM3 = CM2 + ["advertising", "affiliate_commission"]
PNL_KEYS = ["date", "month", "platform", "shop_id", "sku", "campaign", "unit_id"]
PNL_TAIL = ["allocated_total", "net_sales", "gross_profit", "cm2", "cm3", "net_profit"]


def q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def lit(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# DuckDB's views


def load_mappings(warehouse: Path) -> dict[str, dict]:
    mappings = {}
    for folder in (ROOT / "catalog" / "mappings", warehouse / "model" / "mappings"):
        for f in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            m = tomllib.loads(f.read_text())
            mappings[m["name"]] = m
    return mappings


def pnl_view_sql(pnl_columns: list[str]) -> str:
    """The `pnl` view of engine/src/ledger/store.rs over the accounts Amoeba's `pnl` has."""
    n = len(PNL_KEYS)
    if pnl_columns[:n] != PNL_KEYS or pnl_columns[-len(PNL_TAIL):] != PNL_TAIL:
        raise SystemExit(f"suite: Amoeba's pnl has unexpected columns: {pnl_columns}")
    accounts = pnl_columns[n : -len(PNL_TAIL)]

    def total(accs: list[str]) -> str:
        return (
            f"CAST(SUM(CASE WHEN account IN ({', '.join(lit(a) for a in accs)}) THEN amount ELSE 0 END)"
            " AS DECIMAL(38,2))"
        )

    cols = [f"{total([a])} AS {q(a)}" for a in accounts]
    cols.append(f"{total([a for a in accounts if a.startswith('allocated_')])} AS allocated_total")
    for name, accs in (("net_sales", NET_SALES), ("gross_profit", CM1), ("cm2", CM2), ("cm3", CM3)):
        cols.append(f"{total(accs)} AS {name}")
    cols.append("CAST(SUM(amount) AS DECIMAL(38,2)) AS net_profit")
    keys = ", ".join(PNL_KEYS)
    return (
        f"CREATE OR REPLACE VIEW pnl AS SELECT {keys},\n  " + ",\n  ".join(cols)
        + f"\nFROM pnl_ledger GROUP BY {keys}"
    )


def units_sql(warehouse: Path) -> str:
    model = tomllib.loads((warehouse / "model" / "model.toml").read_text())
    rows = []
    for u in model.get("units", []):
        rows.append(
            "(" + ", ".join([
                lit(u["id"]), lit(u["name"]), lit(u["kind"]), lit(u.get("parent")),
                str(u["headcount"]) if "headcount" in u else "NULL",
                str(u["area"]) if "area" in u else "NULL",
            ]) + ")"
        )
    return (
        "CREATE OR REPLACE TABLE amoeba_units (unit_id VARCHAR NOT NULL, name VARCHAR NOT NULL, "
        "kind VARCHAR NOT NULL, parent_id VARCHAR, headcount BIGINT, area BIGINT);\n"
        "INSERT INTO amoeba_units VALUES\n  " + ",\n  ".join(rows)
    )


def unified_views_sql(warehouse: Path, files: list[tuple]) -> tuple[list[str], list[str]]:
    """The unified views DuckDB can build; returns (statements, notes).

    files: Amoeba's served files as (path, mapping, kind, shop_id, dt, delivery)."""
    mappings = load_mappings(warehouse)
    stmts = [
        "CREATE OR REPLACE TABLE _amoeba_files (file VARCHAR, mapping VARCHAR, kind VARCHAR, "
        "shop_id VARCHAR, dt DATE, _delivery BIGINT)"
    ]
    if files:
        values = [
            f"({lit(str(warehouse / p))}, {lit(m)}, {lit(k)}, {lit(s)}, "
            f"{'NULL' if dt is None else 'DATE ' + lit(str(dt))}, {d})"
            for p, m, k, s, dt, d in files
        ]
        for i in range(0, len(values), 500):
            stmts.append("INSERT INTO _amoeba_files VALUES " + ", ".join(values[i : i + 500]))
    notes = []
    raws = {}

    def raw(mapping: dict, source: str) -> str | None:
        """A de-duplicated raw source (`raw_<mapping>_<source>`), or None without files."""
        name = f"raw_{mapping['name']}_{source}"
        if name in raws:
            return raws[name]
        spec = mapping["sources"][source]
        paths = [str(warehouse / p) for p, m, k, *_ in files if m == mapping["name"] and k == source]
        if not paths:
            raws[name] = None
            return None
        declared = list(spec["columns"].keys())
        keys = ([] if mapping.get("layout") == "company" else ["shop_id"]) + [q(k) for k in spec["key"]]
        cols = ", ".join(f"r.{q(c)}" for c in declared)
        listing = "[" + ", ".join(lit(p) for p in paths) + "]"
        stmts.append(
            f"CREATE OR REPLACE VIEW {q(name)} AS SELECT * EXCLUDE (_rank) FROM (\n"
            f"  SELECT {cols}, f.shop_id, f.dt, f._delivery,\n"
            f"         row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY f._delivery DESC) AS _rank\n"
            f"  FROM read_parquet({listing}, filename = true, union_by_name = true, hive_partitioning = false) r\n"
            f"  JOIN _amoeba_files f ON f.file = r.filename) WHERE _rank = 1"
        )
        raws[name] = name
        return name

    for view, columns in UNIFIED.items():
        parts = []
        skipped = None
        for mapping in mappings.values():
            for i, part in enumerate(mapping.get("views", {}).get(view, [])):
                m = re.fullmatch(r"\{(\w+)\}", part["from"].strip())
                if not m or m.group(1) not in mapping.get("sources", {}):
                    skipped = f"{mapping['name']} {view}[{i}] reads `{part['from'].strip()[:40]}`"
                    continue
                source = raw(mapping, m.group(1))
                if source is None:
                    continue
                select = []
                for name, typ, _ in columns:
                    expr = part["columns"].get(name)
                    if expr is None:
                        if name == "platform" and mapping.get("layout") != "company":
                            expr = lit(mapping["name"])
                        else:
                            expr = "NULL"
                    select.append(f"CAST(({expr}) AS {typ}) AS {q(name)}")
                sql = f"SELECT {', '.join(select)} FROM {q(source)}"
                if part.get("where"):
                    sql += f" WHERE ({part['where']})"
                parts.append(sql)
        if skipped:
            notes.append(f"{view}: not built for DuckDB ({skipped}: more than one source)")
            continue
        if not parts:
            parts.append(
                "SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {q(n)}" for n, t, _ in columns) + " WHERE false"
            )
        required = " AND ".join(f"{q(n)} IS NOT NULL" for n, _, nullable in columns if not nullable)
        stmts.append(
            f"CREATE OR REPLACE VIEW {q(view)} AS SELECT * FROM (\n  "
            + "\n  UNION ALL ".join(parts)
            + f"\n) WHERE {required}"
        )
    return stmts, notes


# ---------------------------------------------------------------------------------------------
# The DuckDB worker: a process of its own, so that its peak RSS is DuckDB's.


def vm(pid: int | str, key: str) -> int | None:
    """VmHWM / VmRSS of a process, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def duckdb_worker(conn, threads: int) -> None:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {threads}")
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            conn.send(("stopped", vm("self", "VmHWM")))
            return
        try:
            if msg[0] == "setup":
                for stmt in msg[1]:
                    con.execute(stmt)
                conn.send(("ok", duckdb.__version__, vm("self", "VmHWM")))
            elif msg[0] == "run":
                _, sql, runs = msg
                cur = con.execute(sql)
                rows = cur.fetchall()
                names = [d[0] for d in cur.description]
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    con.execute(sql).fetchall()
                    times.append((time.perf_counter() - start) * 1000)
                conn.send(("ok", names, rows, times))
        except Exception as e:  # noqa: BLE001 — reported per query
            conn.send(("error", f"{type(e).__name__}: {e}"))


# ---------------------------------------------------------------------------------------------
# Comparison


def same_value(a, b) -> str | None:
    """None when equal, else why not."""
    if a is None or b is None:
        return None if a is None and b is None else f"{a!r} vs {b!r}"
    if isinstance(a, bool) or isinstance(b, bool):
        return None if a == b and type(a) is type(b) else f"{a!r} vs {b!r}"
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            return f"types differ: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
        if math.isnan(a) and math.isnan(b):
            return None
        return None if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else f"{a!r} vs {b!r}"
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        if not (isinstance(a, Decimal) and isinstance(b, Decimal)):
            return f"types differ: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
        return None if a == b else f"{a} vs {b}"
    return None if a == b and type(a) is type(b) else f"{a!r} ({type(a).__name__}) vs {b!r} ({type(b).__name__})"


def compare(a_names, a_rows, d_names, d_rows) -> str | None:
    if [n.lower() for n in a_names] != [n.lower() for n in d_names]:
        return f"columns differ: {a_names} vs {d_names}"
    if len(a_rows) != len(d_rows):
        return f"{len(a_rows)} rows vs {len(d_rows)}"
    for i, (ra, rd) in enumerate(zip(a_rows, d_rows)):
        for name, va, vd in zip(a_names, ra, rd):
            why = same_value(va, vd)
            if why:
                return f"row {i + 1}, {name}: {why}"
    return None


# ---------------------------------------------------------------------------------------------


def plan_cubes(cur, statement: str) -> list[str]:
    """The cubes Amoeba's plan of `statement` reads (EXPLAIN: `TableScan: cubes.<name>`)."""
    cur.execute("EXPLAIN " + statement)
    text = "\n".join(str(v) for row in cur.fetchall() for v in row)
    return sorted(set(re.findall(r"TableScan: (cubes\.\w+)", text)))


def fmt_times(times: list[float]) -> str:
    return f"{statistics.median(times):.1f} ({min(times):.1f}–{max(times):.1f})"


def mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.0f} MiB"


def first_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("--"):
            lines.append(line[2:].strip())
        elif lines:
            break
    return " ".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--warehouse", required=True, type=Path)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--user", default="amoeba")
    p.add_argument("--dbname", default="amoeba")
    p.add_argument("--server-pid", type=int, help="the Amoeba server's pid (for its peak RSS)")
    p.add_argument("--routing", choices=["off", "on"], default="off",
                   help="amoeba.cube_routing: off (default) computes every query from the ledger")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="DuckDB's threads")
    p.add_argument("--queries", type=Path, default=ROOT / "benches" / "queries")
    p.add_argument("--only", nargs="*", default=[], help="run the queries whose file name contains one of these")
    p.add_argument("--out", type=Path, help="write the Markdown here too")
    p.add_argument("--views-out", type=Path, help="write DuckDB's view definitions here")
    args = p.parse_args()
    ensure_requirements()
    import psycopg

    warehouse = args.warehouse.resolve()
    queries = sorted(args.queries.glob("*.sql"))
    if args.only:
        queries = [f for f in queries if any(s in f.name for s in args.only)]
    if not queries:
        print("suite: no queries", file=sys.stderr)
        return 1

    # The DuckDB worker first (forked before any connection exists).
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    worker = ctx.Process(target=duckdb_worker, args=(child_end, args.threads), daemon=True)
    worker.start()

    conn = psycopg.connect(host=args.host, port=args.port, user=args.user, dbname=args.dbname, autocommit=True)
    cur = conn.cursor()
    cur.execute(f"SET amoeba.cube_routing = {'true' if args.routing == 'on' else 'false'}")
    # `SHOW amoeba.cube_routing` is not answered over pgwire: EXPLAIN a query a cube answers.
    cube_scans = plan_cubes(cur, "SELECT month, SUM(net_sales) AS net_sales FROM pnl GROUP BY month")
    routing_state = f"on (e.g. {cube_scans[0]})" if cube_scans else "off (pnl from the ledger)"
    if (args.routing == "on") != bool(cube_scans):
        print(f"suite: asked for routing {args.routing}, EXPLAIN says {routing_state}", file=sys.stderr)
    cur.execute(
        "SELECT path, platform, kind, shop_id, dt, delivery FROM amoeba_files WHERE status = 'served' ORDER BY delivery"
    )
    files = cur.fetchall()
    cur.execute("SELECT * FROM pnl LIMIT 0")
    pnl_columns = [d.name for d in cur.description]
    cur.execute("SELECT count(*) FROM pnl_ledger")
    ledger_rows = cur.fetchone()[0]

    version = (warehouse / "ledger" / "_current").read_text().strip()
    ledger_glob = warehouse / "ledger" / version / "month=*" / "*.parquet"
    stmts = [
        f"SET threads = {args.threads}",
        "CREATE OR REPLACE VIEW pnl_ledger AS SELECT date, platform, shop_id, sku, campaign, unit_id, "
        "account, amount, qty, source, month FROM read_parquet("
        f"{lit(str(ledger_glob))}, hive_partitioning = true, hive_types = {{'month': VARCHAR}})",
        pnl_view_sql(pnl_columns),
        units_sql(warehouse),
    ]
    unified, notes = unified_views_sql(warehouse, files)
    stmts += unified
    if args.views_out:
        args.views_out.parent.mkdir(parents=True, exist_ok=True)
        args.views_out.write_text(
            f"-- DuckDB views of benches/suite.py over {warehouse} (ledger {version}), generated "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n" + ";\n\n".join(stmts) + ";\n"
        )
    parent_end.send(("setup", stmts))
    reply = parent_end.recv()
    if reply[0] != "ok":
        print(f"suite: DuckDB's views failed: {reply[1]}", file=sys.stderr)
        return 1
    duckdb_version, duckdb_base_kib = reply[1], reply[2]

    server_hwm_start = vm(args.server_pid, "VmHWM") if args.server_pid else None
    server_rss_start = vm(args.server_pid, "VmRSS") if args.server_pid else None
    hwm_reset = False
    if args.server_pid:
        try:
            Path(f"/proc/{args.server_pid}/clear_refs").write_text("5")
            hwm_reset = True
        except OSError:
            pass

    rows_md = []
    ratios = []
    failures = 0
    show_plan = args.routing == "on"
    cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    print(f"{'query':<36} {'rows':>6} {'amoeba ms':>24} {'duckdb ms':>24} {'ratio':>6}  equal", flush=True)
    for f in queries:
        sql = f.read_text()
        name = f.stem
        if not first_comment(sql):
            print(f"suite: {f.name} does not start with a -- comment", file=sys.stderr)
        statement = sql.strip().rstrip(";")
        a_err = d_err = None
        cubes: list[str] = []
        try:
            if show_plan:
                cubes = plan_cubes(cur, statement)
            cur.execute(statement)
            a_rows = cur.fetchall()
            a_names = [d.name for d in cur.description]
            a_times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                cur.execute(statement)
                cur.fetchall()
                a_times.append((time.perf_counter() - start) * 1000)
        except psycopg.Error as e:
            a_err = f"{getattr(e, 'sqlstate', None) or ''} {str(e).strip()}".strip()
        try:
            parent_end.send(("run", statement, args.runs))
            reply = parent_end.recv()
        except (EOFError, OSError):
            print(f"suite: the DuckDB worker died (exit code {worker.exitcode}) on {name}", file=sys.stderr)
            return 1
        if reply[0] == "ok":
            d_names, d_rows, d_times = reply[1], reply[2], reply[3]
        else:
            d_err = reply[1]
        plan = [", ".join(cubes) or "ledger"] if show_plan else []
        if a_err or d_err:
            failures += 1
            what = "; ".join(x for x in (a_err and f"Amoeba: {a_err}", d_err and f"DuckDB: {d_err}") if x)
            print(f"{name:<36} ERROR {what}", flush=True)
            cells = [name, "", "error" if a_err else fmt_times(a_times), "error" if d_err else fmt_times(d_times),
                     "", f"**{cell(what)[:400]}**"]
        else:
            diff = compare(a_names, a_rows, d_names, d_rows)
            ratio = statistics.median(a_times) / statistics.median(d_times)
            ratios.append(ratio)
            if diff:
                failures += 1
            print(f"{name:<36} {len(a_rows):>6} {fmt_times(a_times):>24} {fmt_times(d_times):>24} {ratio:>6.2f}  "
                  f"{'yes' if not diff else 'NO: ' + diff}", flush=True)
            cells = [name, str(len(a_rows)), fmt_times(a_times), fmt_times(d_times), f"{ratio:.2f}",
                     "yes" if not diff else "**no**: " + cell(diff)[:400]]
        rows_md.append("| " + " | ".join(cells + plan) + " |")

    parent_end.send(("stop",))
    duckdb_hwm = parent_end.recv()[1]
    worker.join(10)
    server_hwm = vm(args.server_pid, "VmHWM") if args.server_pid else None
    conn.close()

    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else float("nan")
    load = Path("/proc/loadavg").read_text().split()[:3]
    out = [
        f"Amoeba vs DuckDB {duckdb_version}: {len(queries)} queries, {args.runs} timed runs each after a "
        f"warm-up; warehouse {warehouse} (ledger {version}, {ledger_rows} rows); "
        f"amoeba.cube_routing {routing_state}; DuckDB threads {args.threads}; "
        f"{os.cpu_count()} cores, load {' '.join(load)} at the end",
        "",
        "| query | rows | Amoeba median (min–max) ms | DuckDB median (min–max) ms | Amoeba/DuckDB | equal |"
        + (" Amoeba reads |" if show_plan else ""),
        "| --- | ---: | ---: | ---: | ---: | --- |" + (" --- |" if show_plan else ""),
        *rows_md,
        "",
        f"Geometric mean of the ratios (Amoeba/DuckDB, medians): **{geo:.2f}** over {len(ratios)} queries",
        "",
        f"Peak RSS: DuckDB worker {mib(duckdb_hwm)} (after loading DuckDB and its views {mib(duckdb_base_kib)}); "
        + (
            f"Amoeba server {mib(server_hwm)} during the suite (VmHWM reset before it; its RSS was "
            f"{mib(server_rss_start)} when the suite started, and had peaked at {mib(server_hwm_start)} before: "
            "the start-up ledger build and cube refresh)"
            if hwm_reset
            else f"Amoeba server {mib(server_hwm)} since it started (VmHWM could not be reset)"
        )
        if args.server_pid
        else f"Peak RSS: DuckDB worker {mib(duckdb_hwm)}; Amoeba server: no --server-pid",
    ]
    if notes:
        out += ["", *(f"Note: {n}" for n in notes)]
    if failures:
        out += ["", f"**{failures} of {len(queries)} queries failed or differ.**"]
    text = "\n".join(out) + "\n"
    print()
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
