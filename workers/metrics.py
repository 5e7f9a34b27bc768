"""Prometheus metrics of `commerce worker` (`dramatiq workers.app`): one endpoint per worker
supervisor, on WORKER_METRICS_PORT, served by a Dramatiq fork process.

- Per job (all worker processes of the supervisor summed, Prometheus multiprocess mode):
  `worker_jobs_total{queue,job,outcome}` (outcome ok|failed|skipped),
  `worker_job_retries_total`, `worker_job_dead_letters_total`, `worker_job_duration_seconds`,
  `worker_jobs_in_progress`.
- Process CPU and memory of the supervisor and each of its processes (`pid`, `role` labels).
- Cluster-wide figures (queue depths, outbox lag, dead letters: `job_queue_messages`,
  `outbox_lag_rows`, `outbox_lag_seconds`, `job_dead_letters`) are exported HERE and nowhere
  else (not by API replicas, which would repeat them N times). With several worker hosts each
  reports the same values; aggregate with `max without (instance)`.

Multiprocess mode needs a directory shared by the processes, chosen before prometheus_client
creates a metric: PROMETHEUS_MULTIPROC_DIR when the environment sets it (`commerce worker`
makes a fresh one per run), otherwise a temporary directory named after the supervisor's pid.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from typing import Any, Iterable

from dramatiq.middleware import Middleware

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"commerce-worker-metrics-{os.getppid()}")


def enable_multiprocess() -> str:
    """Switch prometheus_client of this process to multiprocess mode (idempotent)."""
    path = multiprocess_dir()
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    if "prometheus_client" in sys.modules:  # imported already: pick the value class again
        from prometheus_client import values

        if values.ValueClass is values.MutexValue:
            values.ValueClass = values.get_value_class()
    return path


class JobMetrics(Middleware):
    """Counts, failures, retries, dead letters and durations of every job this process runs."""

    def __init__(self, *, serve: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        # A private registry: several assemblies in one process (tests) must not collide; in
        # multiprocess mode the values live in the shared files whatever the registry.
        reg = CollectorRegistry(auto_describe=True)
        self._serve = serve
        self.jobs = Counter("worker_jobs_total", "Jobs run, by queue, job and outcome (ok, failed, skipped)",
                            ["queue", "job", "outcome"], registry=reg)
        self.retries = Counter("worker_job_retries_total", "Failed jobs scheduled for another attempt",
                               ["queue", "job"], registry=reg)
        self.dead = Counter("worker_job_dead_letters_total", "Jobs moved to the dead-letter queue",
                            ["queue", "job"], registry=reg)
        self.duration = Histogram("worker_job_duration_seconds", "Time spent running one job",
                                  ["queue", "job"], buckets=_DURATION_BUCKETS, registry=reg)
        self.in_progress = Gauge("worker_jobs_in_progress", "Jobs running now", ["queue", "job"],
                                 multiprocess_mode="livesum", registry=reg)
        self.registry = reg
        self._started: dict[str, float] = {}

    @property
    def forks(self):
        return [serve_worker_metrics] if self._serve else []

    def before_process_message(self, broker, message) -> None:
        self._started[message.message_id] = time.perf_counter()
        self.in_progress.labels(message.queue_name, message.actor_name).inc()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        labels = (message.queue_name, message.actor_name)
        started = self._started.pop(message.message_id, None)
        if started is not None:
            self.duration.labels(*labels).observe(time.perf_counter() - started)
            self.in_progress.labels(*labels).dec()
        self.jobs.labels(*labels, "ok" if exception is None else "failed").inc()

    def after_skip_message(self, broker, message) -> None:
        labels = (message.queue_name, message.actor_name)
        if self._started.pop(message.message_id, None) is not None:
            self.in_progress.labels(*labels).dec()
        self.jobs.labels(*labels, "skipped").inc()

    def after_enqueue(self, broker, message, delay) -> None:
        if message.options.get("retries"):  # the Retries middleware re-enqueueing a failed job
            self.retries.labels(message.queue_name, message.actor_name).inc()

    def after_nack(self, broker, message) -> None:
        self.dead.labels(message.queue_name, message.actor_name).inc()

    def after_worker_shutdown(self, broker, worker) -> None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


class ProcessTreeCollector:
    """CPU seconds and resident memory of the supervisor (`root_pid`) and its children."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid

    def collect(self) -> Iterable[Any]:
        import psutil
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        cpu = CounterMetricFamily("process_cpu_seconds", "User and system CPU time per process", labels=["pid", "role"])
        rss = GaugeMetricFamily("process_resident_memory_bytes", "Resident memory per process", labels=["pid", "role"])
        try:
            root = psutil.Process(self.root_pid)
            procs = [(root, "supervisor")] + [(p, "worker") for p in root.children()]
        except psutil.Error:
            procs = []
        for proc, role in procs:
            try:
                times, mem = proc.cpu_times(), proc.memory_info()
            except psutil.Error:
                continue
            role = "metrics" if proc.pid == os.getpid() else role
            cpu.add_metric([str(proc.pid), role], times.user + times.system)
            rss.add_metric([str(proc.pid), role], mem.rss)
        yield cpu
        yield rss


class ClusterCollector:
    """Queue depths, outbox lag and dead letters, read at scrape time (workers.operations)."""

    def __init__(self, settings) -> None:
        self.settings = settings

    def collect(self) -> Iterable[Any]:
        import asyncio

        from prometheus_client.core import GaugeMetricFamily

        from workers.operations import queue_stats

        try:
            stats = asyncio.run(asyncio.wait_for(queue_stats(self.settings), 5))
        except Exception:  # a scrape during an outage shows the job metrics, not a 500
            return
        depth = GaugeMetricFamily("job_queue_messages", "Messages per job queue and state (ready, delayed, dead)",
                                  labels=["queue", "state"])
        for key, value in stats.items():
            parts = key.split(".")
            if parts[0] == "queue" and len(parts) == 3:
                depth.add_metric([parts[1], parts[2]], value)
        yield depth
        yield GaugeMetricFamily("outbox_lag_rows", "Outbox rows due but not yet sent", value=stats["outbox.lag_count"])
        yield GaugeMetricFamily("outbox_lag_seconds", "Age of the oldest due, unsent outbox row",
                                value=stats["outbox.lag_seconds"])
        yield GaugeMetricFamily("job_dead_letters", "Dead-lettered jobs across all queues",
                                value=stats["dead_letters.total"])


def build_registry(settings, root_pid: int):
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=multiprocess_dir())
    registry.register(ProcessTreeCollector(root_pid))
    registry.register(ClusterCollector(settings))
    return registry


def serve_worker_metrics() -> int:
    """Dramatiq fork process: the supervisor's metrics endpoint, until SIGTERM."""
    from prometheus_client import start_http_server

    from engine.observability import configure_logging
    from engine.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    enable_multiprocess()
    import structlog

    log = structlog.get_logger("workers.metrics")
    url = f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics"
    try:
        start_http_server(settings.worker_metrics_port, settings.worker_metrics_host,
                          registry=build_registry(settings, os.getppid()))
    except OSError as exc:
        # Another supervisor on this host has the port: the jobs run regardless, unmeasured.
        log.error("worker_metrics_unavailable", url=url, error=str(exc),
                  hint="give each `commerce worker` on a host its own WORKER_METRICS_PORT")
        return 0
    log.info("worker_metrics_listening", url=url)
    threading.Event().wait()
    return 0
