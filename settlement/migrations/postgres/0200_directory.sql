-- The open application directory of card uses (issue 8), PostgreSQL dialect. Kept column-for-column
-- equal to migrations/sqlite/0200_directory.sql: one set of queries serves both databases.
--
-- The directory is small (about a hundred uses; an import is capped at 10 000 rows) and is read
-- from an in-process snapshot, so these tables are written by imports only. Every import that
-- changes something is a new VERSION with one CHANGE row per use added, changed or removed; the
-- changes keep the whole row before and after, so any past version can be rebuilt from them.
-- List fields (modes, channels, regions, operations) are '|'-joined codes, as in the CSV file:
-- they are never queried in SQL (filters and search run on the snapshot).

CREATE TABLE directory_versions (
    -- 1, 2, 3 ... in import order.
    version      BIGINT  PRIMARY KEY CHECK (version >= 1),
    -- When the import committed, Unix milliseconds UTC.
    at_ms        BIGINT  NOT NULL,
    -- The operator account that imported (1-64 ASCII [A-Za-z0-9._@-]; published, so never a
    -- person's name or ID number).
    by_account   TEXT    NOT NULL CHECK (length(by_account) BETWEEN 1 AND 64),
    -- SHA-256 of the imported file, lowercase hex (which file made this version).
    file_sha256  TEXT    NOT NULL CHECK (length(file_sha256) = 64),
    added        BIGINT  NOT NULL CHECK (added >= 0),
    changed      BIGINT  NOT NULL CHECK (changed >= 0),
    removed      BIGINT  NOT NULL CHECK (removed >= 0),
    -- Uses in the directory after this version.
    uses_total   BIGINT  NOT NULL CHECK (uses_total >= 0)
);

-- The current directory: one row per use.
CREATE TABLE directory_uses (
    -- Stable number (1-16 ASCII letters, digits, '-').
    number       TEXT    PRIMARY KEY CHECK (length(number) BETWEEN 1 AND 16),
    category     TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    modes        TEXT    NOT NULL,
    channels     TEXT    NOT NULL,
    regions      TEXT    NOT NULL,
    operations   TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('sourced', 'illustrative')),
    source_url   TEXT    NOT NULL,
    source_ref   TEXT    NOT NULL,
    note         TEXT    NOT NULL,
    -- The version that last added or changed this use.
    version      BIGINT  NOT NULL REFERENCES directory_versions (version)
);

CREATE TABLE directory_changes (
    version      BIGINT  NOT NULL REFERENCES directory_versions (version),
    number       TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('added', 'changed', 'removed')),
    -- '|'-joined CSV column names that differ (all of them for added and removed).
    fields       TEXT    NOT NULL,
    -- The whole row as a JSON array of the 11 CSV fields; NULL before an add / after a removal.
    before_row   TEXT,
    after_row    TEXT,
    PRIMARY KEY (version, number)
);
