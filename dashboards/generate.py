"""Lockplane's three Grafana dashboards, generated with Grafana's foundation SDK
(grafana-foundation-sdk on PyPI, the version in requirements.txt) so that they share one
set of queries, units and layouts (docs/decisions/0031-dashboards-from-code.md).

    python3 dashboards/generate.py [OUT_DIR]    # default: dashboards/

writes lock-operations-overview.json, lock-contention.json and system-health.json. The
committed files are this script's output; scripts/dashboards.sh checks that they are
current, and services/lockplane/tests/dashboards.rs evaluates every PromQL expression
against a live Prometheus scraping a loaded cluster, and every SQL query against its
audit rows.
"""

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, DynamicConfigValue

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${prometheus}")
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid="${postgres}")
RATE = "$__rate_interval"

# Acquire answers that are the service failing, not the caller or the lock contract.
FAILURES = "internal|unavailable|not_leader|unknown_group|not_initialized"


def prom(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend or "__auto")
        .ref_id(ref)
        .datasource(PROMETHEUS)
    )


class _SqlQuery(cogvariants.Dataquery):
    """A query of Grafana's PostgreSQL data source (the SDK has no builder for it)."""

    def __init__(self, ref_id: str, sql: str, fmt: str) -> None:
        self.ref_id, self.sql, self.fmt = ref_id, sql, fmt

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": POSTGRES.to_json(),
            "editorMode": "code",
            "format": self.fmt,
            "rawQuery": True,
            "rawSql": self.sql,
        }


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builds a [`_SqlQuery`]: `fmt` is `table` or `time_series`."""

    def __init__(self, sql: str, ref: str = "A", fmt: str = "table") -> None:
        self._query = _SqlQuery(ref, sql.strip(), fmt)

    def build(self) -> cogvariants.Dataquery:
        return self._query


def quantiles(metric: str, by: str = "") -> list[prometheus.Dataquery]:
    """p50, p95 and p99 of histogram `metric`, per `by` label if given."""
    group = f"le, {by}" if by else "le"
    per = f" {{{{{by}}}}}" if by else ""
    return [
        prom(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"p{int(q * 100)}{per}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def series(title: str, unit: str, targets: list, width: int = 12, description: str = "") -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).span(width).height(8).datasource(PROMETHEUS)
    if description:
        panel = panel.description(description)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def single(title: str, unit: str, target, description: str = "") -> stat.Panel:
    panel = stat.Panel().title(title).unit(unit).span(6).height(4).datasource(PROMETHEUS).with_target(target)
    return panel.description(description) if description else panel


def base(title: str, uid: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["lockplane"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(dashboard.DatasourceVariable("prometheus").label("Prometheus").type("prometheus"))
    )


def overview() -> dashboard.Dashboard:
    acquires = f"rate(lockplane_lock_acquisitions_total[{RATE}])"
    lock_calls = 'lockplane_gateway_requests_total{route=~"/v1/locks/.*"}'
    return (
        base(
            "Lockplane: Lock Operations Overview",
            "lockplane-overview",
            "Acquires, their latency and errors, across the cluster and by region.",
        )
        .with_row(dashboard.Row("Now"))
        .with_panel(single("Acquires per second", "reqps", prom(f"sum({acquires})")))
        .with_panel(
            single(
                "Success rate",
                "percentunit",
                prom(f'sum(rate(lockplane_lock_acquisitions_total{{result=~"granted|granted_after_wait"}}[{RATE}])) / sum({acquires})'),
                "Acquires granted (at once or after a wait), of all acquires answered.",
            )
        )
        .with_panel(single("Locks held", "short", prom("sum(lockplane_locks_held)")))
        .with_panel(single("Sessions open", "short", prom("sum(lockplane_lock_sessions)")))
        .with_row(dashboard.Row("Acquires"))
        .with_panel(series("Acquires per second by result", "reqps", [prom(f"sum by (result) ({acquires})", "{{result}}")]))
        .with_panel(
            series(
                "Acquire latency (not queued)",
                "s",
                quantiles("lockplane_lock_acquire_duration_seconds"),
                description="Acquires answered without queueing: granted at once or refused.",
            )
        )
        .with_panel(
            series(
                "Error rate",
                "percentunit",
                [
                    prom(
                        f'(sum(rate({lock_calls[:-1]},code=~"5.."}}[{RATE}])) or vector(0)) / sum(rate({lock_calls}[{RATE}]))',
                        "5xx of lock calls (gateways)",
                    ),
                    prom(
                        f'(sum(rate(lockplane_lock_acquisitions_total{{result=~"{FAILURES}"}}[{RATE}])) or vector(0)) / sum({acquires})',
                        "acquires failed at the nodes",
                        "B",
                    ),
                ],
                description="Answers that are not an outcome of the lock contract (503, 500, not leader).",
            )
        )
        .with_panel(
            series(
                "Acquires per second by region",
                "reqps",
                [prom(f"sum by (region) ({acquires} * on (instance) group_left (region) lockplane_node_info)", "{{region}}")],
            )
        )
        .with_panel(
            series(
                "Time queued (blocking acquires)",
                "s",
                quantiles("lockplane_lock_wait_duration_seconds"),
                description="From joining a key's queue to the grant or the end of the wait.",
            )
        )
        .with_panel(
            series(
                "Changes per second by kind",
                "ops",
                [prom(f"sum by (change) (max by (group, change) (rate(lockplane_lock_changes_total[{RATE}])))", "{{change}}")],
                description="Applied changes (every replica counts its group's; the largest per group counts once).",
            )
        )
        .with_panel(
            series(
                "Gateway latency p99 by route",
                "s",
                [prom(f"histogram_quantile(0.99, sum by (le, route) (rate(lockplane_gateway_request_duration_seconds_bucket[{RATE}])))", "{{route}}")],
                width=24,
                description="Blocking acquires include their wait.",
            )
        )
    )


CONTENDED_KEYS = """
SELECT tenant, resource_id AS key, count(*) AS contended
FROM lock_audit
WHERE $__timeFilter("timestamp")
  AND (event_type = 'WAIT_STARTED'
       OR (event_type = 'REJECTED' AND details->>'reason' = 'held'))
