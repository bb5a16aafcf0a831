"""The /ops subcommands, one module per backend, each next to the functions that run them
(diagnostics through bot.commands.report, returning a Report).

A module without a chatops.yaml section declares its `COMMANDS`. A module that reads a
section declares the section's type and `load(raw, file) -> section` (with the one reader,
bot/sections.py: an unknown key or a bad value is a ConfigError of one line), and builds its
commands from the parsed section: `commands(section) -> list[Command]`; the runners use the
section captured there. bot/commands/table.py puts them together, in the order `help` lists them.
"""
