"""What each command does and how it is called: the one-line summaries and examples of
``--help``, and the list of command names the entry point recognises."""

from __future__ import annotations

from ..identity import COMMAND as PROG
from ..identity import PACKAGE

COMMANDS: dict[str, tuple[str, str]] = {
    "upgrade": (
        "upgrade to a revision (default: head, every head if several)",
        f"  {PROG} upgrade\n  {PROG} upgrade +1\n  {PROG} upgrade --sql base:head\n"
        f"  {PROG} upgrade --lock-timeout 600 --statement-lock-timeout 5   # production\n"
        f"  {PROG} upgrade --to-version VERSION --backup\n"
        f"  {PROG} upgrade --sql --from-version OLD --to-version NEW",
    ),
    "downgrade": (
        "downgrade to a revision (-1: one step; base needs --yes)",
        f"  {PROG} downgrade -1\n  {PROG} downgrade base --yes\n  {PROG} downgrade --sql head:-1\n"
        f"  {PROG} downgrade --to-version VERSION",
    ),
    "current": ("show the database's revision", f"  {PROG} current\n  {PROG} current --json"),
    "history": (
        "list the revisions this package ships; --applied: what ran on this database",
        f"  {PROG} history --json\n  {PROG} history --applied",
    ),
    "heads": ("show the newest revision(s) shipped", f"  {PROG} heads"),
    "stamp": (
        "record a revision without running migrations",
        f"  {PROG} stamp head      # a database created by create_all()",
    ),
    "status": (
        "applied and pending revisions; exit 0 at head, 1 when pending",
        f"  {PROG} status\n  {PROG} status --wait 60   # poll until at head",
    ),
    "check": (
        "compare the models with the database; exit 1 on differences",
        f"  {PROG} check",
    ),
    "verify": (
        "check applied revisions against the shipped scripts' checksums; exit 1 on a mismatch",
        f"  {PROG} verify\n  {PROG} verify --json",
    ),
    "lint": (
        f"render each revision's SQL and check it for dangerous migrations (squawk and {PACKAGE}'s own rules)",
        f"  {PROG} lint\n  {PROG} lint REV:head --json",
    ),
    "fleet": (
        "one revision over many targets: a database per tenant, SQLite files; sharded across pods",
        f"  {PROG} fleet upgrade --targets tenants.txt --jobs 4\n"
        f"  {PROG} fleet status --sqlite-glob 'data/*.db' --json\n"
        f"  {PROG} fleet upgrade --targets tenants.txt --shard $JOB_COMPLETION_INDEX/8 --canary 5",
    ),
    "drift": (
        "compare the database's schema with the schema its applied revision builds; exit 1 on drift",
        f"  {PROG} drift\n  {PROG} drift --json\n  {PROG} fleet drift --schemas 'tenant_*'",
    ),
    "plan": (
        "what an upgrade will do, before it runs: statements, locks, rewrites, table sizes, lint, a verdict",
        f"  {PROG} plan\n  {PROG} plan --markdown > plan.md   # a pull request's comment\n"
        f"  {PROG} plan --out plan.json && {PROG} upgrade --plan plan.json",
    ),
    "backfill": (
        "run the background backfills revisions queued, throttled; their status; pause, resume, cancel one",
        f"  {PROG} backfill run --once --batch-seconds 0.5 --replica postgresql://replica/app "
        "--max-replica-lag 5\n"
        f"  {PROG} backfill status --json\n"
        f"  {PROG} backfill pause 3f2a9c1b7d4e:note",
    ),
    "roundtrip": ("prove each revision keeps its rows: generated rows, upgrade, downgrade, upgrade again",
                  f"  {PROG} roundtrip\n  {PROG} --url postgresql://localhost/scratch roundtrip --report"),
    "checkpoint": (
        "in a checkout: write the schema at REV as a checkpoint that empty databases install in one step",
        f"  {PROG} checkpoint REV --replay-on postgresql://localhost/scratch "
        "--replay-on mysql+pymysql://localhost/scratch\n"
        f"  {PROG} checkpoint REV --retire   # after a release shipped it: remove the scripts before it\n"
        f"  {PROG} checkpoint --prove --replay-on postgresql://localhost/scratch   # in CI",
    ),
    "repair": (
        "record how a revision that failed part way was fixed by hand (MySQL/MariaDB), or accept "
        "edited scripts' checksums",
        f"  {PROG} repair REV --reverted   # its statements undone\n"
        f"  {PROG} repair REV --applied    # completed by hand\n"
        f"  {PROG} repair --checksums               # accept edited scripts once",
    ),
}
