"""Shared fixtures of the capture tests: the package on sys.path and the summary table."""

import json
import os
import sys

import pytest

CAPTURE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if CAPTURE_ROOT not in sys.path:
    sys.path.insert(0, CAPTURE_ROOT)

_ROWS_KEY = "_attnscope_summary_rows"


@pytest.fixture(scope="session")
def summary_rows(request):
    """List that tests append (architecture, implementation, max |dp|, trace bytes) rows to."""
    rows = getattr(request.config, _ROWS_KEY, None)
    if rows is None:
        rows = []
        setattr(request.config, _ROWS_KEY, rows)
    return rows


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = getattr(config, _ROWS_KEY, None)
    if not rows:
        return
    terminalreporter.write_sep("=", "attnscope capture summary")
    header = f"{'architecture':<14} {'attention':<10} {'max |dp| vs eager':>18} {'trace bytes':>12}"
    terminalreporter.write_line(header)
    for arch, impl, max_dp, size in rows:
        shown = "-" if size is None else str(size)
        terminalreporter.write_line(f"{arch:<14} {impl:<10} {max_dp:>18.3e} {shown:>12}")
    # ATTNSCOPE_CAPTURE_SUMMARY=FILE keeps the rows as JSON (the README's coverage table).
    target = os.environ.get("ATTNSCOPE_CAPTURE_SUMMARY")
    if target:
        with open(target, "w") as handle:
            json.dump([{"architecture": a, "attention": i, "max_abs_dp": d, "trace_bytes": s}
                       for a, i, d, s in rows], handle, indent=1)
