"""The README's command reference, generated from what the plugins declare.

``python -m dorfbot.docs`` prints it; ``--write README.md`` replaces the block
between the ``commands:start`` and ``commands:end`` markers. A unit test keeps
the README in step with the code.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from dorfbot.commands import CommandSpec, Scope
from dorfbot.i18n import CORE_LOCALES, Catalogs
from dorfbot.plugin_loader import discover, locales_dir
from dorfbot.roles import Role

START = "<!-- commands:start -->"
END = "<!-- commands:end -->"
WHO = {
    Role.RESIDENT: "everyone",
    Role.HELPER: "helpers",
    Role.ORGANIZER: "organizers",
    Role.MODERATOR: "moderators",
    Role.ADMIN: "admins",
}


def declared_commands() -> list[CommandSpec]:
    """Every command of every discovered plugin, in plugin order."""
    specs: list[CommandSpec] = []
    for cls in discover():
        specs += [
            CommandSpec(**{**spec.__dict__, "plugin": cls.name})
            for _, spec in cls.declared_commands()
        ]
    return specs


def reference() -> str:
    """The command reference as a Markdown table (help texts from the German catalog)."""
    catalogs = Catalogs()
    catalogs.add_dir(CORE_LOCALES)
    for cls in discover():
        catalogs.add_dir(locales_dir(cls))
    de, en = catalogs.translator("de"), catalogs.translator("en")
    lines = [
        "| command | alias | who | plugin | does (de) | does (en) |",
        "|---|---|---|---|---|---|",
    ]
    for spec in declared_commands():
        who = WHO[spec.role] + (", moderation room" if spec.scope is Scope.MODERATION else "")
        lines.append(
            f"| `!{spec.name}` | {', '.join(f'`!{a}`' for a in spec.aliases)} | {who} | "
            f"{spec.plugin} | {de.plain(spec.help_key)} | {en.plain(spec.help_key)} |"
        )
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dorfbot.docs")
    parser.add_argument("--write", metavar="README", help="update the block in this file")
    args = parser.parse_args(argv)
    block = reference()
    if args.write:
        path = Path(args.write)
        path.write_text(replace_block(path.read_text(encoding="utf-8"), block), encoding="utf-8")
    else:
        sys.stdout.write(block + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
