"""The database a command works on: where (settings, target), how to talk to it (connections),
one migrator at a time (locks), what it records (ledger). Uses history and the vocabulary.
"""
