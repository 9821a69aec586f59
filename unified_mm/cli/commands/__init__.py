"""One module per `umm` subcommand: `HELP`, `add_arguments(parser)`, `run(args)`.

A module here is a subcommand; only subcommands that work exist.
"""
