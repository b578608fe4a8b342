"""``pgbatch schedules list|show|create|pause|resume|trigger|backfill|delete|history``.

Each command is one scheduler SQL function call (docs/schedules.md) through
``pgbatch.schedule.Schedules``; listings are aligned tables, or JSON with
``--json``.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import timedelta

from pgbatch.cli.common import (
    Commands,
    add_command,
    add_group,
    dsn_of,
    json_object,
    pooler_of,
    positive_int,
    seconds,
    session,
    timestamp,
)
from pgbatch.cli.format import age, dumps, table, when
from pgbatch.schedule import Schedule, ScheduleDefinition, ScheduleFire, Schedules


def _when_of(s: Schedule) -> str:
    if s.kind == "cron":
        return f"cron {s.cron} ({s.tz})"
    if s.kind == "interval":
        return f"every {age(s.every)}"
    if s.kind == "once":
        return f"once {when(s.once_at)}"
    return "manual"


def _target_of(s: Schedule) -> str:
    if s.target == "batch":
        return f"job {s.job_name}"
    task = s.payload.get("task") if isinstance(s.payload, dict) else None
    return f"{s.queue}: {task}" if isinstance(task, str) else f"queue {s.queue}"


def _state_of(s: Schedule) -> str:
    if s.paused:
        return "paused"
    return "enabled" if s.enabled else "done"


def schedule_table(rows: list[Schedule]) -> str:
    """The ``schedules list`` table."""
    return table(
        ["NAME", "WHEN", "TARGET", "STATE", "NEXT DUE", "WATERMARK", "LAST OUTCOME", "COALESCED"],
        [[s.name, _when_of(s), _target_of(s), _state_of(s), when(s.next_due_at),
          when(s.last_fire_at), s.last_outcome or "-", str(s.coalesced_total)] for s in rows],
        right=[7])


def fire_table(rows: list[ScheduleFire]) -> str:
    """The ``schedules history`` table."""
    def run_of(f: ScheduleFire) -> str:
        if f.job_execution_id is not None:
            return f"execution {f.job_execution_id}"
        return str(f.job_id) if f.job_id is not None else "-"

    return table(
        ["FIRE AT", "SOURCE", "OUTCOME", "COALESCED", "RUN", "RUN STATUS", "DECIDED", "NODE"],
        [[when(f.fire_at), f.source, f.outcome,
          f"{'>=' if f.coalesced_capped else ''}{f.coalesced_count}", run_of(f),
          f.run_status or "-", when(f.decided_at), f.node_id or "-"] for f in rows],
        right=[3])


def _show(s: Schedule) -> str:
    lines = [f"{name}: {value}" for name, value in (
        ("name", s.name), ("when", _when_of(s)), ("target", _target_of(s)),
        ("payload" if s.target == "queue" else "params",
         dumps(s.payload if s.target == "queue" else s.params).replace("\n", " ")),
        ("state", _state_of(s)), ("misfire threshold", age(s.misfire_threshold)),
        ("catch up missed within", age(s.catch_up_missed_within)),
        ("overlap policy", s.overlap_policy), ("effective from", when(s.effective_from)),
        ("watermark", when(s.last_fire_at)), ("next due", when(s.next_due_at)),
        ("last outcome", s.last_outcome or "-"), ("coalesced", s.coalesced_total),
        ("version", s.version))]
    return "\n".join(lines)


def _duration(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def cmd_schedules(args: argparse.Namespace) -> int:
    """Run one ``schedules`` subcommand."""
    command = args.schedules_handler
    with session(dsn_of(args), pooler_of(args)) as (client, conn):
        api = Schedules(client)
        if command == "list":
            rows = api.list(conn=conn)
            print(dumps([dataclasses.asdict(s) for s in rows]) if args.json
                  else schedule_table(rows))
        elif command == "show":
            s = api.get(args.name, conn=conn)
            print(dumps(dataclasses.asdict(s)) if args.json else _show(s))
        elif command == "history":
            fires = api.history(args.name, limit=args.limit, conn=conn)
            print(dumps([dataclasses.asdict(f) for f in fires]) if args.json
                  else fire_table(fires))
        elif command == "create":
            definition = ScheduleDefinition(
                name=args.name, cron=args.cron, every=_duration(args.every),
                once_at=args.once_at, manual=args.manual, tz=args.tz, queue=args.queue,
                payload=args.payload, task=args.task, kwargs=args.kwargs or {},
                job_name=args.job, params=args.params,
                misfire_threshold=timedelta(seconds=args.misfire_threshold),
                catch_up_missed_within=_duration(args.catch_up_within),
                overlap_policy=args.overlap, enabled=not args.paused)
            s = api.create(definition, conn=conn)
            print(f"schedule {s.name} created: {_when_of(s)} -> {_target_of(s)}; "
                  f"next due {when(s.next_due_at)}")
        elif command == "pause":
            api.pause(args.name, conn=conn)
            print(f"schedule {args.name} paused")
        elif command == "resume":
            s = api.resume(args.name, catch_up=args.catch_up, conn=conn)
            print(f"schedule {s.name} resumed{' with catch-up' if args.catch_up else ''}; "
                  f"next due {when(s.next_due_at)}")
        elif command == "trigger":
            f = api.trigger(args.name, request_id=args.request_id, conn=conn)
            print(f"schedule {args.name} fired at {when(f.fire_at)}: {f.outcome}"
                  + (f" ({f.error})" if f.error else ""))
        elif command == "backfill":
            fires = api.backfill(args.name, args.start, args.end, force=args.force, conn=conn)
            print(f"schedule {args.name}: {len(fires)} occurrence(s) backfilled")
            if fires:
                print(fire_table(fires))
        else:
            api.delete(args.name, conn=conn)
            print(f"schedule {args.name} deleted")
    return 0


def _name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="schedule name")


def _create_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``schedules create``."""
    _name(p)
    when_group = p.add_mutually_exclusive_group(required=True)
    when_group.add_argument("--cron", metavar="EXPR", help="cron expression (5 or 6 fields)")
    when_group.add_argument("--every", type=seconds, metavar="SECONDS",
                            help="interval schedule: every SECONDS (UTC arithmetic)")
    when_group.add_argument("--once-at", type=timestamp, metavar="TIME",
                            help="once, at TIME (ISO 8601)")
    when_group.add_argument("--manual", action="store_true", help="fires only when triggered")
    p.add_argument("--tz", default="UTC", help="IANA time zone of a cron expression")
    p.add_argument("--task", metavar="NAME", help="task to run (queue default 'default')")
    p.add_argument("--kwargs", type=json_object, metavar="JSON", help="the task's kwargs")
    p.add_argument("--queue", metavar="Q", help="queue of the job")
    p.add_argument("--payload", type=json_object, metavar="JSON", help="payload template")
    p.add_argument("--job", metavar="NAME", help="batch job to launch")
    p.add_argument("--params", type=json_object, metavar="JSON", help="job parameters")
    p.add_argument("--misfire-threshold", type=seconds, default=60.0, metavar="SECONDS",
                   help="lateness still on time")
    p.add_argument("--catch-up-within", type=seconds, metavar="SECONDS",
                   help="after downtime, fire the latest missed occurrence once if it is at "
                        "most this old (default: no catch-up)")
    p.add_argument("--overlap", choices=("allow", "skip", "queue"), default="allow",
                   help="when a previous fire's run is still active")
    p.add_argument("--paused", action="store_true", help="create it paused")



