"""The machinery that ships and runs the schema: an adopter leaves this folder alone.

Rooms, each with one job (see the README, "Layout"): :mod:`.commands` (the typed API),
:mod:`.runner` (the run loop), :mod:`.target` and :mod:`.connections` (which database,
and how to talk to it), :mod:`.locks`, :mod:`.ledger`, :mod:`.integrity` and
:mod:`.manifest`, :mod:`.graph` and :mod:`.scripts` (the revision graph), :mod:`.baseline`
and :mod:`.compare`, :mod:`.fastpath`, :mod:`.environment` (Alembic's env.py),
:mod:`.cli` and :mod:`.parser`. :mod:`.identity` holds every name derived from the
package's. Nothing is imported here: the fast path pays only for what it uses.
"""
