"""The `scones` command: one entry point, subcommands loaded on first use.

Subcommands live beside the code they drive; they are imported lazily so that
`scones --help` does not pay for importing torch.
"""
from __future__ import annotations

import importlib

import click

SUBCOMMANDS = {
    "data": ("scones.model.cli", "data", "Stage CIFAR-100 classes or generate a synthetic set."),
    "train": ("scones.model.cli", "train", "Train the classifier (SageMaker script mode)."),
    "serve": ("scones.model.server.cli", "serve", "Serve a model.tar.gz with the SageMaker contracts."),
    "up": ("scones.local.cli.stack", "up", "Start the embedded stack (moto + model server)."),
    "status": ("scones.local.cli.stack", "status", "Show the running stack."),
    "down": ("scones.local.cli.stack", "down", "Stop everything `scones up` started."),
    "classify": ("scones.local.cli.workflow", "classify", "Run images through the workflow."),
    "demo": ("scones.local.cli.workflow", "demo", "The whole chain: data, training, stack, classification."),
    "review": ("scones.local.cli.review", "review", "Label the photos sent to review, in a web page."),
    "monitor": ("scones.model.monitor.cli", "monitor", "Reports from data capture and outcomes."),
    "promote": ("scones.local.aws.promote", "promote", "Deploy a model and the workflow to AWS."),
    "teardown": ("scones.local.aws.promote", "teardown", "Delete what `promote` created."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="scones-unlimited")
def main() -> None:
    """Scones Unlimited: the bicycle/motorcycle workflow, offline on one machine or on AWS."""


if __name__ == "__main__":
    main()
