"""`prodmatch doctor`: checks the configured model, stores, data dir, Triton and disk space (application.doctor)."""

from __future__ import annotations

import typer
from rich.markup import escape

from prodmatch.application.doctor import diagnose
from prodmatch.cli.common import DataDirOption, JsonOption, out, print_json, settings_for


def doctor(ctx: typer.Context, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Check that the configured catalog can serve; print what is wrong and how to fix it (exit 1 on a problem)."""
    checks = diagnose(settings_for(ctx, data_dir))
    healthy = all(check.ok for check in checks)
    if as_json:
        print_json({"ok": healthy, "checks": [check.as_dict() for check in checks]})
    else:
        for check in checks:
            mark = "[green]OK[/]     " if check.ok else "[red]PROBLEM[/]"
            out.print(f"{mark} {escape(check.name)}: {escape(check.detail)}")
            if check.fix:
                out.print(f"        fix: {escape(check.fix)}")
    raise typer.Exit(0 if healthy else 1)
