"""The `commerce` command: run, migrate, seed and operate the engine.

    commerce dev      API + workers + scheduler in one process, embedded servers when no URLs
    commerce serve    the API alone against configured URLs
    commerce worker   Dramatiq worker processes alone
    commerce migrate  apply schema migrations
    commerce seed     demo data (idempotent)
    commerce user     create users, change their role, permissions or state
    commerce apikey   create, list, revoke API keys
    commerce jobs     queue depths, outbox lag, dead letters; show, retry or purge them (--json)
    commerce settings the configuration table (every environment variable with its default)
    commerce loadtest a Locust scenario with budgets; commerce bench: the benchmark report
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, Sequence

from engine.settings import Settings, SettingsError


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        sys.exit(f"commerce: {exc}")


def _require_urls(settings: Settings) -> None:
    missing = [n for n, v in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url)) if not v]
    if missing:
        sys.exit(f"commerce: {', '.join(missing)} must be set (or use `commerce dev` for embedded servers)")


def cmd_dev(args: argparse.Namespace) -> None:
    from ops.dev import run_dev

    run_dev(host=args.host, port=args.port, data_dir=args.data_dir, products=args.products)


def cmd_serve(args: argparse.Namespace) -> None:
    from engine.payments.config import check as check_payments
    from ops.serve import refuse_dev_mode, serve

    settings = _settings(**({"host": args.host} if args.host else {}), **({"port": args.port} if args.port else {}))
    try:
        refuse_dev_mode(settings)
    except SettingsError as exc:
        sys.exit(f"commerce: {exc}")
    _require_urls(settings)
    try:
        settings.require_secrets()
        check_payments(settings)
    except SettingsError as exc:
        sys.exit(f"commerce: {exc}")
    serve(settings, processes=args.processes)


def cmd_worker(args: argparse.Namespace) -> None:
    from workers.main import run

    settings = _settings()
    _require_urls(settings)
    run(settings, processes=args.processes or settings.worker_processes, threads=args.threads or settings.worker_threads,
        shutdown_timeout=args.shutdown_timeout)


def cmd_migrate(args: argparse.Namespace) -> None:
    from engine.migrate import migrate

    settings = _settings()
    _require_urls_db(settings)
    applied = asyncio.run(migrate(settings.database_url))  # type: ignore[arg-type]
    print("applied: " + (", ".join(applied) if applied else "nothing (schema is current)"))


def _require_urls_db(settings: Settings) -> None:
    if not settings.database_url:
        sys.exit("commerce: DATABASE_URL must be set")


def cmd_seed(args: argparse.Namespace) -> None:
    from ops.seed import seed
    from ops.progress import ProgressBar

    settings = _settings()
    _require_urls_db(settings)
    bar = ProgressBar("seeding products")
    result = asyncio.run(seed(settings.database_url, products=args.products,  # type: ignore[arg-type]
                              demo_accounts=args.demo_accounts, progress=bar.update))
    bar.close()
    print(result)


def cmd_user_create(args: argparse.Namespace) -> None:
    from engine.identity.cli_support import create_user

    settings = _settings()
    _require_urls_db(settings)
    user_id = asyncio.run(create_user(settings, email=args.email, password=args.password, role=args.role,
                                      tenant_slug=args.tenant, permissions=args.permission or []))
    print(f"created {args.role} {args.email} ({user_id})")


def cmd_user_set_access(args: argparse.Namespace) -> None:
    from engine.domain.errors import DomainError
    from engine.identity.cli_support import set_access

    settings = _settings()
    _require_urls_db(settings)
    disabled = True if args.disable else False if args.enable else None
    try:
        user_id, published = asyncio.run(set_access(settings, email=args.email, role=args.role, tenant_slug=args.tenant,
                                                    permissions=args.permission or [], disabled=disabled))
    except DomainError as exc:
        sys.exit(f"error: {exc}")
    print(f"{args.email} ({user_id}) is now {args.role}" + (f" with {','.join(sorted(args.permission))}" if args.permission else "")
          + (" (disabled)" if disabled else ""))
    if not published:
        print(f"warning: Redis was unreachable; API processes notice within {settings.account_version_ttl} s",
              file=sys.stderr)


def cmd_apikey(args: argparse.Namespace) -> None:
    from engine.identity import cli_support

    settings = _settings()
    _require_urls_db(settings)
    if args.apikey_cmd == "create":
        key_id, plaintext = asyncio.run(cli_support.create_api_key(
            settings, tenant_slug=args.tenant, name=args.name, scopes=args.scope or [], plan=args.plan))
        print(f"id:  {key_id}\nkey: {plaintext}\n(shown once: store it now)")
    elif args.apikey_cmd == "list":
        for row in asyncio.run(cli_support.list_api_keys(settings, tenant_slug=args.tenant)):
            print("  ".join(str(v) for v in row.values()))
    else:
        revoked = asyncio.run(cli_support.revoke_api_key(settings, tenant_slug=args.tenant, key_id=args.key_id))
        print("revoked" if revoked else "no such active key")
        if not revoked:
            sys.exit(1)


def cmd_jobs(args: argparse.Namespace) -> None:
    """Queue figures; list, show, retry or purge dead letters (all, one queue's, or one by id)."""
    import json

    from workers import operations

    settings = _settings()
    _require_urls(settings)

    def emit(obj: Any, text: str) -> None:
        print(json.dumps(obj, indent=2, default=str) if args.json else text)

    for flag, action, verb in (("retry_dead", operations.retry_dead_letters, "re-enqueued"),
                               ("purge_dead", operations.purge_dead_letters, "dropped")):
        target = getattr(args, flag)
        if target is None:
            continue
        message_id = None if target == _ALL else target
        count = action(settings, queue=args.queue, message_id=message_id)
        emit({"action": verb, "count": count, "message_id": message_id}, f"{verb} {count} dead-lettered job(s)")
        if message_id and not count:
            sys.exit(f"commerce: no dead letter with id {message_id}")
        return
    if args.show_dead:
        letters = operations.list_dead_letters(settings, queue=args.queue, message_id=args.show_dead)
        if not letters:
            sys.exit(f"commerce: no dead letter with id {args.show_dead}")
        letter = letters[0]
        emit(letter, "\n".join(f"{k}: {v}" for k, v in letter.items() if k != "traceback")
             + "\n\n" + (letter["traceback"] or "(no traceback)"))
        return
    if args.list_dead:
        letters = operations.list_dead_letters(settings, queue=args.queue)
        emit(letters, "\n".join("  ".join(f"{k}={v}" for k, v in letter.items() if k != "traceback")
                                for letter in letters) or "no dead letters")
        return
    stats = asyncio.run(operations.queue_stats(settings))
    emit(stats, "\n".join(f"{key:32} {value}" for key, value in stats.items()))


_ALL = "*all*"


def cmd_settings(args: argparse.Namespace) -> None:
    from ops.readme import settings_table

    print(settings_table(), end="")


def cmd_passthrough(args: argparse.Namespace) -> None:
    """`commerce loadtest ...` and `commerce bench ...` hand their arguments to the harness."""
    if args.command == "loadtest":
        from loadtests.run import main as harness
    else:
        from loadtests.bench.cli import main as harness
    sys.exit(harness(args.rest))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="commerce", description="Actor-based commerce order engine.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("dev", help="API + workers + scheduler on embedded servers, migrated and seeded")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8080)
    d.add_argument("--data-dir", default=".data", help="where embedded servers keep their data (default ./.data)")
    d.add_argument("--products", type=int, default=200, help="demo products to seed")
    d.set_defaults(fn=cmd_dev)

    s = sub.add_parser("serve", help="the API alone (DATABASE_URL, REDIS_URL, JWT_KEYS required)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--processes", type=int, default=1, help="API processes sharing the port (SO_REUSEPORT)")
    s.set_defaults(fn=cmd_serve)

    w = sub.add_parser("worker", help="Dramatiq worker processes with the outbox relay and scheduler "
                                      "(wraps `dramatiq workers.app`)")
    w.add_argument("--processes", type=int)
    w.add_argument("--threads", type=int)
    w.add_argument("--shutdown-timeout", type=float, default=600.0,
                   help="seconds running jobs get to finish on SIGTERM; unfinished ones are redelivered (default 600)")
    w.set_defaults(fn=cmd_worker)

    sub.add_parser("migrate", help="apply schema migrations").set_defaults(fn=cmd_migrate)

    sd = sub.add_parser("seed", help="demo catalogue, shipping methods, coupons (idempotent)")
    sd.add_argument("--products", type=int, default=200)
    sd.add_argument("--demo-accounts", action="store_true", help="also create the three demo accounts")
    sd.set_defaults(fn=cmd_seed)

    u = sub.add_parser("user", help="manage users").add_subparsers(dest="user_cmd", required=True)
    uc = u.add_parser("create")
    uc.add_argument("--email", required=True)
    uc.add_argument("--password", required=True)
    uc.add_argument("--role", choices=("customer", "staff", "partner"), required=True)
    uc.add_argument("--tenant", default="default")
    uc.add_argument("--permission", action="append", help="staff permission (repeatable); default all")
    uc.set_defaults(fn=cmd_user_create)
    ua = u.add_parser("set-access", help="change a user's role, staff permissions or disabled state "
                                         "(their old access tokens stop working on their next request)")
    ua.add_argument("--email", required=True)
    ua.add_argument("--role", choices=("customer", "staff", "partner"), required=True)
    ua.add_argument("--tenant", default="default")
    ua.add_argument("--permission", action="append", help="staff permission (repeatable; '*' for all); default none")
    state = ua.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true", help="refuse this account's sign-ins and tokens")
    state.add_argument("--enable", action="store_true")
    ua.set_defaults(fn=cmd_user_set_access)

    k = sub.add_parser("apikey", help="manage API keys").add_subparsers(dest="apikey_cmd", required=True)
    kc = k.add_parser("create")
    kc.add_argument("--tenant", default="default")
    kc.add_argument("--name", required=True)
    kc.add_argument("--scope", action="append", help="e.g. products:read (repeatable)")
    kc.add_argument("--plan", choices=("standard", "enterprise"), default="standard")
    kl = k.add_parser("list")
    kl.add_argument("--tenant", default="default")
    kr = k.add_parser("revoke")
    kr.add_argument("key_id")
    kr.add_argument("--tenant", default="default")
    for parser in (kc, kl, kr):
        parser.set_defaults(fn=cmd_apikey)

    j = sub.add_parser("jobs", help="queue depths, outbox lag, dead letters")
    j.add_argument("--retry-dead", nargs="?", const=_ALL, metavar="MESSAGE_ID",
                   help="re-enqueue dead-lettered jobs: all (of --queue), or the one with this id")
    j.add_argument("--list-dead", action="store_true", help="show the newest dead-lettered jobs")
    j.add_argument("--show-dead", metavar="MESSAGE_ID", help="one dead letter with its whole traceback")
    j.add_argument("--purge-dead", nargs="?", const=_ALL, metavar="MESSAGE_ID",
                   help="drop dead-lettered jobs: all (of --queue), or the one with this id")
    j.add_argument("--queue")
    j.add_argument("--json", action="store_true", help="machine-readable output")
    j.set_defaults(fn=cmd_jobs)

    sub.add_parser("settings", help="print the configuration table").set_defaults(fn=cmd_settings)

    for name, text in (("loadtest", "run a Locust scenario with budgets (see loadtests/README.md)"),
                       ("bench", "run the benchmark harness and write BENCHMARKS.md")):
        lp = sub.add_parser(name, help=text, add_help=False)
        lp.add_argument("rest", nargs=argparse.REMAINDER)
        lp.set_defaults(fn=cmd_passthrough)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("loadtest", "bench"):  # their own parsers take every argument after
        cmd_passthrough(argparse.Namespace(command=argv[0], rest=argv[1:]))
    args = build_parser().parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
