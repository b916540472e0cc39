"""Running against real databases: the API, the run loop, locks, ledger, kills, platforms, poolers."""
