"""`agfnet models`: every registered model with its size and inference cost."""

from __future__ import annotations

from pathlib import Path

import typer

from agfnet.cli._common import write_json
from agfnet.errors import UserError
from agfnet.fileio import atomic_write_text

FLOPS_CONVENTION = (
    "GFLOPs = FLOPs / 1e9 for one pair (batch 1, both images) in eval mode, counted by "
    "torch.utils.flop_counter.FlopCounterMode: a multiply-add is 2 FLOPs; convolutions, "
    "matrix products and attention are counted, elementwise ops, norms and pooling are not"
)


def _markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| model | params (M) | GFLOPs | input (px) | description |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| `{r['name']}` | {r['params'] / 1e6:.2f} | {r['gflops']:.3f} | {r['img_size']} "
        f"| {r['description']} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def models(
    json_path: Path | None = typer.Option(
        None, "--json", help="Also write the table as JSON here (and as Markdown beside it)."
    ),
    img_size: int | None = typer.Option(
        None, "--img-size", min=16, help="Measure every model at this side instead of its default."
    ),
    contains: str | None = typer.Option(
        None, "--filter", help="Only the names containing this text, e.g. tiny or agfnet_no."
    ),
) -> None:
    """List every registered model with its parameter count and inference GFLOPs.

    GFLOPs: FLOPs / 1e9 of one pair (batch 1, both images) at the model's
    default input size, counted by torch.utils.flop_counter.FlopCounterMode
    (a multiply-add is 2 FLOPs). Models are built on PyTorch's meta device:
    nothing is allocated or computed.

    Example: agfnet models --filter tiny --json out/models.json
    """
    from rich.console import Console
    from rich.progress import Progress

    from agfnet.models import list_models, model_info
    from agfnet.models.registry import get_entry

    names = list_models(contains)
    if not names:
        raise UserError(
            f"--filter {contains!r} matches no model name: run `agfnet models` to list them all"
        )
    rows = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("measuring models", total=len(names))
        for name in names:
            progress.update(task, description=f"measuring {name}")
            info = model_info(name, img_size=img_size)
            rows.append({"name": name, "description": get_entry(name).description, **info})
            progress.advance(task)
    table = _markdown(rows)
    typer.echo(table, nl=False)
    typer.echo(f"\n{FLOPS_CONVENTION}.")
    if json_path is not None:
        write_json(json_path, {"flops_convention": FLOPS_CONVENTION, "models": rows})
        md_path = Path(json_path).with_suffix(".md")
        atomic_write_text(md_path, table + f"\n{FLOPS_CONVENTION}.\n")
        typer.echo(f"wrote {json_path} and {md_path}", err=True)
