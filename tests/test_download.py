"""download() and extract_zip() against a real HTTP server on 127.0.0.1 (no outside network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import random
import socket
import threading
import zipfile

import pytest

from sbmoe.data.download import ArchiveError, ChecksumError, DownloadError, download, extract_zip, sha256_file


def _tiny_zip() -> bytes:
    """A small archive: a BEIR-like file and incompressible noise, so that halves are meaningful."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr("tiny/corpus.jsonl", '{"_id": "d1", "title": "", "text": "hello"}\n')
        bundle.writestr("tiny/noise.bin", random.Random(7).randbytes(200_000))
    return buffer.getvalue()


ARCHIVE = _tiny_zip()
DIGEST = hashlib.sha256(ARCHIVE).hexdigest()


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload``; ``server.behaviour`` is one of ok, ignore-range, truncate, error."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        requested = self.headers.get("Range")
        server.ranges.append(requested)
        if server.behaviour == "error":
            self.send_error(500, "Internal Server Error")
            return
        start = 0
        if requested and server.behaviour != "ignore-range":
            start = int(requested.removeprefix("bytes=").split("-")[0])
        body = server.payload[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.behaviour == "truncate":
            body = body[: len(body) // 2]  # then the connection closes (HTTP/1.0)
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    httpd.payload, httpd.behaviour, httpd.ranges = ARCHIVE, "ok", []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/tiny.zip"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.mark.parametrize("pinned", [DIGEST, None], ids=["pinned", "unpinned"])
def test_download_writes_the_file_and_returns_its_digest(server, tmp_path, pinned):
    dest = tmp_path / "tiny.zip"
    assert download(server.url, dest, sha256=pinned) == DIGEST
    assert dest.read_bytes() == ARCHIVE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.zip"]
    assert server.ranges == [None]


def test_existing_file_with_the_pinned_digest_is_not_fetched_again(server, tmp_path):
    dest = tmp_path / "tiny.zip"
    dest.write_bytes(ARCHIVE)
    assert download(server.url, dest, sha256=DIGEST) == DIGEST
    assert server.ranges == []


@pytest.mark.parametrize(("behaviour", "status"), [("ok", 206), ("ignore-range", 200)])
def test_interrupted_download_resumes(server, tmp_path, behaviour, status):
    """A leftover .part is continued with a Range request (206), or restarted when the server answers 200."""
    server.behaviour = behaviour
    dest = tmp_path / "tiny.zip"
    first = 70_001
    (tmp_path / "tiny.zip.part").write_bytes(ARCHIVE[:first])
    assert download(server.url, dest, sha256=DIGEST) == DIGEST
    assert server.ranges == [f"bytes={first}-"]
    assert dest.read_bytes() == ARCHIVE
    assert not (tmp_path / "tiny.zip.part").exists()


def test_checksum_mismatch_names_the_file_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "tiny.zip"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as caught:
        download(server.url, dest, sha256=wrong)
    message = str(caught.value)
    assert str(dest) in message and wrong in message and DIGEST in message
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_names_the_file_and_the_next_run_resumes(server, tmp_path):
    server.behaviour = "truncate"
    dest = tmp_path / "tiny.zip"
    with pytest.raises(DownloadError, match="truncated") as caught:
        download(server.url, dest, sha256=DIGEST)
    assert str(dest) in str(caught.value)
    assert not dest.exists()
    part = tmp_path / "tiny.zip.part"
    assert part.read_bytes() == ARCHIVE[: len(ARCHIVE) // 2]  # kept only for resuming

    server.behaviour = "ok"
    assert download(server.url, dest, sha256=DIGEST) == DIGEST
    assert server.ranges[-1] == f"bytes={len(ARCHIVE) // 2}-"
    assert dest.read_bytes() == ARCHIVE


def test_http_error_names_url_and_status(server, tmp_path):
    server.behaviour = "error"
    with pytest.raises(DownloadError) as caught:
        download(server.url, tmp_path / "tiny.zip")
    assert server.url in str(caught.value) and "500" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_names_url(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/tiny.zip"
    with pytest.raises(DownloadError, match=url):
        download(url, tmp_path / "tiny.zip", timeout=5)


def test_extract_zip_unpacks_every_member(tmp_path):
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(ARCHIVE)
    out = extract_zip(archive, tmp_path / "tiny")
    assert (out / "tiny" / "corpus.jsonl").read_text() == '{"_id": "d1", "title": "", "text": "hello"}\n'
    assert sha256_file(out / "tiny" / "noise.bin") == hashlib.sha256(random.Random(7).randbytes(200_000)).hexdigest()


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _bit_flipped(data: bytes) -> bytes:
    middle = data.index(b"tiny/noise.bin") + 100_000  # inside the stored noise member
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.mark.parametrize(
    "damage", [_truncated, _bit_flipped, lambda data: b"not a zip"], ids=["truncated", "crc", "garbage"]
)
def test_corrupt_archive_is_rejected_and_leaves_nothing(tmp_path, damage):
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(damage(ARCHIVE))
    with pytest.raises(ArchiveError) as caught:
        extract_zip(archive, tmp_path / "tiny")
    assert str(archive) in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.zip"]
