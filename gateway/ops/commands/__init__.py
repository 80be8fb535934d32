"""The `facegate` subcommands: one module each, registered in gateway/ops/cli.py.

Adding a command (say `facegate gallery`):

1. Write `gateway/ops/commands/gallery.py` with two functions:

       def subparser_init(commands: Subparsers) -> None:
           parser = commands.add_parser("gallery", help="...", description="...")
           parser.add_argument(...)          # every option with a help text
           parser.set_defaults(func=cmd)

       def cmd(args: argparse.Namespace) -> int:
           from gateway.ops.gallery import ...   # heavy imports here, not at module level
           ...
           return 0

2. Add "gallery" to COMMANDS in gateway/ops/cli.py (the order is the order of --help). A
   command word with a hyphen lives in a module with an underscore (bench-compat:
   bench_compat.py).

Conventions: the module imports only argparse, the standard library and _common at top
level, so that `facegate --help` stays fast (it imports every command module);
`cmd` imports what it runs. A failure the user can fix raises `CliError("what went wrong;
what to do next")`, which main() prints without a traceback (exit 2). Output for people
goes to stdout with print(); logs go to the "facegate" logger. Options shared by several
commands (--repository, Triton's ports, the gateway's address) live in _common.py.
tests/ops/test_cli.py runs --help of every command.
"""