def register(commands: Commands) -> None:
    """Add ``schedules`` and its subcommands."""
    sub = add_group(
        commands, "schedules", "list, create, pause, resume, trigger, backfill schedules",
        "Persisted cron, interval, once and manual schedules (docs/schedules.md). Every "
        "worker\nticks the due ones; these commands manage them.",
        "examples:\n"
        "  pgbatch schedules create nightly --cron '0 2 * * *' --tz Europe/Berlin \\\n"
        "      --task reports.nightly --catch-up-within 3600\n"
        "  pgbatch schedules list\n"
        "  pgbatch schedules history nightly\n"
        "  pgbatch schedules pause nightly\n"
        "  pgbatch schedules resume nightly --catch-up\n"
        "  pgbatch schedules trigger nightly\n"
        "  pgbatch schedules backfill nightly 2026-06-01T00:00Z 2026-06-07T00:00Z")

    def command(name: str, help_text: str, description: str,
                handler_name: str | None = None) -> argparse.ArgumentParser:
        p = add_command(sub, name, help_text, description, handler=cmd_schedules)
        p.set_defaults(schedules_handler=handler_name or name)
        return p

    p = command("list", "every schedule with its state",
                "Every schedule: when it fires, its target, state, next due time, watermark\n"
                "(the latest occurrence decided), last outcome and coalesced count.")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p = command("show", "one schedule in full", "One schedule and its state (schedules()).")
    _name(p)
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p = command("history", "the fires of a schedule",
                "The fires of a schedule, newest first (schedule_fires()): occurrence, source,\n"
                "outcome, coalesced count, the run it started and the run's state.")
    _name(p)
    p.add_argument("--limit", type=positive_int, default=50, help="at most this many")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")

    for name in ("create", "add"):
        _create_arguments(command(
            name, "create a schedule" if name == "create" else "the same as create",
            "Create a schedule (create_schedule()): exactly one of --cron, --every,\n"
            "--once-at, --manual; a target: --task (with --kwargs) or --queue with\n"
            "--payload, or --job with --params.", "create"))
    p = command("pause", "pause a schedule", "Pause a schedule: nothing fires until resumed.")
    _name(p)
    p = command("resume", "resume a paused schedule",
                "Resume a paused schedule. Occurrences of the pause are skipped, unless\n"
                "--catch-up: then the latest fires once if it is within the window.")
    _name(p)
    p.add_argument("--catch-up", action="store_true", help="fire the latest missed occurrence")
    p = command("trigger", "fire a schedule now",
                "Fire a schedule now (trigger_schedule()), whatever its kind; the watermark\n"
                "does not move. The same --request-id fires once.")
    _name(p)
    p.add_argument("--request-id", metavar="ID", help="idempotency key")
    p = command("backfill", "fire the occurrences of a time range",
                "Fire each occurrence from START to END (both included, at most 1000,\n"
                "backfill_schedule()). Occurrences at or before the watermark need --force.")
    _name(p)
    p.add_argument("start", type=timestamp, metavar="START", help="ISO 8601 time")
    p.add_argument("end", type=timestamp, metavar="END", help="ISO 8601 time")
    p.add_argument("--force", action="store_true", help="fire decided occurrences again")
    for name in ("delete", "remove"):
        _name(command(name, "delete a schedule and its history" if name == "delete"
                      else "the same as delete",
                      "Delete a schedule and its fire ledger (delete_schedule()); jobs it "
                      "started\nare left alone.", "delete"))
