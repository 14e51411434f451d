"""The SQLite store's coarse rows, built once their bucket is over rather than at every write.

Merging each write's minutes into their 10-minute and hour rows as well as their minute rows was
most of a write's cost: every coarse row's histograms and user sets were parsed, merged and
written again at each write (every 2 s) for as long as its bucket lasted.  Now a write merges
into minute rows only, and once a coarse bucket is over (``GRACE_S`` past its end, in the time
of the newest minute written) its rows are built in one statement: the 10-minute rows from the
minutes, the hour rows from the 10-minute rows.

The ``rollups`` table records, per table and coarse tier, ``built_to``: the rows of the buckets
before it are built and hold every minute written, later buckets have none.  Reads use coarse
rows before it and finer rows from it on (``_schema.window_params``); a minute written for a
bucket already built (a late span, a retried batch) is merged into the built rows at once, as
every minute was before.  A file from before this keeps its rows: its ``built_to`` starts after
its last bucket, where every coarse row was already built.
"""

from __future__ import annotations

import sqlite3

from podtrace_collector.store import _schema as s

COARSE = s.TIERS[1:]
# How long after a coarse bucket ends (by the newest minute written) its rows are built: the
# minutes of traces still being assembled arrive by then, and rarely later.
GRACE_S = 120

Built = dict[tuple[str, int], int]  # (table, span_s) -> built_to


def built(db: sqlite3.Connection) -> Built:
    """Every table's ``built_to`` per coarse tier, as of the connection's transaction."""
    rows = db.execute("SELECT tbl, span_s, built_to FROM rollups")
    return {(tbl, span): int(to) for tbl, span, to in rows}


def record_start(db: sqlite3.Connection) -> None:
    """Give every table and coarse tier without a record one: after the table's last bucket
    (a file written before built rows were deferred has all its coarse rows), or, for an empty
    table, from the first bucket on."""
    have = built(db)
    hour = s.TIERS[-1]
    for t in s.BUCKET_TABLES:
        missing = [span for span in COARSE if (t.name, span) not in have]
        if missing:
            last = _last_bucket(db, t.name)
            start = s.FAR_PAST if last is None else (last // hour + 1) * hour
            db.executemany(
                "INSERT INTO rollups (tbl, span_s, built_to) VALUES (?, ?, ?)",
                [(t.name, span, start) for span in missing],
            )


def due(marks: Built, newest_end: int) -> list[tuple[str, int]]:
    """The (table, tier) pairs with buckets over and not built yet, finer tiers first."""
    ahead = dict(marks)  # as it will be once the finer tiers listed first are built
    out = []
    for span in COARSE:
        for t in s.BUCKET_TABLES:
            target = _target(ahead, t.name, span, newest_end)
            if target > marks[(t.name, span)]:
                out.append((t.name, span))
                ahead[(t.name, span)] = target
    return out


def build(db: sqlite3.Connection, table: str, span: int, newest_end: int) -> None:
    """Build the ``span`` rows of ``table``'s buckets that are over, and record it."""
    marks = built(db)  # inside the transaction: another writer may have built them
    start, end = marks[(table, span)], _target(marks, table, span, newest_end)
    if end <= start:
        return
    source = s.TIERS[s.TIERS.index(span) - 1]
    db.execute(
        f"DELETE FROM {table} WHERE span_s = ? AND bucket >= ? AND bucket < ?", (span, start, end)
    )
    db.execute(s.build_sql(s.BY_NAME[table], span, source), (start, end))
    db.execute("UPDATE rollups SET built_to = ? WHERE tbl = ? AND span_s = ?", (end, table, span))


def _target(marks: Built, table: str, span: int, newest_end: int) -> int:
    """How far ``built_to`` may go: past the buckets that are over, and no further than the
    rows they are built from (the finer tier's)."""
    over = (newest_end - GRACE_S) // span * span
    if span == COARSE[0]:
        return over
    finer = s.TIERS[s.TIERS.index(span) - 1]
    return min(over, marks[(table, finer)] // span * span)


def _last_bucket(db: sqlite3.Connection, table: str) -> int | None:
    sql = f"SELECT MAX(bucket) FROM {table} WHERE span_s = ?"  # the primary key's end: a seek
    found = [row[0] for span in s.TIERS for row in db.execute(sql, (span,)) if row[0] is not None]
    return max(found, default=None)
