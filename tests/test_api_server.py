"""The service as users run it: `herdrecord serve` in its own process on a loopback port,
driven over real HTTP by httpx, and by schemathesis against its OpenAPI document."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from conftest import make_batch
from herdrecord.api.keys import add_key
from herdrecord.config import Settings
from herdrecord.ingest.ingestor import ingest
from herdrecord.ingest.sources import parse_json
from herdrecord.linking.run import link_pending
from herdrecord.store.record import create_record, open_record
from servers import start_server, stop_server

EXAMPLES = 30  # generated cases per operation in the default run
# Schema-valid requests the service rightly refuses with 422: rules OpenAPI cannot state
# (from <= to, a score within its scale, a batch that passes the edge contract's checks).
BEYOND_THE_SCHEMA = [schemathesis.checks.positive_data_acceptance]
ADMIN = "contract-admin-5e1f"  # a name schemathesis will not guess when it revokes keys


@dataclass
class Server:
    """A running `herdrecord serve` and the keys made for it."""

    url: str
    process: subprocess.Popen[bytes]
    keys: dict[str, str]
    path: Path
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A served record holding a few linked batches, with an edge and an admin key."""
    folder = tmp_path_factory.mktemp("served")
    path = folder / "herd"
    record = create_record(str(path), Settings())
    batches = [make_batch(f"dev-01/2026-11-21T0{i}", track_offset=10 * i) for i in range(3)]
    ingest(record, [parse_json(json.dumps(b).encode(), b["batch_id"]) for b in batches])
    link_pending(record)
    keys = {
        "admin": add_key(record, ADMIN, "admin", "test")[1],
        "edge": add_key(record, "edge-1", "edge", "test")[1],
    }
    log = folder / "serve.log"
    url, process = start_server(
        path, log, HERDRECORD_API_KEY_CACHE_S="0", HERDRECORD_API_LINK_IDLE_S="0.5"
    )
    try:
        yield Server(url, process, keys, path, log)
    finally:
        if process.poll() is None:
            stop_server(process)


def test_a_real_server_takes_an_upload_over_http_and_links_it(server: Server) -> None:
    batch = make_batch("dev-02/2026-11-21T06", device_id="dev-02")
    headers = {"Authorization": f"Bearer {server.keys['edge']}"}
    body = gzip.compress(json.dumps(batch).encode())
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        created = client.post(
            "/v1/batches",
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["batches"][0]["status"] == "accepted"
        again = client.post("/v1/batches", json=batch)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert client.get("/v1/animals").status_code == 403  # an edge key only uploads
    admin = {"Authorization": f"Bearer {server.keys['admin']}"}
    deadline = time.monotonic() + 30
    # Linked once uploads pause (a keyless health check says only ok).
    while httpx.get(f"{server.url}/healthz", headers=admin).json()["unlinked"]:
        assert time.monotonic() < deadline, "the service never linked the upload"
        time.sleep(0.2)
    decided = httpx.post(  # the first query starts the sandbox: ~4.5 s here, more under load
        f"{server.url}/v1/sql",
        headers=admin,
        json={"sql": "SELECT count(*) FROM links WHERE device_id = 'dev-02'"},
        timeout=60,
    )
    assert decided.json()["rows"] == [[3]]  # a link decision for each of its 3 tracklets


def test_keys_and_bodies_never_reach_the_server_log(server: Server) -> None:
    httpx.get(
        f"{server.url}/v1/animals", headers={"Authorization": f"Bearer {server.keys['admin']}"}
    )
    httpx.post(
        f"{server.url}/v1/batches",
        headers={"Authorization": f"Bearer {server.keys['edge']}"},
        content=b"{broken",
    )
    text = server.log.read_text()
    assert "/v1/animals" in text  # the access log is on
    assert all(key not in text and key.split("_", 2)[2] not in text for key in server.keys.values())


def test_stopping_the_server_finishes_in_flight_uploads(tmp_path: Path) -> None:
    path = tmp_path / "herd"
    record = create_record(str(path), Settings())
    key = add_key(record, "edge-1", "edge", "test")[1]
    url, process = start_server(path, tmp_path / "serve.log")
    batches = [make_batch(f"dev-03/{i}", device_id="dev-03", track_offset=10 * i) for i in range(8)]
    headers = {"Authorization": f"Bearer {key}"}
    acknowledged = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for i, batch in enumerate(batches):
            if i == 4:
                process.send_signal(signal.SIGINT)  # stop while uploads keep coming
            try:
                response = client.post("/v1/batches", json=batch)
            except httpx.TransportError:
                break
            if response.status_code == 201:
                acknowledged.append(batch["batch_id"])
            else:
                assert response.status_code == 503, response.text
    assert process.wait(timeout=60) == 0
    ledger = open_record(str(path), Settings()).committed_batch_ids().to_pylist()
    assert len(acknowledged) >= 4
    assert set(acknowledged) <= set(ledger)
    assert len(ledger) == len(set(ledger))


@schemathesis.serializer(
    "application/gzip",
    "application/x-gzip",
    "application/vnd.apache.parquet",
    "application/x-parquet",
)
def _binary(ctx: object, value: object) -> bytes:
    """Send generated binary bodies as they are (the service must refuse them cleanly)."""
    return value if isinstance(value, bytes) else str(value).encode()


def test_the_service_keeps_its_openapi_contract(server: Server) -> None:
    """Every operation, with generated valid and invalid inputs (the same ones every run, so
    CI is repeatable): no server error, and every response (status, content type, headers,
    body) as the OpenAPI document declares it."""
    check_contract(server, EXAMPLES, derandomize=True)


@pytest.mark.slow
def test_the_service_keeps_its_contract_under_fresh_random_inputs(server: Server) -> None:
    """The same, with many more inputs drawn afresh each run."""
    check_contract(server, 200, derandomize=False)


def check_contract(server: Server, examples: int, derandomize: bool) -> None:
    """Run schemathesis over every operation; fail listing each operation that broke."""
    contract = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {server.keys['admin']}"}
    failures: dict[str, str] = {}
    operations = 0
    for found in contract.get_all_operations():
        operation = found.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=derandomize,
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=server.url, headers=headers, excluded_checks=BEYOND_THE_SCHEMA
            )

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # collected: every operation is tried
            failures[operation.label] = str(exc)[:2000]
    assert operations >= 20
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
