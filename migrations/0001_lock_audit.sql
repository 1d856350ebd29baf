-- The audit trail: one row per applied change of a Lockplane group (docs/audit.md).
--
-- Partitioned by day on "timestamp" (partitions are created ahead of time by the consumer,
-- and for any day a batch needs); retention drops whole partitions. A row's identity is
-- (group_id, log_index, position); lock_audit_ids holds the identities stored, so that an
-- event published twice (after a leader change) is stored once even when its copies carry
-- different timestamps (meta events).
CREATE TABLE lock_audit (
    group_id       integer     NOT NULL,
    log_index      bigint      NOT NULL,
    position       integer     NOT NULL,
    "timestamp"    timestamptz NOT NULL,
    event_type     text        NOT NULL,
    tenant         text        NOT NULL,
    tenant_id      bigint      NOT NULL,
    resource_id    text,
    owner_id       text,
    fencing_token  bigint,
    session_id     text,
    region         text        NOT NULL,
    details        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    schema_version integer     NOT NULL,
    PRIMARY KEY (group_id, log_index, position, "timestamp")
) PARTITION BY RANGE ("timestamp");

CREATE TABLE lock_audit_ids (
    group_id    integer     NOT NULL,
    log_index   bigint      NOT NULL,
    position    integer     NOT NULL,
    "timestamp" timestamptz NOT NULL,
    PRIMARY KEY (group_id, log_index, position)
);
CREATE INDEX lock_audit_ids_timestamp ON lock_audit_ids ("timestamp");

-- The cookbook's queries (docs/audit.md): one key's history, one event type over time,
-- one owner's or one tenant's activity.
CREATE INDEX lock_audit_resource ON lock_audit (resource_id, "timestamp" DESC);
CREATE INDEX lock_audit_type ON lock_audit (event_type, "timestamp");
CREATE INDEX lock_audit_owner ON lock_audit (owner_id, "timestamp");
CREATE INDEX lock_audit_tenant ON lock_audit (tenant, "timestamp");

-- Messages the consumer could not read as an event (damaged, or a schema version it does
-- not know): kept, not lost, with where they came from.
CREATE TABLE lock_audit_unreadable (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    error       text        NOT NULL,
    payload     bytea,
    PRIMARY KEY (topic, partition, "offset")
);
