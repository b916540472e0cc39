"""Checks of a schema or a history: the safe baseline (is this database REV's schema?),
schema comparison, lint. Uses runtime, database, history and the vocabulary.
"""
