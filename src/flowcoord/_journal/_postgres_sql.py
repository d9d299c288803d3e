"""SQL of the PostgreSQL journal: schema migrations and the statements, for one schema."""

from __future__ import annotations

from collections.abc import Iterator

from ._contract import Listing, glob_wildcards

__all__ = ["SCHEMA_VERSION", "Statements"]

#: The schema version this code writes. Bump it with a new entry in ``_MIGRATIONS``.
SCHEMA_VERSION = 4

# version -> statements taking the schema from version-1 to version. ``{s}`` is the quoted
# schema. Never edit a released entry; add a new one.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS {s}.flows ("
        " flow_id text PRIMARY KEY,"
        " name text NOT NULL,"
        " state text NOT NULL,"
        " token bigint NOT NULL DEFAULT 0,"
        " created_at double precision NOT NULL,"
        " updated_at double precision NOT NULL)",
        "CREATE INDEX IF NOT EXISTS flows_state_idx ON {s}.flows (state, flow_id)",
        "CREATE TABLE IF NOT EXISTS {s}.entries ("
        " flow_id text NOT NULL,"
        " seq bigint NOT NULL,"
        " kind text NOT NULL,"
        " task text,"
        " data text NOT NULL,"
        " state text,"
        " token bigint NOT NULL,"
        " at double precision NOT NULL,"
        " PRIMARY KEY (flow_id, seq))",
    ),
    # Resuming reads the entries that checkpoints do not sum up through this index.
    2: (
        "CREATE INDEX IF NOT EXISTS entries_resume_idx ON {s}.entries (flow_id, seq)"
        " WHERE kind NOT IN ('task.started', 'task.succeeded')",
    ),
    # Newest-first listings (list_newest) read the summaries through these, by creation
    # time and by state then creation time; flow ids in code point order ("C"), as the
    # other backends order them, whatever the database's collation.
    3: (
        "CREATE INDEX IF NOT EXISTS flows_created_idx ON {s}.flows"
        ' (created_at, flow_id COLLATE "C")',
        "CREATE INDEX IF NOT EXISTS flows_state_created_idx ON {s}.flows"
        ' (state, created_at, flow_id COLLATE "C")',
    ),
    # The flows' mailboxes (send_event): events numbered per flow and topic, keys unique.
    4: (
        "CREATE TABLE IF NOT EXISTS {s}.sent_events ("
        " flow_id text NOT NULL,"
        " topic text NOT NULL,"
        " seq bigint NOT NULL,"
        " data text NOT NULL,"
        " key text NOT NULL,"
        " sent_at double precision NOT NULL,"
        " PRIMARY KEY (flow_id, topic, seq),"
        " UNIQUE (flow_id, topic, key))",
    ),
}

_ENTRY_COLUMNS = "flow_id, seq, kind, task, data, state, token, at"
# A batch of entries as rows, from one parameter per column ($1..$8), in two encodings.
# Arrays: asyncpg checks every element of every array as it encodes it (about 13
# isinstance() checks per entry). Packed: each column is one text, its elements joined by
# the unit separator (U+001F; NULL is U+001E), split by the server: half the client CPU
# per entry (measured). Packed is used whenever no value holds a separator (JSON text never
# does: it escapes control characters); see _pack() in _postgres.py.
_UNNEST_ENTRIES = (
    "unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],"
    " $7::bigint[], $8::float8[]) AS b(" + _ENTRY_COLUMNS + ")"
)
# Numbers always travel as text: asyncpg has no built-in codec for bigint[] or float8[], and
# looks their types up on each new connection (about 11 ms, measured).
_SPLIT = "string_to_array(${}, E'\\x1f', E'\\x1e')"
_SPLIT_NUMBERS = "string_to_array(${}, ',')::{}[]"
_UNNEST_PACKED = (
    f"unnest({_SPLIT.format(1)}, {_SPLIT_NUMBERS.format(2, 'bigint')}, {_SPLIT.format(3)},"
    f" {_SPLIT.format(4)}, {_SPLIT.format(5)}, {_SPLIT.format(6)},"
    f" {_SPLIT_NUMBERS.format(7, 'bigint')}, {_SPLIT_NUMBERS.format(8, 'float8')})"
    f" AS b({_ENTRY_COLUMNS})"
)
_FLOW_COLUMNS = "flow_id, name, state, token, created_at, updated_at"


