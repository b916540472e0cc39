"""Running revisions against a database: the run loop, env.py's body, integrity, failures,
repair, backup, offline SQL. Uses database, history, vocabulary.
"""
