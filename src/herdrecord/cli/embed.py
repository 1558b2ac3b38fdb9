"""Commands of the embedder: `embed` (crops to vectors), `embedder` (what a record pins)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.progress import Progress
from rich.table import Table

from herdrecord.cli.common import RecordPath, app, console, open_from_cli
from herdrecord.cli.intake import ingest_with_progress
from herdrecord.embedding.model import Embedder, EmbedderId, decode, image_files
from herdrecord.errors import InvalidInput
from herdrecord.store.record import Record

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
            f"new model with herdrecord reembed {record.uri} --weights DIR"
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
    console.print(f"{record.uri}: {held.describe()}")
    if info.weights_sha256:
        console.print(f"weights_sha256 {info.weights_sha256} (edge batches may state it)")
    else:
        console.print("not pinned to weights: pin it with --pin DIR")


@app.command(name="import-mot")
def import_mot(
    path: RecordPath,
    tracks: Annotated[
        Path, typer.Option("--tracks", help="MOTChallenge tracks file (frame,id,x,y,w,h,conf,...).")
    ],
    frames: Annotated[
        Path, typer.Option("--frames", help="The sequence's frame images (000001.jpg ...).")
    ],
    pen: Annotated[str, typer.Option("--pen", help="Pen the camera watches.")],
    camera: Annotated[str, typer.Option("--camera", help="Camera id.")],
    device: Annotated[str, typer.Option("--device", help="Edge device id the batches carry.")],
    weights: WeightsDir,
    start: Annotated[
        datetime,
        typer.Option(
            help="Time of frame 1, with its UTC offset (e.g. 2026-11-20T06:00:00+00:00).",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        ),
    ],
    fps: Annotated[float, typer.Option(min=0.01, max=1000.0, help="Frames per second.")] = 25.0,
    behaviour: Annotated[
        str, typer.Option(help="Behaviour to record (a tracker classifies none).")
    ] = "standing",
    out: Annotated[
        Path | None,
        typer.Option(help="Also keep the batches there as .json.gz (default: not kept)."),
    ] = None,
    torch_device: Annotated[
        str, typer.Option(help="Where the model runs: auto, cpu, cuda, cuda:N.")
    ] = "auto",
) -> None:
    """Import a tracker's MOTChallenge output and its frames: crop and embed every track,
    write edge batches, ingest and link them as the edge's own."""
    import gzip
    import json
    import tempfile

    from herdrecord.embedding.mot import frame_files, mot_batches, read_mot

    record = open_from_cli(path)
    boxes = read_mot(tracks)
    images = frame_files(frames)
    embedder = load_for_record(record, weights, torch_device)
    with console.status(f"cropping and embedding {len({b.track for b in boxes})} tracks"):
        batches = mot_batches(
            boxes,
            images,
            embedder,
            farm_id=record.farm_id,
            device_id=device,
            camera_id=camera,
            pen_id=pen,
            start=start,
            fps=fps,
            behaviour=behaviour,
            max_samples=min(8, record.settings.max_samples_per_tracklet),
            max_keyframes=min(4, record.settings.max_keyframes_per_tracklet),
            max_observations=record.settings.max_observations_per_tracklet,
        )
    with tempfile.TemporaryDirectory(prefix="herdrecord-mot-") as scratch:
        folder = out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for batch in batches:
            name = str(batch["batch_id"]).replace("/", "_") + ".json.gz"
            (folder / name).write_bytes(gzip.compress(json.dumps(batch).encode()))
        result = ingest_with_progress(record, [str(folder)])
    if result.count("rejected"):
        raise typer.Exit(1)


@app.command(name="reembed")
def reembed_command(
    path: RecordPath,
    weights: WeightsDir,
    apply: Annotated[
        bool, typer.Option("--apply", help="Switch the record to the new model once linked.")
    ] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Throw away the work of an earlier run.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Name of the new embedder (default: the record's).")
    ] = None,
    chunk: Annotated[
        int, typer.Option(min=1, max=100_000, help="Tracklets embedded per commit.")
    ] = 256,
    torch_device: Annotated[
        str, typer.Option(help="Where the model runs: auto, cpu, cuda, cuda:N.")
    ] = "auto",
) -> None:
    """Move a record to a new embedder: re-embed its keyframes, re-link in a shadow, show
    which tracklets would change animal; --apply switches over (resumable: run it again)."""
    from herdrecord.embedding.reembed import apply_reembed, finish_switch, reembed

    finished = finish_switch(Path(path).expanduser().resolve())
    if finished is not None:
        console.print(
            f"finished the switch an earlier --apply left halfway: {path} holds the new "
            f"model's record; the old one is in {finished.backup}"
        )
        return
    record = open_from_cli(path)
    with console.status(f"loading the model in {weights}"):
        embedder = Embedder.load(weights, name or record.embedder.name, torch_device)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("re-embedding keyframes", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = reembed(record, embedder, chunk=chunk, restart=restart, progress=advance)
    console.print(
        f"{report.tracklets} tracklets: {report.reembedded} re-embedded with "
        f"{embedder.identity.describe()}, {report.kept} without a keyframe kept on their "
        f"animal; linked {report.linked_before} before, {report.linked_after} after"
    )
    console.print(
        f"[bold]{len(report.changed)}[/] tracklets would change animal "
        f"({report.changed_share:.1%} of those linked); {report.new_animals} new animals"
    )
    table = Table("tracklet", "animal now", "with the new model")
    for change in report.changed[:30]:
        table.add_row(
            f"{change.device_id}:{change.track_id}", change.before or "-", change.after or "-"
        )
    if report.changed:
        console.print(table)
    if not apply:
        console.print(
            f"the record is unchanged; the shadow is in {report.shadow}. Switch with "
            f"herdrecord reembed {path} --weights {weights} --apply"
        )
        return
    final = apply_reembed(record.path)
    console.print(
        f"switched {path} to {embedder.identity.describe()}; the old record is kept in "
        f"{final.backup} until you delete it"
    )
