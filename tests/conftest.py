"""
Suite-wide rules.

Under CI (C{CI} set in the environment, as CI runs C{.ci/run}) a skipped test
fails: every dependency of the suite is installed by the project's own files
(C{.ci/run}), so a skip there means a missing install step, not a choice.
"""

import os

import pytest


def _strict() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn a skip into a failure when running under CI."""
    outcome = yield
    report = outcome.get_result()
    if _strict() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI (CI={os.environ['CI']}): {reason}; .ci/run must install what it needs"
