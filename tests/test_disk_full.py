"""A full disk is named where it happens: the memory-mapped prefix cache (which would otherwise die
with ``Bus error``), every atomic write, and a download (which would otherwise pass for a truncated
one to resume)."""

from __future__ import annotations

import errno
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from sbmoe.data.download import download
from sbmoe.io.atomic import DiskFullError, atomic_path, write_json
from sbmoe.models.encoder import TINY_RANDOM_MODEL, EncoderConfig
from sbmoe.models.prefix import compute_prefix
from sbmoe.models.retriever import ModelConfig, Retriever


def test_a_full_disk_while_writing_a_prefix_cache_names_the_file_and_the_bytes(tmp_path, monkeypatch):
    encoder = EncoderConfig(TINY_RANDOM_MODEL, query_max_length=16, doc_max_length=24)
    model = Retriever(ModelConfig(encoder, variant="finetune", encoder_trained=False))

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    output = tmp_path / "prefix" / "corpus-0"
    with pytest.raises(DiskFullError) as caught:
        compute_prefix(model.encoder, ["a", "b"], ["a text", "another text"], "doc", 1, output, progress=False)
    message = str(caught.value)
    assert message.startswith(f"{output / 'tokens.npy'}: no space left on device ("), message
    assert "bytes needed" in message and "free there" in message, message
    assert not output.exists() and not any(output.parent.iterdir())


def test_a_full_disk_in_an_atomic_write_names_the_output(tmp_path):
    output = tmp_path / "results" / "eval.json"
    with pytest.raises(DiskFullError, match=rf"^{output}: no space left on device \([\d,]+ bytes free there\)"):
        with atomic_path(output) as tmp:
            tmp.write_text("{")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert not output.exists()
    write_json(output, {"a": 1})  # other errors and successful writes are untouched
    assert json.loads(output.read_text()) == {"a": 1}


class _Payload(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


PAYLOAD = bytes(range(256)) * 64


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_downloading_is_named_not_a_truncated_download(tmp_path, monkeypatch):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Payload)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    real_open = Path.open

    def open_part(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        return _FullDisk(handle) if self.name.endswith(".part") else handle

    monkeypatch.setattr(Path, "open", open_part)
    dest = tmp_path / "downloads" / "archive.zip"
    try:
        with pytest.raises(
            DiskFullError,
            match=rf"^{dest}.part: no space left on device \({len(PAYLOAD):,} bytes "
            "needed, [\\d,]+ bytes free there\\)",
        ):
            download(f"http://127.0.0.1:{httpd.server_address[1]}/archive.zip", dest)
    finally:
        httpd.shutdown()
    assert not dest.exists()
