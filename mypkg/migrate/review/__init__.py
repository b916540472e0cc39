"""Review before a release: ``plan`` (what an upgrade will do, run on a scratch copy and
weighed against the target's table sizes) and the plan file ``upgrade --plan`` applies.
Uses checks (lint), runtime (the runner), database, history and the vocabulary.
"""
