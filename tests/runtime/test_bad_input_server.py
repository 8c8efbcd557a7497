"""The server's bad-input matrix: each bad field, file or line gets its protocol code and one line
naming the field (`field: problem`) or the file (`FILE: problem`), nothing is written, and the
same server keeps serving.

One server process for the whole module, cases sent one after another: a case reads its own
answer, so an answer that goes missing or comes twice shows up as the wrong answer to a case.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from model_runtime.server import LINE_LIMIT
from tests.conftest import speechlike
from tests.runtime.serve_client import ServeClient


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_input_files")
    sf.write(d / "voice.wav", speechlike(2.0, seed=3), 16000)
    (d / "empty.wav").write_bytes(b"")
    (d / "text.wav").write_text("this is not audio\n")
    (d / "random.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "folder.wav").mkdir()
    (d / "garbage.csv").write_text("what,is,this\n1,2,x\n\x00\x01\n")
    (d / "empty.csv").write_text("")
    (d / "no_channels.csv").write_text("Timecode,BlendShapeCount,Foo\n00:00:00:00.000,1,0.5\n")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(d / "wrong_keys.npz", a=np.zeros(3))
    (d / "folder.csv").mkdir()
    out = d / "out"
    out.mkdir()
    return d


@pytest.fixture(scope="module")
def server(random_model, files):
    c = ServeClient(random_model, cwd=files / "out")  # a relative path lands in the watched folder
    c.hello()
    yield c
    c.close()


def predict(rid, files, **fields):
    """A valid request (it would write out/r.npz) with `fields` replaced; a value None drops the key."""
    req = {"op": "predict", "id": rid, "self": str(files / "voice.wav"), "partner": None,
           "partner_motion": None, "fps": 24, "out": str(files / "out" / "r.npz")}
    req.update(fields)
    return {k: v for k, v in req.items() if v is not None}


# A predict line with one field wrong: (case name, the fields replaced, the field the message names).
FIELD_CASES = [
    ("fps zero", {"fps": 0}, "fps"), ("fps string", {"fps": "24"}, "fps"), ("fps bool", {"fps": True}, "fps"),
    ("fps negative", {"fps": -24}, "fps"), ("fps huge", {"fps": 1e9}, "fps"), ("fps list", {"fps": [24]}, "fps"),
    ("seed negative", {"seed": -1}, "seed"), ("seed string", {"seed": "1"}, "seed"),
    ("seed fraction", {"seed": 1.5}, "seed"), ("seed bool", {"seed": False}, "seed"),
    ("seed object", {"seed": {"n": 1}}, "seed"),
    ("liveliness string", {"liveliness": "false"}, "liveliness"), ("liveliness int", {"liveliness": 0}, "liveliness"),
    ("self number", {"self": 7}, "self"), ("self empty", {"self": ""}, "self"),
    ("self object", {"self": {"path": "voice.wav"}}, "self"), ("self NUL", {"self": "voi\0ce.wav"}, "self"),
    ("out wrong suffix", {"out": "result.txt"}, "out"), ("out list", {"out": ["r.npz"]}, "out"),
    ("out number", {"out": 3}, "out"),
    ("partner number", {"partner": 3}, "partner"),
    ("partner_motion list", {"partner_motion": ["m.csv"]}, "partner_motion"),
    ("partner bool", {"partner": True}, "partner"),
]


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def with_fields(fields):
    return lambda rid, f: predict(rid, f, **fields)


def without(key):
    return lambda rid, f: {k: v for k, v in predict(rid, f).items() if k != key}


# (case name, line builder (rid, files) -> a dict, str or bytes, code, named, id echoed?). `named` is the
# field of a `field: problem` message, or "@name" for a file of the fixture folder (`FILE: problem`).
CASES = [(name, with_fields(fields), "bad_request", field, True) for name, fields, field in FIELD_CASES]
CASES += [
    ("self missing", without("self"), "bad_request", "self", True),
    ("out missing", without("out"), "bad_request", "out", True),
    ("fps NaN", lambda rid, f: json.dumps(predict(rid, f, fps=float("nan"))), "bad_request", "fps", True),
    ("fps Infinity", lambda rid, f: json.dumps(predict(rid, f, fps=float("inf"))), "bad_request", "fps", True),
    ("predict without id", without("id"), "bad_request", "id", False),
    ("id object", lambda rid, f: predict({"a": rid}, f), "bad_request", "id", False),
    ("id list", lambda rid, f: predict([rid], f), "bad_request", "id", False),
    ("id bool", lambda rid, f: predict(True, f), "bad_request", "id", False),
    ("id fraction", lambda rid, f: predict(rid + 0.5, f), "bad_request", "id", False),
    ("id too long", lambda rid, f: predict("x" * 100_000, f), "bad_request", "id", False),
    ("id beyond 64 bits", lambda rid, f: predict(2**70, f), "bad_request", "id", False),
    ("op missing", lambda rid, f: {"id": rid}, "bad_request", "op", True),
    ("op number", lambda rid, f: {"op": 5, "id": rid}, "bad_request", "op", True),
    ("op null", lambda rid, f: {"op": None, "id": rid}, "bad_request", "op", True),
    ("op unknown", lambda rid, f: {"op": "explode", "id": rid}, "bad_request", "op", True),
    ("op huge", lambda rid, f: {"op": "x" * 1_000_000, "id": rid}, "bad_request", "op", True),
    ("cancel without id", lambda rid, f: {"op": "cancel"}, "bad_request", "id", False),
    ("cancel list id", lambda rid, f: {"op": "cancel", "id": [rid]}, "bad_request", "id", False),
    ("cancel object id", lambda rid, f: {"op": "cancel", "id": {"id": rid}}, "bad_request", "id", False),
    ("cancel unseen id", lambda rid, f: {"op": "cancel", "id": rid}, "bad_request", "id", True),
    ("line not JSON", lambda rid, f: "this is {not json", "bad_request", "request", False),
    ("line truncated", lambda rid, f: json.dumps(predict(rid, f))[:40], "bad_request", "request", False),
    ("line a list", lambda rid, f: json.dumps([predict(rid, f)]), "bad_request", "request", False),
    ("line a number", lambda rid, f: "42", "bad_request", "request", False),
    ("line a string", lambda rid, f: '"hello"', "bad_request", "request", False),
    ("line null", lambda rid, f: "null", "bad_request", "request", False),
    ("line not UTF-8", lambda rid, f: b'{"op":"hello","x":"\xc3\x28"}', "bad_request", "request", False),
    ("line garbage bytes", lambda rid, f: bytes(range(1, 10)) + bytes(range(128, 256)), "bad_request", "request",
     False),
    ("line nested too deeply", lambda rid, f: "[" * 200_000, "bad_request", "request", False),
    ("field nested deeply", lambda rid, f: json.dumps(predict(rid, f, self=nested(900))), "bad_request", None, None),
    ("line too long", lambda rid, f: b'{"op":"hello","x":"' + b"a" * (LINE_LIMIT + 1) + b'"}', "bad_request",
     "request", False),
    ("integer too long for JSON", lambda rid, f: '{"op":"hello","id":' + "9" * 5000 + "}", "bad_request", "request",
     False),
    # What only the files can tell: named by path, nothing written.
    ("out folder missing", lambda rid, f: predict(rid, f, out=str(f / "out" / "nope" / "r.npz")), "bad_request",
     "@out/nope/r.npz", True),
    ("self file missing", lambda rid, f: predict(rid, f, self=str(f / "missing.wav")), "bad_audio", "@missing.wav",
     True),
    ("self file empty", lambda rid, f: predict(rid, f, self=str(f / "empty.wav")), "bad_audio", "@empty.wav", True),
    ("self file is text", lambda rid, f: predict(rid, f, self=str(f / "text.wav")), "bad_audio", "@text.wav", True),
    ("self file is random bytes", lambda rid, f: predict(rid, f, self=str(f / "random.wav")), "bad_audio",
     "@random.wav", True),
    ("self is a folder", lambda rid, f: predict(rid, f, self=str(f / "folder.wav")), "bad_audio", "@folder.wav",
     True),
    ("partner file missing", lambda rid, f: predict(rid, f, partner=str(f / "gone.wav")), "bad_audio", "@gone.wav",
     True),
    ("partner file is text", lambda rid, f: predict(rid, f, partner=str(f / "text.wav")), "bad_audio", "@text.wav",
     True),
    ("motion CSV garbage", lambda rid, f: predict(rid, f, partner_motion=str(f / "garbage.csv")), "bad_motion",
     "@garbage.csv", True),
    ("motion CSV empty", lambda rid, f: predict(rid, f, partner_motion=str(f / "empty.csv")), "bad_motion",
     "@empty.csv", True),
    ("motion CSV without channels", lambda rid, f: predict(rid, f, partner_motion=str(f / "no_channels.csv")),
     "bad_motion", "@no_channels.csv", True),
    ("motion file missing", lambda rid, f: predict(rid, f, partner_motion=str(f / "gone.csv")), "bad_motion",
     "@gone.csv", True),
    ("motion is a folder", lambda rid, f: predict(rid, f, partner_motion=str(f / "folder.csv")), "bad_motion",
     "@folder.csv", True),
    ("motion npz garbage", lambda rid, f: predict(rid, f, partner_motion=str(f / "garbage.npz")), "bad_motion",
     "@garbage.npz", True),
    ("motion npz without names", lambda rid, f: predict(rid, f, partner_motion=str(f / "wrong_keys.npz")),
     "bad_motion", "@wrong_keys.npz", True),
]



def cast(rid, files, members=None, **fields):
    """A valid cast (it would write out/A.npz and out/B.npz) with `fields` replaced; None drops a key."""
    voice = str(files / "voice.wav")
    req = {"op": "cast", "id": rid, "fps": 24, "positions": None,
           "members": members if members is not None else [
               {"name": "A", "voice": voice, "out": str(files / "out" / "A.npz")},
               {"name": "B", "voice": voice, "out": str(files / "out" / "B.npz")}]}
    req.update(fields)
    return {k: v for k, v in req.items() if v is not None}


def member(files, name="B", **fields):
    m = {"name": name, "voice": str(files / "voice.wav"), "out": str(files / "out" / f"{name}.npz")}
    m.update(fields)
    return {k: v for k, v in m.items() if v is not None}


def cast_with(*members, **fields):
    """A cast whose members are A (good) and the ones given, each made from the fixture folder."""
    return lambda rid, f: cast(rid, f, [member(f, "A")] + [m(f) for m in members], **fields)


CASES += [
    ("cast members missing", lambda rid, f: {k: v for k, v in cast(rid, f).items() if k != "members"},
     "bad_request", "members", True),
    ("cast members empty", lambda rid, f: cast(rid, f, []), "bad_request", "members", True),
    ("cast members not a list", lambda rid, f: cast(rid, f, "A"), "bad_request", "members", True),
    ("cast too many members", lambda rid, f: cast(rid, f, [member(f, f"m{k}") for k in range(17)]),
     "bad_request", "members", True),
    ("cast member not an object", cast_with(lambda f: "B"), "bad_request", "members[1]", True),
    ("cast member without name", cast_with(lambda f: {"voice": "b.wav"}), "bad_request", "members[1].name", True),
    ("cast member name twice", cast_with(lambda f: member(f, "A", out=str(f / "out" / "A2.npz"))),
     "bad_request", "members[1].name", True),
    ("cast member name a path", cast_with(lambda f: member(f, "../B")), "bad_request", "members[1].name", True),
    ("cast member name too long", cast_with(lambda f: member(f, "x" * 65)), "bad_request", "members[1].name", True),
    ("cast member voice number", cast_with(lambda f: member(f, voice=3)), "bad_request", "members[1].voice", True),
    ("cast member out suffix", cast_with(lambda f: member(f, out="B.wav")), "bad_request", "members[1].out", True),
    ("cast members one out", cast_with(lambda f: member(f, out=str(f / "out" / "A.npz"))), "bad_request",
     "members[1].out", True),
    ("cast nothing to write", lambda rid, f: cast(rid, f, [member(f, "A", out=None)]), "bad_request", "members",
     True),
    ("cast attention string", lambda rid, f: cast(rid, f, attention="no"), "bad_request", "attention", True),
    ("cast positions number", lambda rid, f: cast(rid, f, positions=5), "bad_request", "positions", True),
    ("cast fps zero", lambda rid, f: cast(rid, f, fps=0), "bad_request", "fps", True),
    ("cast without id", lambda rid, f: {k: v for k, v in cast(rid, f).items() if k != "id"}, "bad_request", "id",
     False),
    ("cast voice missing", cast_with(lambda f: member(f, voice=str(f / "missing.wav"))), "bad_audio",
     "@missing.wav", True),
    ("cast voice not audio", cast_with(lambda f: member(f, voice=str(f / "text.wav"))), "bad_audio", "@text.wav",
     True),
    ("cast positions not JSON", lambda rid, f: cast(rid, f, positions=str(f / "garbage.csv")), "bad_request",
     "@garbage.csv", True),
    ("cast positions missing", lambda rid, f: cast(rid, f, positions=str(f / "gone.json")), "bad_request",
     "@gone.json", True),
    ("cast out folder missing", cast_with(lambda f: member(f, out=str(f / "out" / "nope" / "B.npz"))),
     "bad_request", "@out/nope/B.npz", True),
]


@pytest.mark.parametrize("build, code, named, echoes_id", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line_and_nothing_is_written(server, files, build, code, named, echoes_id):
    rid = 1000 + len(server.seen)  # unique per case: an answer meant for another case shows
    server.send(build(rid, files))
    err, _ = server.answer()
    assert err["event"] == "error" and err["code"] == code, err
    message = err["message"]
    assert isinstance(message, str) and "\n" not in message and len(message) < 1000, err
    if named is None:  # nested just under JSON's limit: refused by the field or as a whole line
        assert message.startswith(("self: ", "request: ")), err
    elif named.startswith("@"):
        assert message.startswith(f"{files / named[1:]}: "), err
    else:
        assert message.startswith(f"{named}: "), err
    if echoes_id:
        assert err["id"] == rid, err
    elif echoes_id is False:
        assert err["id"] is None, err
    assert list((files / "out").iterdir()) == [], "a refused request wrote something"
    assert server.quiet(0.05), f"a second answer: {server.seen[-1]}"


def test_the_server_still_serves_a_good_request_after_the_matrix(server, files):
    server.hello()
    out = files / "good.npz"  # outside the watched folder
    server.send(predict("good", files, out=str(out)))
    done, _ = server.answer()
    assert done["event"] == "done" and done["id"] == "good" and out.exists(), done
    out.unlink()
