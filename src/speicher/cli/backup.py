"""``speicher backup``: shares backed up offsite with restic (docs/backup.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from speicher.cli.client import CliError
from speicher.cli.context import client
from speicher.cli.output import console, details, print_json, size, table
from speicher.cli.storage import JsonOpt, NoWaitOpt, run_job
from speicher.cli.tasks import (
    EnabledOpt,
    Tasks,
    delete_task,
    given,
    list_tasks,
    run_task,
    show_task,
    update_task,
)

backup_app = typer.Typer(help="Offsite backup of shares with restic.", no_args_is_help=True)
target_app = typer.Typer(help="Where backups go: restic repositories.", no_args_is_help=True)
task_app = typer.Typer(help="Shares backed up on a schedule.", no_args_is_help=True)
backup_app.add_typer(target_app, name="target")
backup_app.add_typer(task_app, name="task")


def _read(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip() if str(path) != "-" else sys.stdin.read().strip()
    except OSError as exc:
        raise CliError(f"cannot read the {what} from {path}: {exc.strerror}") from None


@target_app.command("add")
def target_add(
    ctx: typer.Context,
    name: str,
    path: Annotated[
        str | None, typer.Option("--path", help="A local or USB folder (its parent must exist).")
    ] = None,
    s3: Annotated[
        str | None, typer.Option("--s3", help="An S3 bucket: https://host[:port]/bucket[/prefix].")
    ] = None,
    access_key: Annotated[str | None, typer.Option("--access-key", help="S3 access key.")] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option("--secret-file", help="A file with the S3 secret ('-': stdin)."),
    ] = None,
    ca_cert: Annotated[
        Path | None, typer.Option("--ca-cert", help="A PEM certificate to trust for https.")
    ] = None,
    sftp: Annotated[
        str | None, typer.Option("--sftp", help="An SFTP server: user@host:/folder.")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="The SFTP server's SSH port.")] = 22,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            help="The password of an existing repository ('-': stdin); without it a new "
            "repository is made with a generated password.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a restic repository as a backup target: a folder, an S3 bucket or an SFTP server."""
    chosen = [k for k, v in (("--path", path), ("--s3", s3), ("--sftp", sftp)) if v]
    if len(chosen) != 1:
        raise CliError("give exactly one of --path, --s3 and --sftp")
    body: dict[str, Any] = {"name": name, "password": _read(password_file, "password")}
    if path:
        body |= {"kind": "local", "path": path}
    elif s3:
        body |= {
            "kind": "s3",
            "url": s3,
            "access_key": access_key,
            "secret_key": _read(secret_file, "S3 secret"),
            "ca_certificate": _read(ca_cert, "certificate"),
        }
    else:
        login, _, folder = (sftp or "").partition(":")
        user, _, host = login.rpartition("@")
        if not user or not host or not folder:
            raise CliError("give the SFTP server as user@host:/folder")
        body |= {"kind": "sftp", "user": user, "host": host, "path": folder, "port": port}
    made = client(ctx).post("/backup/targets", body)
    if as_json:
        print_json(made)
        return
    rows = [("target", made["name"]), ("kind", made["kind"]), ("location", made["location"])]
    if made["host_key"]:
        rows.append(("host key", made["host_key"]))
    details(rows)
    if made.get("password"):
        console.print(
            f"\nrepository password: {made['password']}\n"
            "Keep it somewhere safe, away from this box: it is shown only now, and without it "
            "nobody can read these backups (restore onto a new box needs it).",
            highlight=False,
        )


@target_app.command("list")
def target_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Backup targets."""
    rows = client(ctx).get("/backup/targets")
    if as_json:
        print_json(rows)
        return
    table(
        rows,
        [("name", "name"), ("kind", "kind"), ("location", "location"), ("tasks", "tasks")],
        empty="no backup targets",
    )


@target_app.command("delete")
def target_delete(ctx: typer.Context, name: str) -> None:
    """Forget a target (its repository and backups stay)."""
    client(ctx).delete(f"/backup/targets/{quote(name, safe='')}")
    console.print(f"backup target {name} deleted")


@backup_app.command("ssh-key")
def ssh_key(ctx: typer.Context) -> None:
    """The public key this box logs in to SFTP targets with: add it to the server's
    authorized_keys before `backup target add --sftp`."""
    console.print(client(ctx).get("/backup/ssh-key")["public_key"], highlight=False)


TASKS = Tasks("/backup/tasks", "backup task", "backup", "no backup yet", days=True)


@task_app.command("create")
def task_create(
    ctx: typer.Context,
    share: str,
    target: Annotated[str, typer.Option("--target", help="The backup target.")],
    schedule: Annotated[str, typer.Option("--schedule", help="Cron (UTC), e.g. '0 1 * * *'.")],
    keep_last: Annotated[int | None, typer.Option("--keep-last", help="Newest N backups.")] = None,
    keep_daily: Annotated[int | None, typer.Option("--keep-daily", help="Default 7.")] = None,
    keep_weekly: Annotated[int | None, typer.Option("--keep-weekly", help="Default 4.")] = None,
    keep_monthly: Annotated[int | None, typer.Option("--keep-monthly", help="Default 12.")] = None,
    keep_yearly: Annotated[int | None, typer.Option("--keep-yearly", help="Default 0.")] = None,
    check_days: Annotated[
        float | None, typer.Option("--check-days", help="Read data back every N days (7).")
    ] = None,
    check_percent: Annotated[
        float | None, typer.Option("--check-percent", help="...this much of it (5).")
    ] = None,
    alert_after: Annotated[
        int | None, typer.Option("--alert-after", help="Alert after N failures in a row (3).")
    ] = None,
    alert_days: Annotated[
        float | None, typer.Option("--alert-days", help="Alert after N days without a backup (2).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Back up SHARE to a target on a schedule: a snapshot each time, then the retention."""
    body: dict[str, Any] = {
        "share": share,
        "target": target,
        "schedule": schedule,
        **given(
            keep_last=keep_last,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            keep_yearly=keep_yearly,
            check_days=check_days,
            check_percent=check_percent,
            alert_after=alert_after,
            alert_days=alert_days,
        ),
    }
    made = client(ctx).post(TASKS.path, body)
    if as_json:
        print_json(made)
        return
    console.print(f"backup task {made['id']}: {share} to {target}, '{schedule}'")


