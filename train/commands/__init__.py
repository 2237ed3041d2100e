"""The `tinyml` subcommands beyond train and sample: one module per command, found by train/cli.py.

A command module defines

    NAME = "finetune"                      # the subcommand: `tinyml finetune ...`
    HELP = "one line for `tinyml --help`"
    def add_arguments(parser): ...         # argparse flags; types from train/argtypes.py
    def run(args) -> int: ...              # the exit status

and its module docstring is the subcommand's `--help` description. `tinyml --help` imports every
command module, so each keeps its heavy imports (models, data sets, plotting) inside `run`.
Errors follow cli.py's rules: raise runs.UsageError for a flag value that cannot work (exit 2),
runs.CLIError or ValueError for a run that fails (exit 1), one line each.
"""
