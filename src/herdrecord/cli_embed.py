"""Commands of the embedder: `embed` (crops to vectors), `embedder` (what a record pins)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.progress import Progress
from rich.table import Table

from herdrecord.cli import RecordPath, app, console, open_from_cli
from herdrecord.embed import Embedder, EmbedderId, decode, image_files
from herdrecord.errors import InvalidInput
from herdrecord.store import Record

WeightsDir = Annotated[
    Path,
    typer.Option(
        "--weights",
        help="Directory of the model's weights (config.json, model.safetensors); never downloaded.",
    ),
]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")]


def load_for_record(record: Record, weights: Path, device: str = "auto") -> Embedder:
    """Load the embedder in `weights` and check it is the record's model (name, dimension,
    and the pinned weights when the record pins them)."""
    with console.status(f"loading the model in {weights}"):
        embedder = Embedder.load(weights, record.embedder.name, device)
    check_same_model(record, embedder.identity)
    return embedder


def check_same_model(record: Record, identity: EmbedderId) -> None:
    """Raise InvalidInput unless `identity` is the model the record's vectors come from."""
    pinned = record.embedder
    if identity.dim != pinned.dim or (
        pinned.weights_sha256 is not None and identity.weights_sha256 != pinned.weights_sha256
    ):
        held = EmbedderId(pinned.name, pinned.dim, pinned.metric, pinned.weights_sha256)
        raise InvalidInput(
            f"the record holds {held.describe()} vectors, these weights are "
            f"{identity.describe()}: vectors of two models never mix; move the record to the "
            f"new model with herdrecord reembed {record.path} --weights DIR"
        )


@app.command(name="embed")
def embed_command(
    path: RecordPath,
    weights: WeightsDir,
    images: Annotated[
        list[Path], typer.Option("--images", help="Image files or directories of crops.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write the vectors: .parquet (file, embedding) or .npy; else print."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024, help="Crops per forward.")] = 32,
    device: Device = "auto",
) -> None:
    """Embed crops with the record's model (the weights are checked against the record)."""
    if out is not None and out.suffix not in (".parquet", ".npy"):
        raise InvalidInput(f"--out {out}: write a .parquet or .npy file")
    record = open_from_cli(path)
    files = list(image_files(images))
    if not files:
        raise InvalidInput("no images found: give image files or folders of .jpg/.png crops")
    embedder = load_for_record(record, weights, device)
    vectors = np.zeros((len(files), embedder.dim), np.float32)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("embedding", total=len(files))
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            crops = []
            for file in chunk:
                try:
                    crops.append(decode(file.read_bytes()))
                except InvalidInput as exc:
                    raise InvalidInput(f"{file}: {exc}") from exc
            vectors[start : start + len(chunk)] = embedder.embed_images(crops, batch_size)
            progress.advance(task, len(chunk))
    identity = embedder.identity
    console.print(
        f"embedded {len(files)} crops with {identity.describe()} on {embedder.device}; "
        f"weights_sha256 {identity.weights_sha256}"
    )
    if out is None:
        table = Table("file", "norm", "first values")
        for file, vector in list(zip(files, vectors, strict=True))[:50]:
            head = " ".join(f"{v:+.3f}" for v in vector[:4])
            table.add_row(str(file), f"{np.linalg.norm(vector):.3f}", head + " …")
        console.print(table)
        return
    if out.suffix == ".npy":
        np.save(out, vectors)
    else:
        flat = pa.array(vectors.ravel(), pa.float32())
        pq.write_table(
            pa.table(
                {
                    "file": [str(f) for f in files],
                    "embedding": pa.FixedSizeListArray.from_arrays(flat, embedder.dim),
                }
            ),
            out,
        )
    console.print(f"wrote {out}")


@app.command(name="embedder")
def embedder_command(
    path: RecordPath,
    pin: Annotated[
        Path | None,
        typer.Option(
            "--pin",
            help="Pin the record to the weights in this directory (a record made without "
            "them); batches stating other weights are then refused.",
        ),
    ] = None,
) -> None:
    """Show the model a record's vectors come from, or pin it to its weights."""
    record = open_from_cli(path)
    if pin is not None:
        embedder = load_for_record(record, pin, "cpu")
        record.pin_embedder(str(embedder.identity.weights_sha256))
    info = record.embedder
    held = EmbedderId(info.name, info.dim, info.metric, info.weights_sha256)
    console.print(f"{record.path}: {held.describe()}")
    if info.weights_sha256:
        console.print(f"weights_sha256 {info.weights_sha256} (edge batches may state it)")
    else:
        console.print("not pinned to weights: pin it with --pin DIR")
