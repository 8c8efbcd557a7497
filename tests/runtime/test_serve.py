"""The JSONL server as the add-on drives it: a real subprocess on pipes."""

import io
import json
import os
import threading

import numpy as np
import pytest
import soundfile as sf

from model_runtime.errors import ECHO_LIMIT
from model_runtime.request import PROTOCOL_VERSION
from model_runtime.server import LINE_LIMIT, Channel, Server
from tests.conftest import REPO, speechlike
from tests.runtime.serve_client import ServeClient


@pytest.fixture
def server(random_model):
    c = ServeClient(random_model)
    yield c
    c.close()


def test_hello_jobs_malformed_line_and_shutdown(server, voice_pair, tmp_path):
    server.send({"op": "hello"})
    ready = server.event()
    assert ready["event"] == "ready" and ready["backend"] == "onnx" and ready["trained"] is False
    assert ready["protocol"] == PROTOCOL_VERSION
    for rid, fps in ((1, 24), (2, 60)):  # several jobs in a row, one model load
        out = tmp_path / f"r{rid}.npz"
        server.send({"op": "predict", "id": rid, "self": str(voice_pair[0]), "partner": str(voice_pair[1]),
                     "partner_motion": None, "fps": fps, "out": str(out)})
        done, seen = server.until("done", rid)
        assert done["event"] == "done" and done["frames"] == 12 * fps and out.exists()
        network = [e["value"] for e in seen if e["event"] == "progress" and e["stage"] == "network"]
        assert network and network == sorted(network) and network[-1] == 1.0
        assert np.load(out)["weights"].shape == (12 * fps, 55)
    server.send("this is {not json")
    err = server.event()
    assert err["event"] == "error" and err["code"] == "bad_request"
    server.send({"op": "predict", "id": 3, "self": str(tmp_path / "missing.wav"), "out": str(tmp_path / "x.npz")})
    bad, _ = server.until("error", 3)
    assert bad["code"] == "bad_audio" and "missing.wav" in bad["message"]
    server.send({"op": "hello"})  # still serving after both errors
    assert server.event()["event"] == "ready"
    server.send({"op": "shutdown"})
    assert server.event()["event"] == "bye"
    assert server.proc.wait(timeout=30) == 0


@pytest.fixture
def long_voice(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.tile(speechlike(10.0), 60), 16000)  # 10 minutes: several batches of windows
    return path


def wait_for_network(server, rid):
    """Read progress until job `rid` is inside the network (where cancel is checked between batches)."""
    while True:
        ev = server.event()
        assert ev["event"] == "progress" and ev["id"] == rid, ev
        if ev["stage"] == "network":
            return


def results(folder):
    """Anything a job wrote in `folder`: results and their temporary files."""
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".npz", ".csv"))


def test_cancel_mid_job_writes_nothing(server, long_voice, tmp_path):
    out = tmp_path / "cancelled.npz"
    server.send({"op": "predict", "id": 9, "self": str(long_voice), "fps": 30, "out": str(out)})
    wait_for_network(server, 9)
    server.send({"op": "cancel", "id": 9})
    final, _ = server.until("error", 9)
    assert final["code"] == "cancelled"
    assert results(tmp_path) == []
    server.send({"op": "hello"})
    assert server.event()["event"] == "ready"


def test_cancel_mid_cast_writes_nothing_and_the_server_keeps_serving(server, long_voice, voice_pair, tmp_path):
    members = [{"name": n, "voice": str(v), "out": str(tmp_path / f"{n}.npz")}
               for n, v in (("A", long_voice), ("B", voice_pair[0]), ("C", long_voice))]
    server.send({"op": "cast", "id": "cast", "members": members, "fps": 30})
    wait_for_network(server, "cast")
    server.send({"op": "cancel", "id": "cast"})
    final, _ = server.until("error", "cast")
    assert final["code"] == "cancelled"
    assert results(tmp_path) == []
    server.hello()


def test_cancel_reaches_queued_and_running_jobs_only(server, long_voice, voice_pair, tmp_path):
    server.send({"op": "predict", "id": "long", "self": str(long_voice), "out": str(tmp_path / "long.npz")})
    server.send({"op": "predict", "id": "short", "self": str(voice_pair[0]), "out": str(tmp_path / "short.npz")})
    wait_for_network(server, "long")
    server.send({"op": "cancel", "id": "short"})  # queued: no answer of its own, the job answers in its turn
    server.send({"op": "cancel", "id": "long"})
    first, _ = server.answer()
    second, progress = server.answer()
    assert (first["id"], first["code"]) == ("long", "cancelled"), first
    assert (second["id"], second["code"]) == ("short", "cancelled") and not progress, second
    assert second["message"] == "cancelled before the job started"
    assert results(tmp_path) == []
    server.hello()


def test_cancel_for_an_id_not_queued_or_running_cancels_nothing(server, voice_pair, tmp_path):
    server.send({"op": "cancel", "id": 5})  # before the job exists: must not cancel it later
    assert server.event() == {"id": 5, "event": "error", "code": "bad_request",
                              "message": "id: no queued or running job with this id"}
    out = tmp_path / "later.npz"
    server.send({"op": "predict", "id": 5, "self": str(voice_pair[0]), "out": str(out)})
    done, _ = server.until("done", 5)
    assert done["event"] == "done" and out.exists()
    server.send({"op": "cancel", "id": 5})  # after it finished: gone too
    late = server.event()
    assert (late["id"], late["code"]) == (5, "bad_request") and late["message"].startswith("id: no queued or running")


