"""Prometheus metrics for the decision service (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """One registry per platform instance (tests create many platforms in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("fsbrain_decisions_total", "Decisions by event type and outcome",
                                 ["event_type", "outcome"], registry=r)
        self.labels = Counter("fsbrain_decision_labels_total", "Risk labels hit by decisions",
                              ["event_type", "label"], registry=r)
        self.latency = Histogram("fsbrain_decision_latency_seconds", "Time to decide (engine only)",
                                 ["event_type"], buckets=LATENCY_BUCKETS, registry=r)
        self.request_latency = Histogram("fsbrain_decision_request_seconds",
                                         "Time to serve a decision request (validation, engine, storage)",
                                         ["event_type"], buckets=LATENCY_BUCKETS, registry=r)
        self.rule_errors = Counter("fsbrain_rule_errors_total", "Rules that failed at run time on an event",
                                   ["policy", "rule"], registry=r)
        self.state_errors = Counter("fsbrain_state_backend_errors_total", "State backend failures", registry=r)
        self.shadow = Counter("fsbrain_shadow_decisions_total", "Shadow decisions by policy and agreement",
                              ["policy", "agrees"], registry=r)
        self.replays = Counter("fsbrain_idempotent_replays_total",
                               "Requests answered with an already stored decision", ["event_type"], registry=r)
        self.policy_reloads = Counter("fsbrain_policy_reloads_total", "Policy reloads by result",
                                      ["result"], registry=r)
        self.invalid = Counter("fsbrain_invalid_requests_total", "Rejected requests by reason", ["reason"],
                               registry=r)
        self.list_entries = Gauge("fsbrain_list_entries", "Active list entries in the engine index", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
