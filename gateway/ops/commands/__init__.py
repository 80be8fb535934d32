"""CLI subcommands, one module each: `subparser_init(subparsers)` and `cmd(args) -> int`."""