@task_app.command("list")
def task_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Backup tasks, with the age of each one's newest backup."""
    list_tasks(ctx, TASKS, as_json)


def _shown(info: dict[str, Any]) -> list[tuple[str, Any]]:
    keeps = ", ".join(
        f"{info[f'keep_{k}']} {k}" for k in ("last", "daily", "weekly", "monthly", "yearly")
        if info[f"keep_{k}"]
    )  # fmt: skip
    return [
        ("keeps", keeps or "every backup"),
        ("backup age", TASKS.age(info)),
        ("last backup", info["last_snapshot"][:8] or "-"),
        (
            "last run",
            f"{info['last_files']:,} files, {size(info['last_bytes'])} "
            f"({size(info['last_added'])} new) in {info['last_seconds']:.1f} s",
        ),
        ("last check", info["last_check_at"] or "-"),
    ]


@task_app.command("show")
def task_show(ctx: typer.Context, task_id: int, as_json: JsonOpt = False) -> None:
    """A task: its rules, its last run and how old the newest backup is."""
    show_task(ctx, TASKS, task_id, as_json, _shown)


@task_app.command("update")
def task_update(
    ctx: typer.Context,
    task_id: int,
    schedule: Annotated[str | None, typer.Option("--schedule", help="Cron (UTC).")] = None,
    keep_last: Annotated[int | None, typer.Option("--keep-last")] = None,
    keep_daily: Annotated[int | None, typer.Option("--keep-daily")] = None,
    keep_weekly: Annotated[int | None, typer.Option("--keep-weekly")] = None,
    keep_monthly: Annotated[int | None, typer.Option("--keep-monthly")] = None,
    keep_yearly: Annotated[int | None, typer.Option("--keep-yearly")] = None,
    alert_after: Annotated[int | None, typer.Option("--alert-after")] = None,
    alert_days: Annotated[float | None, typer.Option("--alert-days")] = None,
    enabled: EnabledOpt = None,
) -> None:
    """Change a task."""
    body = given(
        schedule=schedule,
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        keep_yearly=keep_yearly,
        alert_after=alert_after,
        alert_days=alert_days,
        enabled=enabled,
    )
    update_task(ctx, TASKS, task_id, body)


@task_app.command("run")
def task_run(
    ctx: typer.Context, task_id: int, no_wait: NoWaitOpt = False, as_json: JsonOpt = False
) -> None:
    """Back up now, with a progress bar."""
    run_task(ctx, TASKS, task_id, no_wait, as_json)


@task_app.command("delete")
def task_delete(ctx: typer.Context, task_id: int) -> None:
    """Delete a task; its backups stay in the repository."""
    delete_task(ctx, TASKS, task_id)


@backup_app.command("snapshots")
def snapshots(ctx: typer.Context, task_id: int, as_json: JsonOpt = False) -> None:
    """The backups of a task, oldest first."""
    rows = client(ctx).get(f"/backup/tasks/{task_id}/snapshots")
    if as_json:
        print_json(rows)
        return
    table(
        rows,
        [("id", "short_id"), ("time", "time"), ("host", "host")],
        empty="no backups yet",
    )


@backup_app.command("restore")
def restore(
    ctx: typer.Context,
    task_id: int,
    to: Annotated[
        str, typer.Option("--to", help="SHARE/PATH: a new name, or a folder to restore into.")
    ],
    snapshot: Annotated[
        str, typer.Option("--snapshot", help="The backup's id (see 'backup snapshots').")
    ] = "latest",
    path: Annotated[
        str, typer.Option("--path", help="A file or folder of the share (default: all of it).")
    ] = "",
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a file, a folder or the whole share from a backup; nothing is overwritten."""
    body = {"snapshot": snapshot, "path": path, "to": to}
    run_job(ctx, client(ctx).post(f"/backup/tasks/{task_id}/restore", body), no_wait, as_json)
