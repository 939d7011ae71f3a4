"""`matcher serve`: the HTTP service on a real uvicorn server over loopback, with the demo index and the real CNN."""
from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from PIL import Image

from matcher import Matcher, add_to_index, build_index
from matcher.building import BuildSettings
from matcher.service import ServiceSettings, create_app
from tests.conftest import DEMO

pytestmark = pytest.mark.slow  # serves an index with the real CNN
LISTING = DEMO / "listings" / "listing_01.jpg"
TOKEN = "test-token-123"


class Served:
    """A create_app server on a free loopback port, in a thread, ready (index loaded) when made."""

    def __init__(self, index: Path, settings: ServiceSettings = ServiceSettings(), admin_token: str | None = TOKEN):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.app = create_app(index, settings, admin_token=admin_token)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        self.client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the service never became ready")

    def close(self):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def served(demo_index):
    server = Served(demo_index)
    yield server
    server.close()


def image_part(data: bytes, name: str = "listing.jpg"):
    return ("image", (name, data, "image/jpeg"))


def test_health_ready_and_index_info(served, demo_index):
    assert served.client.get("/healthz").json() == {"status": "alive"}
    assert served.client.get("/readyz").status_code == 200
    info = served.client.get("/v1/index").json()
    assert info["version"] == (demo_index / "CURRENT").read_text().strip()
    assert info["references"] == sum(info["brands"].values()) > 0
    assert 0 < info["operating_threshold"] < 1 and info["model"].startswith("efficientnet_lite0@")


def test_a_match_answers_what_the_engine_says_with_the_scan_row_fields(served, demo_matcher):
    data = LISTING.read_bytes()
    answer = served.client.post("/v1/match", files=[image_part(data, "../../etc/passwd")],
                                data={"listing_id": "L-1", "title": "replica AAA", "price": "0.50"}).json()
    expected = demo_matcher.match(data)
    assert (answer["status"], answer["verdict"], answer["brand"], answer["reference"], answer["score"]) == \
        ("ok", expected.verdict, expected.brand, expected.reference, round(expected.score, 6))
    assert answer["listing"] == "passwd" and answer["listing_id"] == "L-1"  # a label, never a path
    assert answer["suspicion"] >= answer["score"] * 0.85 and "title" in answer["explanation"]
    assert answer["index_version"] and answer["model"] and answer["checks"] == "full"
    assert answer["matches"][0]["brand"] == expected.brand
    raw = served.client.post("/v1/match", content=data, headers={"content-type": "image/jpeg"}).json()
    assert (raw["verdict"], raw["brand"], raw["score"]) == (answer["verdict"], answer["brand"], answer["score"])


def test_a_batch_answers_in_request_order_with_a_status_per_image(served):
    data = LISTING.read_bytes()
    parts = [image_part(data if k % 2 else b"<html>not an image</html>", f"{k}.jpg") for k in range(5)]
    results = served.client.post("/v1/match/batch", files=parts).json()["results"]
    assert [r["listing"] for r in results] == [f"{k}.jpg" for k in range(5)]
    assert [r["status"] for r in results] == ["not_an_image", "ok", "not_an_image", "ok", "not_an_image"]
    assert results[1]["brand"] == results[3]["brand"] and results[1]["score"] == results[3]["score"]


