"""Generate `dashboards/gateway_command_center.json` from the panel list below.

The JSON model is what Grafana loads and what `monitoring/prove_dashboard.py` checks
against a real Prometheus; this file is the readable source of it. Edit the panels here,
then regenerate (a test fails while the two differ):

    python monitoring/grafana/build_dashboard.py          # rewrite the JSON
    python monitoring/grafana/build_dashboard.py --check  # exit 1 if it is stale

Query conventions (the README explains them):
* every selector carries `job="gateway"`, so the metric-name check can find it;
* cluster gauges computed from Redis are identical on every replica: `max without
  (instance)`, never `sum`; process series repeat once per port: `max without (audience)`;
* ratios fall back to 0 (`or <denominator> * 0`) so a panel reads 0 %, not "No data",
  while traffic flows and nothing fails, and while nothing flows at all (the
  denominator is kept only where it is `> 0`: 0 / 0 would be NaN, which Grafana draws
  as nothing);
* quantiles fall back to 0 the same way when a histogram saw no observations in the
  window (its quantile is NaN then): `(histogram_quantile(...) >= 0) or count * 0`.
  With every known series exported at 0 from the start (see the README, "Zeros on a
  quiet system"), each panel shows a value on a quiet system;
  `prove_dashboard.py --quiet` proves it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).parent / "dashboards" / "gateway_command_center.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"
AUD = 'audience=~"$audience"'
PLAT = 'platform=~"$platform"'
NOT_OPS = 'handler!~"/health|/ready|/metrics"'


@dataclass
class Panel:
    """One panel: title, unit and its PromQL targets as (expr, legend) pairs."""

    title: str
    unit: str
    targets: list[tuple[str, str]]
    description: str = ""
    kind: str = "timeseries"
    width: int = 8
    mappings: list[dict[str, Any]] = field(default_factory=list)


def ratio(selector: str, part: str, by: str) -> str:
    """part/total by `by`, falling back to 0 while the part has no series."""
    total = f"sum by ({by}) (rate(http_requests_total{{{selector}}}{RATE}))"
    part_rate = f"sum by ({by}) (rate(http_requests_total{{{selector}, {part}}}{RATE}))"
    return f"({part_rate} / ({total} > 0)) or ({total} * 0)"


def quantile(q: float, metric: str, selector: str, by: str) -> str:
    """histogram_quantile over a rate of buckets, 0 while nothing was observed."""
    buckets = f"sum by ({by}) (rate({metric}_bucket{{{selector}}}{RATE}))"
    groups = ", ".join(label for label in by.split(", ") if label != "le")
    total = f"sum by ({groups}) " if groups else "sum "
    count = f"{total}(rate({metric}_count{{{selector}}}{RATE}))"
    return f"(histogram_quantile({q}, {buckets}) >= 0) or ({count} * 0)"


def routed_ratio(selector: str) -> str:
    """Celery's share of first hand-outs by audience and platform, 0 while none."""
    metric = "gateway_tasks_routed_total"
    total = f"sum by (audience, platform) (rate({metric}{{{selector}}}{RATE}))"
    celery = f'sum by (audience, platform) (rate({metric}{{{selector}, backend="celery"}}{RATE}))'
    return f"({celery} / ({total} > 0)) or ({total} * 0)"


