"""Fleets: many targets, shards, failures, concurrent fleets."""
