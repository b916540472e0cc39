"""Fleets: one revision over many targets (a database per tenant, SQLite files), in one
process with bounded workers, sharded across machines by a stable hash. Uses commands and below.
"""
