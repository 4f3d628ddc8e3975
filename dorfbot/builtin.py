"""The core's own commands: ``!ping`` and ``!hilfe`` (generated from every plugin)."""

from __future__ import annotations

from dorfbot.commands import command
from dorfbot.context import CommandContext
from dorfbot.i18n import Markup, Text
from dorfbot.plugin import Plugin


class CorePlugin(Plugin):
    """Health check and help; always loaded first."""

    name = "core"

    @command("ping", needs_village=False, examples=("!ping",))
    async def ping(self, ctx: CommandContext) -> None:
        await ctx.answer("core.pong")

    @command("hilfe", "help", needs_village=False, examples=("!hilfe", "!hilfe biete"))
    async def help(self, ctx: CommandContext) -> None:
        prefix = self.bot.config.command_prefix
        visible = self.bot.visible_commands(ctx.role, ctx.room_kind)
        topic = ctx.args.text.lstrip(prefix).strip()
        if topic:
            spec = self.bot.commands.get(topic)
            if spec is None or spec not in visible:
                await ctx.answer("core.help_unknown", command=topic, prefix=prefix)
                return
            lines = [
                ctx.t("core.help_title", prefix=prefix, command=spec.name),
                ctx.t(spec.help_key),
            ]
            if ctx.t.has(spec.usage_key):
                lines.append(ctx.t(spec.usage_key, prefix=prefix))
            if spec.aliases:
                lines.append(
                    ctx.t("core.help_aliases", aliases=", ".join(prefix + a for a in spec.aliases))
                )
            if spec.examples:
                lines.append(
                    ctx.t(
                        "core.help_examples",
                        examples=Markup(
                            Text.join(
                                [
                                    Text(e, f"<code>{Text.escaped(e).html}</code>")
                                    for e in spec.examples
                                ],
                                Text(" · ", " · "),
                            )
                        ),
                    )
                )
            await ctx.answer(Text.join(lines))
            return
        entries = [
            ctx.t(
                "core.help_entry",
                prefix=prefix,
                command=spec.name,
                alias=f" / {prefix}{spec.aliases[0]}" if spec.aliases else "",
                help=ctx.t(spec.help_key),
            )
            for spec in visible
        ]
        await ctx.answer(
            "core.help_list", entries=Markup(Text.join(entries, Text("\n", ""))), prefix=prefix
        )