@pytest.mark.parametrize("how", ["stdin closed", "shutdown"])
def test_stdin_closing_or_shutdown_mid_job_cancels_everything_then_bye(server, long_voice, voice_pair, tmp_path, how):
    server.send({"op": "predict", "id": 1, "self": str(long_voice), "out": str(tmp_path / "long.csv")})
    server.send({"op": "predict", "id": 2, "self": str(voice_pair[0]), "out": str(tmp_path / "queued.npz")})
    wait_for_network(server, 1)
    if how == "shutdown":
        server.send({"op": "shutdown"})
    else:
        server.proc.stdin.close()
    running, _ = server.answer()
    queued, _ = server.answer()
    assert (running["id"], running["event"], running["code"]) == (1, "error", "cancelled"), running
    assert (queued["id"], queued["event"], queued["code"]) == (2, "error", "cancelled"), queued
    assert server.answer()[0] == {"event": "bye"}
    assert server.proc.wait(timeout=30) == 0
    assert results(tmp_path) == []


def test_a_reader_thread_that_dies_still_ends_the_server():
    """Whatever breaks the reader, the server shuts down as on `shutdown` instead of living on deaf."""

    class Breaks(io.BytesIO):
        def readline(self, size=-1):
            line = super().readline(size)
            if not line:
                raise OSError("stdin broke")
            return line

    out = io.StringIO()
    server = Server(Channel(out))  # no model: a job that ran would answer no_model
    stream = Breaks(b'{"op":"predict","id":1,"self":"a.wav","out":"a.npz"}\n')
    reader = threading.Thread(target=server.read_requests, args=(stream,))
    reader.start()
    reader.join(10)
    assert not reader.is_alive()
    assert server.run() == 0
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"id": 1, "event": "error", "code": "cancelled",
         "message": "the server is shutting down before the job started"},
        {"event": "bye"}]


def test_lines_of_any_size_and_bytes_are_answered(server):
    too_long = b'{"op":"hello","pad":"' + b"a" * (LINE_LIMIT + 10) + b'"}'
    for line, message in [(b'{"op":"hello","x":"\xff\xfe"}', "request: not UTF-8 text"),
                          (b"[" * 100_000, "request: JSON nested too deeply"),
                          (too_long, "request: line longer than 16 MiB"),
                          (b"\x00\x01garbage\x7f", "request: not JSON")]:
        server.send(line)
        err = server.event()
        assert err["code"] == "bad_request" and err["id"] is None and err["message"].startswith(message), err
    server.send(b"   \t")  # a blank line needs no answer
    server.hello()


def test_stdin_closing_ends_the_server(server):
    server.proc.stdin.close()
    assert server.event()["event"] == "bye"
    assert server.proc.wait(timeout=30) == 0
    assert os.path.exists(REPO / "model_runtime" / "server.py")


BAD_FIELDS = [
    ({"fps": 0}, "fps"), ({"fps": "24"}, "fps"), ({"fps": True}, "fps"), ({"fps": -24}, "fps"),
    ({"seed": -1}, "seed"), ({"seed": "1"}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": False}, "seed"),
    ({"liveliness": "false"}, "liveliness"), ({"liveliness": 0}, "liveliness"),
    ({"self": 7}, "self"), ({"self": ""}, "self"), ({"self": None}, "self"), ({"out": None}, "out"),
    ({"out": "result.txt"}, "out"), ({"partner": 3}, "partner"), ({"partner_motion": ["m.csv"]}, "partner_motion"),
]


def test_a_bad_field_is_refused_by_name_and_the_server_keeps_serving(server, voice_pair, tmp_path):
    for rid, (bad, field) in enumerate(BAD_FIELDS):
        server.send({"op": "predict", "id": rid, "self": str(voice_pair[0]), "out": str(tmp_path / "o.npz"), **bad})
        err = server.event()
        assert err["event"] == "error" and err["id"] == rid and err["code"] == "bad_request", (bad, err)
        assert err["message"].startswith(f"{field}: ") and "\n" not in err["message"], (bad, err)
        server.send({"op": "hello"})
        assert server.event()["event"] == "ready"
    assert not (tmp_path / "o.npz").exists()


def test_ids_are_checked_and_long_values_are_echoed_bounded(server, voice_pair, tmp_path):
    server.send({"op": "predict", "self": str(voice_pair[0]), "out": str(tmp_path / "o.npz")})
    err = server.event()
    assert err["code"] == "bad_request" and err["id"] is None and err["message"].startswith("id: ")
    for rid in ([1], {"a": 1}, True, None):  # a list id would once have killed the reader thread
        server.send({"op": "cancel", "id": rid})
        err = server.event()
        assert err["code"] == "bad_request" and err["id"] is None and err["message"].startswith("id: ")
    huge = "/no/such/folder/" + "a" * 10_000_000  # 10 MB
    server.send({"op": "predict", "id": 7, "self": huge + ".wav", "out": str(tmp_path / "o.npz")})
    missing, _ = server.until("error", 7)
    assert missing["code"] == "bad_audio" and "audio file not found" in missing["message"]
    server.send({"op": "predict", "id": 8, "self": str(voice_pair[0]), "out": huge + ".txt"})
    refused = server.event()
    assert refused["code"] == "bad_request" and refused["message"].startswith("out: ")
    server.send({"op": huge})
    unknown = server.event()
    assert unknown["code"] == "bad_request" and unknown["message"].startswith("op: ")
    for err in (missing, refused, unknown):
        assert "characters)" in err["message"] and len(err["message"]) < ECHO_LIMIT + 200, err
    server.send({"op": "hello"})
    assert server.event()["event"] == "ready"
