"""What the Python client scripts share: steps that all run and report, and RESULT lines.

A step is a function decorated with `@step("label")`: it runs at once; a failure is printed as
`FAIL <label>: <error>` on stderr (the Rust test reads these) and the next step goes on.
`result(name, value)` prints `RESULT <name>=<value>` on stdout, values as ../checks.sql's.
"""
import datetime as dt
import sys
import traceback
from decimal import Decimal

FAILURES = []


def fmt(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def result(name, value):
    print(f"RESULT {name}={fmt(value)}", flush=True)


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def step(label):
    def wrap(fn):
        try:
            fn()
            print(f"ok   {label}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure, go on with the next step
            FAILURES.append(f"{label}: {type(e).__name__}: {e}")
            print(f"FAIL {label}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            traceback.print_exc(file=sys.stderr)
        return fn

    return wrap
