"""Commands that load when they run: each one's module is imported only for that command.

`modelctl scan FILE` should cost the scanners and nothing else. The registry's database layer
(SQLAlchemy, Alembic), the signing stack (cryptography), the views (pydantic), the HTTP client
and the progress bars (rich) would otherwise load for every command, `--help` and `--version`
included: about 0.4 s of start-up, longer than scanning a small file.

So the top-level group knows each command by name and by `module:attribute` only, imports the
module the first time the command is asked for (when it runs, or for `--help`, which lists them
all), and builds its Click command with Typer's own machinery, as `add_typer`/`command` would.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import typer
from typer import _click  # Typer's vendored Click: the types its groups and contexts use
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo

from cli import coercion


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command by name: `target` is `module:attribute`, a command function or a Typer app."""

    name: str
    target: str

    def load(self) -> object:
        module_name, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


#: Every command of `modelctl`, in the order `--help` lists them (commands, then groups).
COMMANDS: tuple[LazyCommand, ...] = (
    LazyCommand("sign", "cli.signing:sign"),
    LazyCommand("verify", "cli.signing:verify"),
    LazyCommand("scan", "cli.scanning:scan"),
    LazyCommand("rescan", "cli.rescan:rescan_command"),
    LazyCommand("sync", "cli.sync:sync_command"),
    LazyCommand("check-pod", "cli.check_pod:check_pod"),
    LazyCommand("quarantine", "cli.policy:quarantine_command"),
    LazyCommand("release", "cli.policy:release_command"),
    LazyCommand("pull", "cli.pull:pull_command"),
    LazyCommand("push", "cli.push:push_command"),
    LazyCommand("serve", "cli.serve:serve"),
    LazyCommand("worker", "cli.serve:worker"),
    LazyCommand("migrate", "cli.migrate:migrate_command"),
    LazyCommand("gc", "cli.gc:gc_command"),
    LazyCommand("audit", "cli.tokens:audit_command"),
    LazyCommand("bom", "cli.bom:bom_command"),
    LazyCommand("report", "cli.report:report_command"),
    LazyCommand("mirror", "cli.checkpoints:mirror"),
    LazyCommand("models", "cli.checkpoints:models"),
    LazyCommand("inspect", "cli.checkpoints:inspect"),
    LazyCommand("attest", "cli.checkpoints:attest"),
    LazyCommand("keys", "cli.signing:keys_app"),
    LazyCommand("policy", "cli.policy:policy_app"),
    LazyCommand("exception", "cli.policy:exception_app"),
    LazyCommand("finding", "cli.findings:finding_app"),
    LazyCommand("tokens", "cli.tokens:tokens_app"),
    LazyCommand("notify", "cli.notify:notify_app"),
    LazyCommand("bundle", "cli.bundle:bundle_app"),
    LazyCommand("log", "cli.log:log_app"),
)

_BY_NAME = {command.name: command for command in COMMANDS}


class LazyGroup(TyperGroup):
    """The top-level group: `COMMANDS` are built on first use, then kept like any command."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        eager = [name for name in super().list_commands(ctx) if name not in _BY_NAME]
        return [command.name for command in COMMANDS] + eager

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        coercion.install(self, ctx)  # the global options: no pydantic for plain values
        return super().parse_args(ctx, args)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        command = super().get_command(ctx, cmd_name)
        lazy = _BY_NAME.get(cmd_name)
        if command is None and lazy is not None:
            command = self._build(lazy)
            coercion.install(command, ctx)
            self.add_command(command, cmd_name)
        return command

    def _build(self, lazy: LazyCommand) -> _click.Command:
        target = lazy.load()
        if isinstance(target, typer.Typer):
            return get_group_from_info(
                TyperInfo(target, name=lazy.name),
                pretty_exceptions_short=target.pretty_exceptions_short,
                rich_markup_mode=self.rich_markup_mode,
                suggest_commands=self.suggest_commands,
            )
        if not callable(target):
            raise TypeError(f"{lazy.target} is neither a command function nor a Typer app")
        return get_command_from_info(
            CommandInfo(name=lazy.name, callback=target),
            pretty_exceptions_short=False,
            rich_markup_mode=self.rich_markup_mode,
        )