def bomb() -> bytes:
    """A PNG whose header claims 64 megapixels (over the engine's pixel limit)."""
    out = io.BytesIO()
    Image.new("L", (8000, 8000)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("request_kwargs, status, code", [
    ({"content": b"", "headers": {"content-type": "image/jpeg"}}, 422, "empty"),
    ({"files": [image_part(b"GIF89a but not really")]}, 422, "not_an_image"),
    ({"files": [image_part(b"\x00\x01 plain bytes")]}, 422, "not_an_image"),
    ({"content": b"{}", "headers": {"content-type": "application/json"}}, 415, "unsupported_media_type"),
    ({"files": [("other", ("a.jpg", b"x", "image/jpeg"))]}, 422, "missing_image"),
    ({"files": [image_part(b"x")], "data": {"price": "cheap"}}, 422, "invalid_price"),
    ({"files": [image_part(b"x")], "data": {"top_k": "many"}}, 422, "invalid_top_k"),
])
def test_bad_requests_get_a_json_4xx_and_the_server_keeps_serving(served, request_kwargs, status, code):
    response = served.client.post("/v1/match", **request_kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert served.client.get("/healthz").status_code == 200


def test_a_30_mb_body_is_refused_from_its_declared_length_before_it_is_sent(served):
    import http.client

    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/v1/match")
    connection.putheader("Content-Type", "image/jpeg")
    connection.putheader("Content-Length", str(30_000_000))
    connection.endheaders()  # no body: the answer must not wait for it
    response = connection.getresponse()
    assert response.status == 413 and b"body_too_large" in response.read()
    connection.close()


def test_a_body_without_a_declared_length_is_refused_once_it_passes_the_limit(demo_index):
    server = Served(demo_index, ServiceSettings(max_upload_mb=0.1, reload_interval_s=0))
    try:
        chunks = (b"x" * 50_000 for _ in range(6))  # 300 kB, chunked: the limit is found while reading
        response = server.client.post("/v1/match", content=chunks, headers={"content-type": "image/jpeg"})
        assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
        assert server.client.get("/healthz").status_code == 200
    finally:
        server.close()


def test_a_decompression_bomb_is_refused_as_too_large(served):
    response = served.client.post("/v1/match", files=[image_part(bomb(), "bomb.png")])
    assert response.status_code == 422 and response.json()["error"]["code"] == "too_large"


def test_a_batch_of_100_images_is_refused_whole(served):
    response = served.client.post("/v1/match/batch", files=[image_part(b"x", f"{k}.jpg") for k in range(100)])
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_images"


def test_admin_reload_needs_the_token(served, demo_index):
    assert served.client.post("/v1/admin/reload").status_code == 403
    assert served.client.post("/v1/admin/reload", headers={"authorization": "Bearer wrong"}).status_code == 403
    answer = served.client.post("/v1/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["reloaded"] is False


def test_metrics_follow_prometheus_names(served):
    served.client.post("/v1/match", files=[image_part(LISTING.read_bytes())])
    text = served.client.get("/metrics").text
    for name in ("matcher_requests_total{", "matcher_request_duration_seconds_bucket{", "matcher_batch_size_bucket{",
                 "matcher_queue_depth ", "matcher_verdicts_total{", "matcher_index_info{"):
        assert name in text, name
    assert 'endpoint="/v1/match"' in text and 'verdict="copy"' in text


def test_without_a_token_admin_is_disabled_and_a_full_queue_answers_429(demo_index):
    server = Served(demo_index, ServiceSettings(max_queue=2, reload_interval_s=0), admin_token=None)
    try:
        assert server.client.post("/v1/admin/reload", headers={"authorization": "Bearer x"}).status_code == 404
        parts = [image_part(LISTING.read_bytes(), f"{k}.jpg") for k in range(3)]
        response = server.client.post("/v1/match/batch", files=parts)
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "queue_full"
        assert server.client.post("/v1/match/batch", files=parts[:2]).status_code == 200
    finally:
        server.close()


def test_a_brand_added_under_load_is_served_after_the_switch_without_a_failed_request(tmp_path):
    brands = sorted(p.name for p in (DEMO / "catalog").iterdir() if p.is_dir())
    catalog, extra = tmp_path / "catalog", tmp_path / "extra"
    for root, names in ((catalog, brands[:2]), (extra, brands[2:3])):
        for brand in names:
            shutil.copytree(DEMO / "catalog" / brand, root / brand)
    index = tmp_path / "index"
    build_index(catalog, index, settings=BuildSettings(copies_per_reference=1, background_listings=20))
    new_photo = sorted((extra / brands[2]).glob("*.jpg"))[0].read_bytes()
    server = Served(index, ServiceSettings(reload_interval_s=0.2))
    codes, stop = [], threading.Event()

    def load():
        with httpx.Client(base_url=server.url, timeout=60) as client:
            while not stop.is_set():
                codes.append(client.post("/v1/match", files=[image_part(LISTING.read_bytes())]).status_code)

    workers = [threading.Thread(target=load) for _ in range(3)]
    try:
        for w in workers:
            w.start()
        before = server.client.post("/v1/match", files=[image_part(new_photo)]).json()
        add_to_index(index, extra)
        deadline = time.monotonic() + 60
        while server.client.get("/v1/index").json()["version"] != "v000002" and time.monotonic() < deadline:
            time.sleep(0.1)
        after = server.client.post("/v1/match", files=[image_part(new_photo)]).json()
    finally:
        stop.set()
        for w in workers:
            w.join()
        server.close()
    assert before["brand"] != brands[2] and before["index_version"] == "v000001"
    assert (after["brand"], after["verdict"], after["index_version"]) == (brands[2], "copy", "v000002")
    assert codes and set(codes) == {200}, sorted(set(codes))
    assert Matcher.open(index).match(new_photo).brand == brands[2]


def test_generated_requests_get_no_5xx_and_answers_follow_the_schema(served):
    """Property-based (schemathesis, bounded): requests made from /openapi.json for every endpoint never get a 5xx
    or an answer off the schema, and the admin endpoint refuses a wrong token."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                     status_code_conformance)

    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/match", "/v1/match/batch", "/v1/index", "/v1/admin/reload",
                                              "/healthz", "/readyz", "/metrics"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for operation in operations:
        admin = "admin" in operation.path

        @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=served.url, headers={"authorization": "Bearer wrong"} if admin else None)
            case.validate_response(response, checks=checks)
            assert not admin or response.status_code == 403

        check()