def _like(pattern: str) -> str:
    """A name pattern (``*``, ``?``) as a LIKE pattern escaped with a backslash."""
    out = []
    for c in pattern:
        if c == "*":
            out.append("%")
        elif c == "?":
            out.append("_")
        elif c in "%_\\":
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Statements:
    """Every statement, with the schema name quoted in. Arguments are always parameters."""

    def __init__(self, schema: str) -> None:
        s = self.s = quote_ident(schema)
        # A flow's summary: updated_at is its newest entry's time (the row's own column is
        # written with state changes only), found through the primary key.
        self.summary = (
            "f.flow_id, f.name, f.state, f.token, f.created_at, GREATEST(f.updated_at,"
            f" (SELECT e.at FROM {s}.entries e WHERE e.flow_id = f.flow_id"
            " ORDER BY e.seq DESC LIMIT 1)) AS updated_at"
        )
        self.lock = "SELECT pg_advisory_xact_lock($1::bigint)"
        self.meta_exists = "SELECT to_regclass($1)"
        self.get_version = f"SELECT value FROM {s}.meta WHERE key = 'schema_version'"
        self.set_version = (
            f"INSERT INTO {s}.meta (key, value) VALUES ('schema_version', $1)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        # The summary row and the first entries in one statement (one round trip, atomic);
        # nothing is written when the flow id is taken. Returns one row when created.
        self.create_flow = (
            f"WITH flow AS (INSERT INTO {s}.flows ({_FLOW_COLUMNS})"
            "  VALUES ($9, $10, $11, $12, $13, $14)"
            "  ON CONFLICT (flow_id) DO NOTHING RETURNING flow_id),"
            f" inserted AS (INSERT INTO {s}.entries ({_ENTRY_COLUMNS})"
            f"  SELECT b.* FROM {_UNNEST_ENTRIES} WHERE EXISTS (SELECT FROM flow)"
            "  ON CONFLICT (flow_id, seq) DO NOTHING)"
            " SELECT flow_id FROM flow"
        )
        # Many flows at once (group commit of creations); returns the ids created.
        self.create_flows, self.create_flows_packed = (
            f"WITH flow AS (INSERT INTO {s}.flows ({_FLOW_COLUMNS})"
            "  SELECT * FROM unnest($9::text[], $10::text[], $11::text[],"
            f"   {_SPLIT_NUMBERS.format(12, 'bigint')}, {_SPLIT_NUMBERS.format(13, 'float8')},"
            f"   {_SPLIT_NUMBERS.format(14, 'float8')})"
            "  ON CONFLICT (flow_id) DO NOTHING RETURNING flow_id),"
            f" inserted AS (INSERT INTO {s}.entries ({_ENTRY_COLUMNS})"
            f"  SELECT b.* FROM {rows} JOIN flow USING (flow_id)"
            "  ON CONFLICT (flow_id, seq) DO NOTHING)"
            " SELECT flow_id FROM flow"
            for rows in (_UNNEST_ENTRIES, _UNNEST_PACKED)
        )
        # One statement, so one implicit transaction and one round trip per batch. Only
        # flows whose state changes get their summary row rewritten (rewriting every row
        # cost a fifth of the statement); readers take the last activity from the entries.
        # ``locked`` takes the flows' row locks in flow_id order (no deadlock between two
        # appends) and, under READ COMMITTED, re-reads each row's newest committed version
        # after waiting for its lock: a fence() that committed first is seen. A fence()
        # arriving later blocks on these locks until this append commits. The locks are
        # FOR NO KEY UPDATE, not FOR SHARE, because the statement updates the same rows
        # (state, updated_at): a shared lock would have to be upgraded, and two appends
        # of one flow would deadlock doing so.
        # Two forms: a plain INSERT, which fails whole on an entry stored already (the
        # caller then sends the second), and INSERT ... ON CONFLICT DO NOTHING, idempotent
        # per entry. A plain insert costs the server a quarter less (no speculative
        # insertion: one index probe and one WAL record fewer per entry), and an entry is
        # sent twice only when a reply was lost (the retry of a commit that landed).
        # The batch's flows ($9) travel packed too when its entries are, and the statement
        # returns the flows it refused (none, but for a fenced or missing flow), not every
        # accepted one: a record per flow and flush less to decode.
        (self.append, self.append_packed, self.append_again, self.append_again_packed) = (
            f"WITH requested AS MATERIALIZED ("
            f"  SELECT * FROM unnest({ids}, {_SPLIT_NUMBERS.format(10, 'bigint')})"
            "   AS m(flow_id, min_token)),"
            " locked AS MATERIALIZED ("
            f" SELECT f.flow_id, f.token FROM {s}.flows f"
            "  WHERE f.flow_id IN (SELECT flow_id FROM requested)"
            "  ORDER BY f.flow_id FOR NO KEY UPDATE),"
            " accepted AS MATERIALIZED ("
            "  SELECT l.flow_id FROM locked l JOIN requested m USING (flow_id)"
            "  WHERE m.min_token >= l.token),"
            f" inserted AS ("
            f"  INSERT INTO {s}.entries ({_ENTRY_COLUMNS})"
            f"  SELECT b.* FROM {rows} JOIN accepted a USING (flow_id){conflict}"
            "  RETURNING flow_id, seq, kind, state),"
            " new_state AS ("
            "  SELECT DISTINCT ON (flow_id) flow_id, state FROM inserted"
            "  WHERE kind = 'flow.state' AND state IS NOT NULL ORDER BY flow_id, seq DESC),"
            f" touched AS ("
            f"  UPDATE {s}.flows f SET updated_at = $11, state = n.state"
            "  FROM new_state n WHERE f.flow_id = n.flow_id)"
            " SELECT m.flow_id FROM requested m"
            "  WHERE NOT EXISTS (SELECT FROM accepted a WHERE a.flow_id = m.flow_id)"
            for conflict in ("", " ON CONFLICT (flow_id, seq) DO NOTHING")
            for rows, ids in ((_UNNEST_ENTRIES, "$9::text[]"), (_UNNEST_PACKED, _SPLIT.format(9)))
        )
        # Lock, compare and raise in one statement; returns the previous token (NULL row
        # when the flow is missing). The caller raises OwnershipLost when it is newer.
        self.fence = (
            f"WITH old AS MATERIALIZED ("
            f" SELECT flow_id, token FROM {s}.flows WHERE flow_id = $1 FOR NO KEY UPDATE),"
            f" raised AS (UPDATE {s}.flows f SET token = $2 FROM old"
            "  WHERE f.flow_id = old.flow_id AND old.token <= $2)"
            " SELECT token FROM old"
        )
        # Retention: the flows given that ended (a final state, $3) and wrote nothing since
        # $2, locked (an append of one of them waits, then finds it gone; one that came
        # first is seen: the state is checked again on the locked row), with their
        # entries and mailboxes, in one statement.
        self.delete_flows = (
            f"WITH doomed AS MATERIALIZED ("
            f" SELECT f.flow_id FROM {s}.flows f"
            "  WHERE f.flow_id = ANY($1::text[]) AND f.state = ANY($3::text[])"
            "   AND f.updated_at < $2"
            f"   AND NOT EXISTS (SELECT FROM {s}.entries e"
            "    WHERE e.flow_id = f.flow_id AND e.at >= $2)"
            "  ORDER BY f.flow_id FOR UPDATE),"
            f" gone_entries AS (DELETE FROM {s}.entries e USING doomed d"
            "  WHERE e.flow_id = d.flow_id),"
            f" gone_events AS (DELETE FROM {s}.sent_events x USING doomed d"
            "  WHERE x.flow_id = d.flow_id)"
            f" DELETE FROM {s}.flows f USING doomed d WHERE f.flow_id = d.flow_id"
            " RETURNING f.flow_id"
        )
        self.read = (
            f"SELECT seq, kind, task, data, state, token, at FROM {s}.entries"
            " WHERE flow_id = $1 AND seq > $2 ORDER BY seq"
        )
        # The same predicate as entries_resume_idx (literal constants, so the planner uses
        # it): entries of every kind that checkpoints do not sum up.
        self.read_not_summed_up = (
            f"SELECT seq, kind, task, data, state, token, at FROM {s}.entries"
            " WHERE flow_id = $1 AND kind NOT IN ('task.started', 'task.succeeded') ORDER BY seq"
        )
        self.get_flow = f"SELECT {self.summary} FROM {s}.flows f WHERE f.flow_id = $1"
        # a flow's mailbox: the flow's row locked (so the numbering is serial per flow),
        # the key looked up, the next number taken
        self.lock_flow = f"SELECT 1 FROM {s}.flows WHERE flow_id = $1 FOR UPDATE"
        sent = "seq, data, key, sent_at"
        self.sent_by_key = (
            f"SELECT {sent} FROM {s}.sent_events WHERE flow_id = $1 AND topic = $2 AND key = $3"
        )
        self.send_event = (
            f"INSERT INTO {s}.sent_events (flow_id, topic, seq, data, key, sent_at)"
            f" SELECT $1, $2, coalesce(max(seq), 0) + 1, $3, $4, $5 FROM {s}.sent_events"
            f" WHERE flow_id = $1 AND topic = $2 RETURNING {sent}"
        )
        self.notify = "SELECT pg_notify($1, $2)"  # (a send's notice: see _postgres_notify)
        self.sent_events = (
            f"SELECT {sent} FROM {s}.sent_events WHERE flow_id = $1 AND topic = $2"
            " AND seq > $3 ORDER BY seq LIMIT $4"
        )

    def list_flows(self, state: str | None, after: str | None) -> tuple[str, list[object]]:
        """The query and its arguments; the caller appends ``limit`` as the last one."""
        where, args = [], []
        if state is not None:
            args.append(state)
            where.append(f"f.state = ${len(args)}")
        if after is not None:
            args.append(after)
            where.append(f"f.flow_id > ${len(args)}")
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        query = (
            f"SELECT {self.summary} FROM {self.s}.flows f{cond}"
            f" ORDER BY f.flow_id LIMIT ${len(args) + 1}"
        )
        return query, list(args)

    def list_newest(self, listing: Listing) -> tuple[str, list[object]]:
        """The newest-first query of ``listing`` and its arguments (the limit last)."""
        where, args = [], []

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if listing.states is not None:
            where.append(f"f.state = ANY({arg(list(listing.states))}::text[])")
        if listing.name is not None:
            if glob_wildcards(listing.name):
                where.append(f"f.name LIKE {arg(_like(listing.name))} ESCAPE '\\'")
            else:
                where.append(f"f.name = {arg(listing.name)}")
        if listing.since is not None:
            where.append(f"f.created_at >= {arg(listing.since)}::float8")
        if listing.until is not None:
            where.append(f"f.created_at < {arg(listing.until)}::float8")
        if listing.after is not None:
            created_at, flow_id = listing.after
            where.append(
                f'(f.created_at, f.flow_id COLLATE "C") < ({arg(created_at)}::float8,'
                f" {arg(flow_id)}::text)"
            )
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        query = (
            f"SELECT {self.summary} FROM {self.s}.flows f{cond}"
            f' ORDER BY f.created_at DESC, f.flow_id COLLATE "C" DESC'
            f" LIMIT {arg(listing.limit + 1)}"
        )
        return query, args

    def migrations(self, version: int) -> Iterator[tuple[int, list[str]]]:
        """``(target version, statements)`` for each step above ``version``."""
        steps = sorted(v for v in _MIGRATIONS if v > version)
        for target in steps:
            statements = [stmt.format(s=self.s) for stmt in _MIGRATIONS[target]]
            if version == 0 and target == steps[0]:
                statements[:0] = [
                    f"CREATE SCHEMA IF NOT EXISTS {self.s}",
                    f"CREATE TABLE IF NOT EXISTS {self.s}.meta"
                    " (key text PRIMARY KEY, value text NOT NULL)",
                ]
            yield target, statements
