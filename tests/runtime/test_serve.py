"""The JSONL server as the add-on drives it: a real subprocess on pipes."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from model_runtime.errors import ECHO_LIMIT
from model_runtime.request import PROTOCOL_VERSION
from tests.conftest import REPO, runtime_env, speechlike


class Client:
    def __init__(self, model):
        self.proc = subprocess.Popen([sys.executable, "-m", "model_runtime", "serve", "--model", str(model)],
                                     cwd=REPO, env=runtime_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def send(self, obj):
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def event(self, timeout=120):
        t0 = time.time()
        line = self.proc.stdout.readline()
        assert line, "server closed its stdout"
        assert time.time() - t0 < timeout
        return json.loads(line)  # every stdout line must be protocol

    def until(self, event, rid=None):
        seen = []
        while True:
            ev = self.event()
            seen.append(ev)
            if ev.get("event") in (event, "error", "done") and (rid is None or ev.get("id") == rid):
                return ev, seen

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def server(random_model):
    c = Client(random_model)
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


def test_cancel_mid_job_writes_nothing(server, tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, np.tile(speechlike(10.0), 60), 16000)  # 10 minutes: several batches of windows
    out = tmp_path / "cancelled.npz"
    server.send({"op": "predict", "id": 9, "self": str(long), "fps": 30, "out": str(out)})
    while True:
        ev = server.event()
        if ev["event"] == "progress" and ev["stage"] == "network":
            server.send({"op": "cancel", "id": 9})
            break
        assert ev["event"] == "progress", ev
    final, _ = server.until("error", 9)
    assert final["code"] == "cancelled"
    assert not out.exists() and not any(p.name.startswith("cancelled") for p in tmp_path.iterdir())
    server.send({"op": "hello"})
    assert server.event()["event"] == "ready"


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
