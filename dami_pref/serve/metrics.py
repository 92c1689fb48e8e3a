"""Prometheus metrics of the server (prometheus-client), on a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ServerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("dami_pref_requests", "requests by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("dami_pref_prompt_tokens", "prompt tokens", registry=r)
        self.completion_tokens = Counter("dami_pref_completion_tokens",
                                         "generated tokens, thinking included", registry=r)
        self.reasoning_tokens = Counter("dami_pref_reasoning_tokens",
                                        "tokens of the thinking span", registry=r)
        self.lam = Histogram("dami_pref_lambda", "the λ each request was served at",
                             buckets=[i / 10 for i in range(11)], registry=r)
        self.queue_depth = Gauge("dami_pref_queue_depth", "requests waiting", registry=r)
        self.engine_requests = Counter("dami_pref_engine_requests",
                                       "requests handed to the engine", registry=r)
        self.cancelled = Counter("dami_pref_cancelled_requests",
                                 "requests dropped because their client left (before the engine, "
                                 "or mid-generation with continuous batching)", registry=r)
        self.joined = Counter("dami_pref_joined_running_batch",
                              "requests that joined a batch already generating (continuous "
                              "batching, --engine vllm)", registry=r)
        self.expired = Counter("dami_pref_expired_requests",
                               "requests answered 503 after waiting --max_wait_seconds",
                               registry=r)
        self.switches = Counter("dami_pref_lambda_switches",
                                "times the engine moved to another λ", registry=r)
        self.latency = Histogram("dami_pref_request_seconds", "request latency, end to end",
                                 buckets=[.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120],
                                 registry=r)
