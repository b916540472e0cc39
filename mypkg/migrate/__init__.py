"""The machinery that ships and runs the schema: an adopter leaves this folder alone.

Layers, each importing only those below it (see the README, "Layout"): :mod:`.cli` (the
command line) over :mod:`.commands` (the typed API) over :mod:`.checks` over
:mod:`.runtime` and, beside it, :mod:`.fast` (no SQLAlchemy) over :mod:`.database` over
:mod:`.history`, all over the shared vocabulary (:mod:`.errors`, :mod:`.results`,
:mod:`.identity`, :mod:`.version`). Nothing is imported here: the fast path pays only
for what it uses.
"""