HTTP = f'job="gateway", {AUD}'
WORK = f'job="gateway", {AUD}, {PLAT}'
UP_DOWN = [
    {"type": "value", "options": {"0": {"text": "down", "color": "red"}}},
    {"type": "value", "options": {"1": {"text": "up", "color": "green"}}},
]
BREAKER = [
    {"type": "value", "options": {"0": {"text": "closed", "color": "green"}}},
    {"type": "value", "options": {"1": {"text": "half-open", "color": "orange"}}},
    {"type": "value", "options": {"2": {"text": "open", "color": "red"}}},
]

ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Public traffic",
        [
            Panel(
                "Requests/s by route and status",
                "reqps",
                [
                    (
                        "sum by (audience, handler, status) "
                        f"(rate(http_requests_total{{{HTTP}}}{RATE}))",
                        "{{audience}} {{handler}} {{status}}",
                    )
                ],
                "Routes are templates (never raw paths); unmatched paths count as `none`.",
                width=12,
            ),
            Panel(
                "Latency p50 / p95 / p99",
                "s",
                [
                    (
                        quantile(q, "http_request_duration_seconds", f"{HTTP}, {NOT_OPS}", "le"),
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                "Across the selected audiences, probes and scrapes excluded. Internal "
                "ports include lease long-polls, which are slow on purpose.",
                width=12,
            ),
            Panel(
                "4xx and 5xx ratio",
                "percentunit",
                [
                    (ratio(f"{HTTP}, {NOT_OPS}", 'status=~"4.."', "audience"), "{{audience}} 4xx"),
                    (ratio(f"{HTTP}, {NOT_OPS}", 'status=~"5.."', "audience"), "{{audience}} 5xx"),
                ],
                "Share of requests per audience; the 5xx line is what GatewayHigh5xxRatio "
                "alerts on (above 5 %).",
                width=12,
            ),
            Panel(
                "Auth failures by reason",
                "reqps",
                [
                    (
                        "sum by (reason) "
                        f'(rate(gateway_auth_failures_total{{job="gateway"}}{RATE}))',
                        "{{reason}}",
                    )
                ],
                "Public port only; a burst of one reason usually means a client bug or "
                "a credential-stuffing attempt.",
                width=12,
            ),
        ],
    ),
    (
        "Protection",
        [
            Panel(
                "Rate-limited and quota-exceeded by tier",
                "reqps",
                [
                    (
                        "sum by (tier, kind) "
                        f'(rate(gateway_rate_limited_total{{job="gateway"}}{RATE}))',
                        "{{tier}} {{kind}}",
                    )
                ],
                "429s per tier: kind=rate is the per-second limiter, kind=quota the "
                "daily/monthly quota.",
            ),
            Panel(
                "Cache hit ratio",
                "percentunit",
                [
                    (
                        "(sum (rate(gateway_cache_requests_total"
                        f'{{job="gateway", result="hit"}}{RATE}))'
                        f' / (sum (rate(gateway_cache_requests_total{{job="gateway"}}{RATE})) > 0))'
                        f' or (sum (rate(gateway_cache_requests_total{{job="gateway"}}{RATE}))'
                        " * 0)",
                        "hit ratio",
                    )
                ],
                "Hits over all cache lookups (hit, miss, stale, bypass).",
            ),
            Panel(
                "Cache results",
                "reqps",
                [
                    (
                        "sum by (result) "
                        f'(rate(gateway_cache_requests_total{{job="gateway"}}{RATE}))',
                        "{{result}}",
                    )
                ],
            ),
            Panel(
                "Single-flight waits",
                "reqps",
                [
                    (
                        "sum by (outcome) "
                        f'(rate(gateway_singleflight_waits_total{{job="gateway"}}{RATE}))',
                        "{{outcome}}",
                    )
                ],
                "Requests that waited for another request's upstream call instead of "
                "making their own; timeouts mean the leader was slower than the wait.",
            ),
            Panel(
                "Circuit breaker state",
                "none",
                [
                    (
                        'max by (upstream) (gateway_circuit_breaker_state{job="gateway"})',
                        "{{upstream}}",
                    )
                ],
                "Worst state across replicas: 0 closed, 1 half-open, 2 open.",
                kind="state-timeline",
                mappings=BREAKER,
            ),
            Panel(
                "Upstream latency p95 / p99",
                "s",
                [
                    (
                        quantile(
                            q,
                            "gateway_upstream_request_duration_seconds",
                            'job="gateway"',
                            "upstream, le",
                        ),
                        f"{{{{upstream}}}} p{round(q * 100)}",
                    )
                    for q in (0.95, 0.99)
                ],
            ),
            Panel(
                "Upstream requests by status",
                "reqps",
                [
                    (
                        "sum by (upstream, status) "
                        f'(rate(gateway_upstream_requests_total{{job="gateway"}}{RATE}))',
                        "{{upstream}} {{status}}",
                    )
                ],
                "Errors show as 5xx statuses or as non-HTTP outcomes (timeouts, "
                "connection errors, breaker rejections).",
                width=12,
            ),
            Panel(
                "Limiter fallbacks",
                "reqps",
                [
                    (
                        f'sum (rate(gateway_limiter_fallbacks_total{{job="gateway"}}{RATE}))',
                        "fallbacks",
                    )
                ],
                "Requests limited by the in-process fallback because Redis was unreachable.",
                width=12,
            ),
        ],
    ),
    (
        "Worker plane",
        [
            Panel(
                "Queue depth by platform and state",
                "short",
                [
                    (
                        f"max without (instance) (gateway_queue_depth{{{WORK}}})",
                        "{{audience}} {{platform}} {{state}}",
                    )
                ],
                "Cluster gauge computed from Redis: every replica reports the same value, "
                "so it is aggregated with max, never summed.",
                width=12,
            ),
            Panel(
                "Oldest ready task age",
                "s",
                [
                    (
                        "max without (instance) "
                        f"(gateway_queue_oldest_ready_age_seconds{{{WORK}}})",
                        "{{audience}} {{platform}}",
                    )
                ],
                "How long the oldest ready task has waited for a worker "
                "(OldestReadyTaskTooOld alerts above 10 min).",
                width=12,
            ),
            Panel(
                "Enqueued, leased, completed",
                "ops",
                [
                    (
                        f"sum by (audience, platform) (rate({name}{{{WORK}}}{RATE}))",
                        f"{label} {{{{audience}}}} {{{{platform}}}}",
                    )
                    for name, label in (
                        ("gateway_tasks_enqueued_total", "enqueued"),
                        ("gateway_tasks_leased_total", "leased"),
                        ("gateway_tasks_completed_total", "completed"),
                    )
                ],
            ),
            Panel(
                "Completions by outcome",
                "ops",
                [
                    (
                        "sum by (audience, outcome) "
                        f"(rate(gateway_tasks_completed_total{{{WORK}}}{RATE}))",
                        "{{audience}} {{outcome}}",
                    )
                ],
            ),
            Panel(
                "Lease expirations, retries, dead letters",
                "ops",
                [
                    (
                        f"sum by (audience, platform) (rate({name}{{{WORK}}}{RATE}))",
                        f"{label} {{{{audience}}}} {{{{platform}}}}",
                    )
                    for name, label in (
                        ("gateway_lease_expirations_total", "expired"),
                        ("gateway_task_retries_total", "retried"),
                        ("gateway_tasks_dead_lettered_total", "dead-lettered"),
                    )
                ],
            ),
            Panel(
                "Active workers",
                "short",
                [
                    (
                        f'max without (instance) (gateway_workers_active{{job="gateway", {AUD}}})',
                        "{{audience}}",
                    )
                ],
                "Workers with a live heartbeat (cluster gauge).",
            ),
            Panel(
                "Worker heartbeat age (max)",
                "s",
                [
                    (
                        "max without (instance) "
                        f'(gateway_worker_heartbeat_age_max_seconds{{job="gateway", {AUD}}})',
                        "{{audience}}",
                    )
                ],
            ),
            Panel(
                "Results committed",
                "ops",
                [
                    (
                        "sum by (audience, platform) "
                        f"(rate(gateway_results_committed_total{{{WORK}}}{RATE}))",
                        "{{audience}} {{platform}}",
                    )
                ],
            ),
            Panel(
                "Celery share configured, in force, realised",
                "percentunit",
                [
                    (
                        f"max without (instance) (gateway_celery_route_share{{{WORK}}})",
                        "{{source}} {{audience}} {{platform}} {{kind}}",
                    ),
                    (
                        routed_ratio(WORK),
                        "realised {{audience}} {{platform}}",
                    ),
                ],
                "Per Celery route: the share in CELERY_ROUTES, the one in force (set at "
                "runtime), and the share of first hand-outs that went to Celery. Realised "
                "is per platform, over every route of it; it trails a change by the time "
                "queued tasks take to be handed out.",
            ),
            Panel(
                "Tasks routed by backend",
                "ops",
                [
                    (
                        "sum by (audience, backend) "
                        f"(rate(gateway_tasks_routed_total{{{WORK}}}{RATE}))",
                        "{{audience}} {{backend}}",
                    )
                ],
                "First hand-outs: native when a HTTP worker leased the task, celery when "
                "the dispatcher published it.",
            ),
            Panel(
                "Celery results lag p50 / p95",
                "s",
                [
                    (
                        quantile(
                            q, "gateway_celery_results_lag_seconds", f'job="gateway", {AUD}', "le"
                        ),
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ],
                "From publish to Celery to the result consumed (broker queueing and run "
                "time). 0 while no Celery result arrived.",
            ),
            Panel(
                "Client jobs created and finished",
                "ops",
                [
                    (
                        "sum by (kind) "
                        f'(rate(gateway_jobs_created_total{{job="gateway", {AUD}}}{RATE}))',
                        "created {{kind}}",
                    ),
                    (
                        "sum by (state) "
                        f'(rate(gateway_jobs_finished_total{{job="gateway", {AUD}}}{RATE}))',
                        "finished {{state}}",
                    ),
                ],
                "Jobs submitted on the public port, and jobs reaching a terminal state "
                "(completions counted by the worker ports, cancels and expiry by the public "
                "port): summed over audience.",
                width=12,
            ),
            Panel(
                "Client job items and upkeep",
                "ops",
                [
                    (
                        "sum by (outcome) "
                        f'(rate(gateway_job_items_finished_total{{job="gateway", {AUD}}}{RATE}))',
                        "items {{outcome}}",
                    ),
                    (
                        "sum by (action) "
                        f'(rate(gateway_job_upkeep_total{{job="gateway", {AUD}}}{RATE}))',
                        "upkeep {{action}}",
                    ),
                ],
                "Each item leaves pending once. Upkeep rolled_back or reattached above 0 "
                "means a gateway died mid-submission or Redis lost tasks.",
                width=12,
            ),
        ],
    ),
    (
        "Live streams",
        [
            Panel(
                "Open streams by kind",
                "short",
                [
                    (
                        f"sum by (kind) (gateway_streams_open{{{HTTP}}})",
                        "{{kind}} streams",
                    ),
                    (
                        f"sum (gateway_stream_subscriptions{{{HTTP}}})",
                        "jobs followed",
                    ),
                ],
                "Connections open on the public ports, summed over replicas (each counts "
                "its own). Jobs followed: one per SSE stream and one per WebSocket "
                "subscription, what SSE_MAX_PER_JOB caps.",
            ),
            Panel(
                "Stream events sent",
                "ops",
                [
                    (
                        f"sum by (kind) (rate(gateway_stream_events_sent_total{{{HTTP}}}{RATE}))",
                        "{{kind}}",
                    )
                ],
                "Frames handed to clients: live job events plus the snapshot or resync "
                "each follow starts with.",
            ),
            Panel(
                "Stream resumes and resyncs",
                "ops",
                [
                    (
                        f"sum by (kind) (rate({name}{{{HTTP}}}{RATE}))",
                        f"{label} {{{{kind}}}}",
                    )
                    for name, label in (
                        ("gateway_stream_resumes_total", "resumed"),
                        ("gateway_stream_resyncs_total", "resynced"),
                    )
                ],
                "Reconnects with a last event id; resynced are those whose missed events "
                "Redis no longer held (sent the full state instead). Resyncs close to "
                "resumes mean clients stay away longer than the job streams are kept.",
            ),
            Panel(
                "Slow-client drops and refusals",
                "ops",
                [
                    (
                        f"sum by (kind) (rate(gateway_stream_slow_drops_total{{{HTTP}}}{RATE}))",
                        "slow {{kind}}",
                    ),
                    (
                        "sum by (kind, reason) "
                        f"(rate(gateway_stream_refusals_total{{{HTTP}}}{RATE}))",
                        "refused {{kind}} {{reason}}",
                    ),
                    (
                        f"sum (rate(gateway_stream_feed_read_failures_total{{{HTTP}}}{RATE}))",
                        "feed read failures",
                    ),
                ],
                "Slow: the client stopped reading until STREAM_BUFFER_EVENTS events were "
                "queued for it, so it was disconnected (it resumes from its last id). "
                "Refused: 429s at the follower caps, and bad tickets. Feed read failures "
                "are Redis errors of the process's one event reader.",
            ),
            Panel(
                "Stream event lag p50 / p99",
                "s",
                [
                    (
                        quantile(q, "gateway_stream_event_lag_seconds", HTTP, "kind, le"),
                        f"{{{{kind}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ],
                "From an event's commit to its frame reaching the connection: the "
                "publish, the feed read and any wait in the connection's outbox.",
            ),
            Panel(
                "Streams ended by reason",
                "ops",
                [
                    (
                        "sum by (kind, reason) "
                        f"(rate(gateway_streams_ended_total{{{HTTP}}}{RATE}))",
                        "{{kind}} {{reason}}",
                    )
                ],
                "finished: after the job's terminal event; client: the client went away; "
                "slow: dropped (see drops); shutdown: the process stopped and told the "
                "client to reconnect.",
            ),
        ],
    ),
    (
        "Webhooks",
        [
            Panel(
                "Webhook deliveries by outcome",
                "ops",
                [
                    (
                        "sum by (outcome) "
                        f"(rate(gateway_webhook_deliveries_total{{{HTTP}}}{RATE}))",
                        "{{outcome}}",
                    ),
                    (
                        f"sum (rate(gateway_webhook_fanout_total{{{HTTP}}}{RATE}))",
                        "created",
                    ),
                ],
                "Attempts recorded: succeeded (2xx), failed_retry (another attempt is "
                "scheduled), dead (no retries left), gone (410 disabled the endpoint). "
                "Created: deliveries fanned out of job events.",
            ),
            Panel(
                "Webhook attempt latency p50 / p99",
                "s",
                [
                    (
                        quantile(q, "gateway_webhook_attempt_seconds", HTTP, "le"),
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ],
                "One attempt: connect, send, read the answer up to its cap. Timeouts "
                "(WEBHOOK_TIMEOUT_S) are included, so a dead receiver pulls p99 up.",
            ),
            Panel(
                "Webhook endpoints disabled",
                "short",
                [
                    (
                        "sum by (reason) "
                        f"(increase(gateway_webhook_endpoints_disabled_total{{{HTTP}}}[1h]))",
                        "{{reason}} (last hour)",
                    )
                ],
                "Disabled by delivery: gone (the receiver answered 410), failing (no "
                "success for WEBHOOK_DISABLE_AFTER_S). The owner re-enables with PATCH.",
            ),
            Panel(
                "Webhook outbox backlog",
                "short",
                [
                    (f"max (gateway_webhook_outbox_pending{{{HTTP}}})", "pending + sending"),
                    (f"max (gateway_webhook_rate_delayed{{{HTTP}}})", "held by endpoint rate"),
                ],
                "Cluster gauges read from PostgreSQL: deliveries of enabled endpoints "
                "waiting for a first attempt or a retry, or being sent; of those due, how "
                "many wait for their endpoint's rate (webhook_events_per_s of its tier).",
                width=12,
            ),
            Panel(
                "Oldest due webhook delivery",
                "s",
                [(f"max (gateway_webhook_outbox_oldest_seconds{{{HTTP}}})", "oldest due")],
                "Cluster gauge: how long the oldest due pending delivery has waited. "
                "Growing means the dispatchers do not keep up (WebhookOutboxBacklog).",
                width=12,
            ),
            Panel(
                "Replicas listening for outbox inserts",
                "short",
                [
                    (
                        f"sum (gateway_webhook_listening{{{HTTP}}})",
                        "listening",
                    ),
                    (
                        f"count (gateway_webhook_listening{{{HTTP}}})",
                        "replicas",
                    ),
                ],
                "Replicas whose LISTEN connection is up (woken at once on an insert) out of "
                "all. A replica not listening delivers on its poll "
                "(WEBHOOK_DISPATCH_INTERVAL_S): slower, nothing lost.",
                width=24,
            ),
            Panel(
                "Parcel changes recorded",
                "ops",
                [
                    (f"sum (rate(gateway_parcel_changes_total{{{HTTP}}}{RATE}))", "recorded"),
                    (
                        f"sum (rate(gateway_parcel_change_publish_failures_total{{{HTTP}}}{RATE}))",
                        "not sent live",
                    ),
                ],
                "parcel.changed events recorded by the parcel port's results (one per watch "
                "and changed parcel). Not sent live: Redis refused the publish; webhooks and "
                "the changes log still have them.",
                width=24,
            ),
        ],
    ),
    (
        "Proxy pool and runtime",
        [
            Panel(
                "Proxies by state",
                "short",
                [
                    (
                        f'max by (platform, state) (gateway_proxies{{job="gateway", {PLAT}}})',
                        "{{platform}} {{state}}",
                    )
                ],
                "Cluster gauge: available, leased, cooling (after a ban).",
            ),
            Panel(
                "Proxy bans by platform",
                "ops",
                [
                    (
                        "sum by (platform) "
                        f'(rate(gateway_proxy_bans_total{{job="gateway", {PLAT}}}{RATE}))',
                        "{{platform}}",
                    )
                ],
            ),
            Panel(
                "Proxy leases and releases by outcome",
                "ops",
                [
                    (
                        f'sum by (platform, outcome) (rate({name}{{job="gateway", {PLAT}}}{RATE}))',
                        f"{label} {{{{platform}}}} {{{{outcome}}}}",
                    )
                    for name, label in (
                        ("gateway_proxy_leases_total", "lease"),
                        ("gateway_proxy_releases_total", "release"),
                    )
                ],
            ),
            Panel(
                "Readiness of Redis and PostgreSQL",
                "none",
                [
                    (
                        'max without (audience) (gateway_dependency_up{job="gateway"})',
                        "{{instance}} {{dependency}}",
                    )
                ],
                "Background probe per replica, every 5 s.",
                kind="state-timeline",
                mappings=UP_DOWN,
            ),
            Panel(
                "Event-loop lag",
                "s",
                [
                    (
                        'max without (audience) (gateway_event_loop_lag_seconds{job="gateway"})',
                        "{{instance}}",
                    )
                ],
                "Worst timer wake-up delay over the last 10 s; everything on every port "
                "of the process waits this long.",
            ),
            Panel(
                "Time stopped in garbage collection",
                "percentunit",
                [
                    (
                        "max without (audience) (sum without (generation) "
                        f'(rate(gateway_gc_pause_seconds_sum{{job="gateway"}}{RATE})))',
                        "{{instance}}",
                    )
                ],
                "Share of wall time the process stood still in the cyclic collector (every "
                "port waits). The start-up heap is frozen, so this stays near 0; "
                "gateway_gc_pause_seconds has the pauses by generation and length.",
            ),
            Panel(
                "Memory (RSS)",
                "bytes",
                [
                    (
                        'max without (audience) (process_resident_memory_bytes{job="gateway"})',
                        "{{instance}}",
                    )
                ],
            ),
            Panel(
                "CPU",
                "percentunit",
                [
                    (
                        "max without (audience) "
                        f'(rate(process_cpu_seconds_total{{job="gateway"}}{RATE}))',
                        "{{instance}}",
                    )
                ],
                "Share of one core (the process runs one event loop).",
            ),
            Panel(
                "Redis pool connections",
                "short",
                [
                    (
                        'max without (audience) (gateway_redis_pool_connections{job="gateway"})',
                        "{{instance}} {{state}}",
                    )
                ],
            ),
            Panel(
                "Database pool connections",
                "short",
                [
                    (
                        'max without (audience) (gateway_db_pool_connections{job="gateway"})',
                        "{{instance}} {{state}}",
                    )
                ],
            ),
            Panel(
                "Build",
                "none",
                [
                    (
                        'max without (audience) (gateway_build_info{job="gateway"})',
                        "{{instance}} {{version}} {{commit}}",
                    )
                ],
                "Version and commit each replica runs.",
                kind="stat",
            ),
        ],
    ),
]


def _variables() -> list[dict[str, Any]]:
    def query_var(name: str, label: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": query, "refId": f"{name}-values"},
            "definition": query,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
            "hide": 0,
            "options": [],
            "regex": "",
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
        query_var("audience", "Audience", 'label_values(up{job="gateway"}, audience)'),
        query_var(
            "platform", "Platform", 'label_values(gateway_queue_depth{job="gateway"}, platform)'
        ),
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    height = 8
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "mappings": panel.mappings},
            "overrides": [],
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }
    if panel.kind == "timeseries":
        body["fieldConfig"]["defaults"]["min"] = 0
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif panel.kind == "stat":
        body["options"] = {"textMode": "name", "colorMode": "none", "graphMode": "none"}
    return body


def build() -> dict[str, Any]:
    """The dashboard model."""
    panels: list[dict[str, Any]] = []
    panel_id = 0
    y = 0
    for title, row_panels in ROWS:
        panel_id += 1
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = 0
        for panel in row_panels:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panel_id += 1
            panels.append(_panel_json(panel, panel_id, x, y))
            x += panel.width
        y += 8
    return {
        "uid": "gateway-command-center",
        "title": "Gateway command center",
        "description": "Tax-lien gateway: public traffic, protection, worker plane, "
        "live streams, proxy pool and runtime. Source: monitoring/grafana/build_dashboard.py.",
        "tags": ["gateway"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": _variables()},
        "panels": panels,
    }


def render() -> str:
    """The dashboard as committed: indented JSON with a final newline."""
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard JSON, or with --check report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python {Path(__file__).as_posix()}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
