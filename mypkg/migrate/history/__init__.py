"""The revision graph alone: where the scripts are, their manifest, Alembic's order, the graph.
Uses only the shared vocabulary (errors, results, identity, version); never a database.
"""
