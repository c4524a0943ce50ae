"""The `agfnet` command: one typer app, one module per subcommand.

Only typer and the standard library are imported at module level (here and in every
command module), so `agfnet --help` answers at once; each command imports torch and
friends inside its body.
"""

from __future__ import annotations

import typer

from agfnet.cli import (
    analyze,
    benchmark,
    data_commands,
    evaluate,
    explain,
    model_commands,
    predict,
    robustness,
    serve,
    synth,
    train,
)
from agfnet.cli._common import cli_command

app = typer.Typer(
    name="agfnet",
    help=(
        "AGFNet toolkit: skin lesion diagnosis from a clinical photograph paired with a "
        "skin ultrasound image.\n\n"
        "Example: agfnet synth out/s --n-per-class 20 --size 96 && "
        "agfnet validate out/s/manifest.csv"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("synth")(cli_command(synth.synth))
app.command("validate")(cli_command(data_commands.validate))
app.add_typer(data_commands.import_app, name="import")
app.command("models")(cli_command(model_commands.models))
app.command("train")(cli_command(train.train))
app.command("evaluate")(cli_command(evaluate.evaluate))
app.command("cv")(cli_command(train.cv))
app.command("compare")(cli_command(train.compare))
app.command("demo")(cli_command(train.demo))
app.command("predict")(cli_command(predict.predict))
app.command("export")(cli_command(predict.export))
app.command("explain")(cli_command(explain.explain))
app.command("robustness")(cli_command(robustness.robustness))
app.command("analyze")(cli_command(analyze.analyze))
app.command("serve")(cli_command(serve.serve))
app.command("benchmark")(cli_command(benchmark.benchmark))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
