"""
The observations of a chaos run in which everything went right
(L{healthy}), for the checks of L{pygmy.cli.invariants} and
L{pygmy.cli.invariants_frontends} to start from: a test changes one thing
and expects that violation, and only it, to be caught.
"""

from __future__ import annotations

from collections import Counter

from pygmy.cli import invariants


def healthy() -> invariants.Observations:
    """A run in which everything went right."""
    obs = invariants.Observations(
        start_stock={1: 10, 2: 1000},
        end_stock={1: 3, 2: 997},
        replica_stock={"catalog:A": {1: 3, 2: 997}, "catalog:B": {1: 3, 2: 997}},
        restocks=Counter({1: 4}),
        orders_before={1: 2},
        orders_after={1: 2, 2: 1, 3: 1, 4: 2, 5: 1, 6: 1, 7: 1, 8: 2, 9: 1, 10: 1, 11: 2, 12: 1, 13: 1, 14: 1, 15: 1},
        bought={2: 1, 3: 1, 4: 2, 5: 1},
        buys=Counter({"200": 4, "409": 3, "503": 1}),
        reads=Counter({"ok": 50}),
        divergence={"catalog": "", "order": ""},
        faults=[invariants.Fault("catalog", "primary", "catalog:A", 123, 1.0, 1.2, 3.0, 4.0, 4.5)],
    )
    # 14 orders placed in the run: 11 of item 1 (10 + 4 = 3 + 11), 3 of item 2.
    return obs