GROUP BY tenant, resource_id
ORDER BY contended DESC
LIMIT 10
"""

HOLDS_BY_PREFIX = """
SELECT split_part(a.resource_id, ':', 1) AS key_prefix,
       count(*) AS holds,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e."timestamp" - a."timestamp")) AS p50_seconds,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM e."timestamp" - a."timestamp")) AS p95_seconds,
       max(extract(epoch FROM e."timestamp" - a."timestamp")) AS max_seconds
FROM lock_audit a
JOIN LATERAL (
    SELECT "timestamp" FROM lock_audit e
    WHERE e.group_id = a.group_id AND e.tenant_id = a.tenant_id
      AND e.resource_id = a.resource_id AND e.fencing_token = a.fencing_token
      AND e.event_type IN ('RELEASED', 'EXPIRED') AND e."timestamp" >= a."timestamp"
    ORDER BY e."timestamp" LIMIT 1
) e ON true
WHERE a.event_type = 'ACQUIRED' AND $__timeFilter(a."timestamp")
GROUP BY key_prefix
ORDER BY p95_seconds DESC
LIMIT 20
"""


def contention() -> dashboard.Dashboard:
    contended = f"sum(rate(lockplane_lock_contended_total[{RATE}]))"
    return (
        base(
            "Lockplane: Lock Contention",
            "lockplane-contention",
            "Which keys callers queue on, how often, and how long holds last. Keys come from the audit trail in PostgreSQL, never from metric labels.",
        )
        .with_variable(dashboard.DatasourceVariable("postgres").label("Audit trail (PostgreSQL)").type("grafana-postgresql-datasource"))
        .with_panel(
            table.Panel()
            .title("Most contended keys")
            .description("Acquires that queued or were refused as held, by key, in the time range (lock_audit).")
            .span(12)
            .height(10)
            .datasource(POSTGRES)
            .with_target(Sql(CONTENDED_KEYS))
        )
        .with_panel(series("Contended acquires per second", "reqps", [prom(contended, "contended")], width=6))
        .with_panel(
            series(
                "Contended share of acquires",
                "percentunit",
                [prom(f"{contended} / sum(rate(lockplane_lock_acquisitions_total[{RATE}]))", "contended")],
                width=6,
            )
        )
        .with_panel(
            table.Panel()
            .title("Hold duration by key prefix")
            .description("From each ACQUIRED row to its RELEASED or EXPIRED row; the prefix is the key up to its first ':'.")
            .span(12)
            .height(10)
            .override_by_name("p50_seconds", [DynamicConfigValue(id_val="unit", value="s")])
            .override_by_name("p95_seconds", [DynamicConfigValue(id_val="unit", value="s")])
            .override_by_name("max_seconds", [DynamicConfigValue(id_val="unit", value="s")])
            .datasource(POSTGRES)
            .with_target(Sql(HOLDS_BY_PREFIX))
        )
        .with_panel(series("Time queued", "s", quantiles("lockplane_lock_wait_duration_seconds")))
    )


def system_health() -> dashboard.Dashboard:
    node = 'job="lockplane-node"'
    return (
        base(
            "Lockplane: System Health",
            "lockplane-system-health",
            "Per node: Raft leadership and commit latency, the write-ahead log, the cache, the audit pipeline, CPU and memory.",
        )
        .with_row(dashboard.Row("Raft"))
        .with_panel(series("Groups led per node", "short", [prom(f"sum by (instance) (lockplane_raft_leader{{{node}}})", "{{instance}}")]))
        .with_panel(
            series(
                "Leader changes and elections",
                "ops",
                [
                    prom(f"sum by (instance) (rate(lockplane_raft_leader_changes_total[{RATE}]))", "changes {{instance}}"),
                    prom(f"sum by (instance) (rate(lockplane_raft_elections_total[{RATE}]))", "elections {{instance}}", "B"),
                ],
            )
        )
        .with_panel(series("Commit latency (propose to applied)", "s", quantiles("lockplane_raft_proposal_duration_seconds", "instance")))
        .with_panel(series("Groups without a leader", "short", [prom("count(sum by (group) (lockplane_raft_leader) == 0) or vector(0)", "groups")]))
        .with_row(dashboard.Row("Storage"))
        .with_panel(series("fsync latency", "s", quantiles("lockplane_wal_fsync_duration_seconds", "instance")))
        .with_panel(
            series(
                "Records per fsync batch",
                "short",
                [prom(f"sum by (instance) (rate(lockplane_wal_batch_records_sum[{RATE}])) / sum by (instance) (rate(lockplane_wal_batch_records_count[{RATE}]))", "{{instance}}")],
            )
        )
        .with_panel(
            series(
                "Log size",
                "short",
                [
                    prom("sum by (instance) (lockplane_raft_log_entries)", "entries {{instance}}"),
                    prom("lockplane_wal_segments", "segments {{instance}}", "B"),
                ],
            )
        )
        .with_panel(
            series(
                "Data directory used",
                "percentunit",
                [prom("1 - lockplane_data_dir_available_bytes / lockplane_data_dir_capacity_bytes", "{{instance}}")],
            )
        )
        .with_row(dashboard.Row("Cache and audit pipeline"))
        .with_panel(
            series(
                "Status cache hit ratio",
                "percentunit",
                [
                    prom(
                        f"sum(rate(lockplane_gateway_cache_hits_total[{RATE}])) / (sum(rate(lockplane_gateway_cache_hits_total[{RATE}])) + sum(rate(lockplane_gateway_cache_misses_total[{RATE}])) + sum(rate(lockplane_gateway_cache_fallbacks_total[{RATE}])))",
                        "hits",
                    )
                ],
            )
        )
        .with_panel(series("Redis memory", "bytes", [prom("max(lockplane_gateway_redis_used_memory_bytes)", "used")]))
        .with_panel(
            series(
                "Audit backlog and consumer lag",
                "short",
                [
                    prom("sum(lockplane_audit_backlog_events)", "unpublished (nodes)"),
                    prom("sum(lockplane_audit_consumer_lag_messages)", "consumer lag", "B"),
                ],
            )
        )
        .with_panel(series("Audit publish latency", "s", quantiles("lockplane_audit_publish_duration_seconds")))
        .with_row(dashboard.Row("Processes"))
        .with_panel(series("CPU", "percentunit", [prom(f"rate(lockplane_process_cpu_seconds_total[{RATE}])", "{{job}} {{instance}}")]))
        .with_panel(series("Memory", "bytes", [prom("lockplane_process_resident_memory_bytes", "{{job}} {{instance}}")]))
    )


DASHBOARDS = {
    "lock-operations-overview.json": overview,
    "lock-contention.json": contention,
    "system-health.json": system_health,
}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    out.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        text = json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True)
        (out / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
