"""Fetches one query's whole result with psycopg 3 and prints `<rows> <seconds>` (used by
benches/stream.sh).

    python stream_fetch.py <conninfo> <mode> <query> [<setup statement>]

mode: `stream` (extended protocol, text results, libpq's chunked-rows mode: 10,000 rows a
chunk, so the client holds one chunk at a time), `stream-binary` (the same, binary results), or
`fetchall` (the whole result buffered by libpq, then converted). Every value is converted to a
Python object (Decimal for numeric, date for date), as an application would. The setup
statement (a SET) runs first on the same connection, outside the timing.
"""

import sys
import time

import psycopg


def main() -> None:
    conninfo, mode, query = sys.argv[1], sys.argv[2], sys.argv[3]
    setup = sys.argv[4] if len(sys.argv) > 4 else None
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.cursor()
        if setup:
            cur.execute(setup)
        rows = 0
        start = time.perf_counter()
        if mode == "fetchall":
            cur.execute(query)
            rows = len(cur.fetchall())
        else:
            for _ in cur.stream(query, binary=(mode == "stream-binary"), size=10_000):
                rows += 1
        seconds = time.perf_counter() - start
    print(rows, f"{seconds:.3f}")


if __name__ == "__main__":
    main()
