"""Fuzz the JSONL server: thousands of random and mutated request lines into one real `serve`
process, after which it still answers `hello`, has answered every line as the protocol allows
(one final answer each, never `internal`, never a traceback) and has written nothing.

The generator is seeded (SEED), so a failure replays exactly. Lines are sent one at a time and
each answer read before the next line, so every answer is tied to the line that caused it.

Nothing may be written, so no line may be a predict that could succeed: the one real voice file
is only sent as `self` with an `out` in a folder that does not exist, that pair is never touched by
the mutations, and `could_write` checks every line as the server would read it.
"""

import json
import os
import random
import threading

import pytest
import soundfile as sf

from model_runtime.request import PredictRequest, RequestError, check_id
from model_runtime.server import JSON_SPACE, LINE_LIMIT, MESSAGE_LIMIT
from tests.conftest import speechlike
from tests.runtime.serve_client import ServeClient

SEED = 20240613
LINES = 3000
# Far from the ~1000 levels where json gives up, so that the server's parse and this test's agree.
SHALLOW, DEEP = 400, 5000
ALLOWED_CODES = {"bad_request", "bad_audio", "bad_motion"}  # no model problem, no cancel, never internal

UNICODE = ["é", "ß", "Ω", "Я", "ש", "مرحبا", "中文", "😀", "🧑‍🤝‍🧑", "\u0301", "\u200b", "\u202e", "\ufeff", "\x7f",
           "\x1b[31m", "\t", "\r", "\x00", "\ud800", "\udfff", "\\", '"', "/", "..", "\u2028", "\uffff"]


class Lines:
    """The seeded line generator: each call of `line()` gives one request line (bytes, no newline)."""

    def __init__(self, rng, root):
        files, out = root / "files", root / "out"
        self.rng = rng
        self.voice = str(files / "voice.wav")
        self.bad_audio = [str(files / n) for n in ("missing.wav", "empty.wav", "text.wav", "folder.wav",
                                                   "garbage.csv")] + ["voice.wav", "", "~/voice.wav", ".", "/"]
        self.motion = [str(files / n) for n in ("garbage.csv", "missing.csv", "empty.csv", "garbage.npz",
                                                "folder.wav")] + [self.voice]
        self.outs = [str(out / "r.npz"), str(out / "r.csv"), "r.npz", "sub/r.csv", str(out / "R.NPZ"),
                     str(out / "nope" / "r.npz"), str(out), str(out / "r.txt")]
        self.no_folder_out = str(out / "nope" / "r.npz")
        self.ids = [0]

    # -- values ---------------------------------------------------------------------------------
    def string(self):
        r = self.rng
        kind = r.random()
        if kind < 0.3:
            return "".join(r.choice(UNICODE) for _ in range(r.randint(0, 6)))
        if kind < 0.5:
            return "".join(chr(r.randint(32, 126)) for _ in range(r.randint(0, 40)))
        if kind < 0.6:
            return "".join(chr(r.randint(0, 0x10FFFF)) for _ in range(r.randint(1, 20)))
        if kind < 0.8:
            return r.choice(self.bad_audio + self.motion + self.outs)
        if kind < 0.9:
            return r.choice(self.bad_audio) + r.choice(["", ".wav", ".npz", ".csv", "/", "\x00", "😀"])
        return r.choice(["predict", "hello", "cancel", "Predict", "HELLO", " hello", "null", "true", "0"])

    def value(self, depth=0):
        r = self.rng
        kind = r.randrange(10 if depth < 3 else 7)
        if kind == 0:
            return None
        if kind == 1:
            return r.choice([True, False])
        if kind == 2:
            return r.choice([0, 1, -1, 24, 30, 1000, 1001, 2**31, 2**63, -(2**63) - 1, 2**64, 10**300,
                             r.randint(-10**6, 10**6)])
        if kind == 3:
            return r.choice([0.0, 0.5, -0.0, 23.976, 1e-300, 1e300, float("nan"), float("inf"), -float("inf"),
                             r.uniform(-2000, 2000)])
        if kind in (4, 5, 6):
            return self.string()
        if kind in (7, 8):
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        return {self.string(): self.value(depth + 1) for _ in range(r.randint(0, 4))}

    def new_id(self):
        rid = len(self.ids) if self.rng.random() < 0.7 else f"job-{len(self.ids)}"
        self.ids.append(rid)
        return rid

    # -- requests ---------------------------------------------------------------------------------
    def predict(self, real_voice):
        r = self.rng
        req = {"op": "predict", "id": self.new_id(),
               "self": self.voice if real_voice else r.choice(self.bad_audio),
               "partner": r.choice([None, self.voice] + self.bad_audio),
               "partner_motion": r.choice([None] + self.motion),
               "fps": r.choice([24, 25, 29.97, 30, 60]), "liveliness": r.choice([True, False]),
               "seed": r.randint(0, 99), "out": self.no_folder_out if real_voice else r.choice(self.outs)}
        for key in ("partner", "partner_motion", "fps", "liveliness", "seed"):
            if r.random() < 0.3:
                del req[key]
        return req

    def mutate(self, obj, protected=()):
        r = self.rng
        for _ in range(r.randint(1, 3)):
            keys = [k for k in obj if k not in protected]
            what = r.randrange(6)
            if what == 0 and keys:
                obj[r.choice(keys)] = self.value()
            elif what == 1 and keys:
                del obj[r.choice(keys)]
            elif what == 2:
                names = ["op", "id", "self", "partner", "partner_motion", "fps", "seed", "liveliness", "out"]
                obj[r.choice([k for k in names if k not in protected] + [self.string()])] = self.value()
            elif what == 3 and keys:
                key = r.choice(keys)
                obj[r.choice([key.upper(), key + " ", key.capitalize()])] = obj.pop(key)
            elif what == 4 and keys:
                key = r.choice(keys)
                obj[key] = r.choice([{key: obj[key]}, [obj[key]], str(obj[key])])
            elif "op" not in protected:
                obj["op"] = r.choice(["predict", "cancel", "hello", "", "Predict", "predict ", 7, None, ["hello"],
                                      {"op": "hello"}, "x" * r.randint(1, 5000), self.string()])
        return obj

    def huge_string(self):
        return self.rng.choice(["a", "é", "😀", "/"]) * self.rng.randint(10**4, 4 * 10**5)

    def text_mutation(self, data: bytes) -> bytes:
        r = self.rng
        b = bytearray(data)
        for _ in range(r.randint(1, 4)):
            what = r.randrange(5)
            i = r.randrange(len(b) + 1)
            if what == 0:
                del b[i:]  # truncated line
            elif what == 1 and i < len(b):
                b[i] = r.randrange(256)
            elif what == 2:
                b[i:i] = r.randbytes(r.randint(1, 8))
            elif what == 3:
                del b[i:i + r.randint(1, 10)]
            else:
                b[i:i] = b[max(0, i - 20):i]
        return bytes(b)

    def nested(self, depth):
        r = self.rng
        value = r.choice([[], {}, 1, "x"])
        for _ in range(depth):
            value = [value] if r.random() < 0.5 else {"a": value}
        return value

    def line(self) -> bytes:
        r = self.rng
        kind = r.random()
        if kind < 0.26:  # a predict with wrong, missing or extra fields; ids of every type
            return dump(self.mutate(self.predict(real_voice=False)))
        if kind < 0.34:  # the real voice: every field may be wrong but self and out, whose folder is missing
            obj = self.predict(real_voice=True)
            return dump(self.mutate(obj, protected=("op", "self", "out")) if r.random() < 0.7 else obj)
        if kind < 0.44:  # cancel: nothing is ever queued or running when it arrives
            obj = {"op": "cancel", "id": r.choice(self.ids + [self.value()])}
            return dump(self.mutate(obj) if r.random() < 0.5 else obj)
        if kind < 0.49:
            return dump(self.mutate({"op": "hello"}, protected=("op",)) if r.random() < 0.5 else {"op": "hello"})
        if kind < 0.66:  # a valid line cut, flipped, spliced
            return self.text_mutation(dump(self.predict(real_voice=False)))
        if kind < 0.74:  # any JSON value at all
            return dump(self.value())
        if kind < 0.79:  # garbage bytes, invalid UTF-8 among them
            return r.randbytes(r.randint(1, 300))
        if kind < 0.83:  # invalid UTF-8 inside an otherwise valid request
            data = dump(self.predict(real_voice=False))
            i = data.index(b'"self":') + 9
            return data[:i] + r.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]) + data[i:]
        if kind < 0.87:  # nesting: fine, or far too deep for json
            if r.random() < 0.5:
                return r.choice([b"[", b'{"a":', b'{"op":"predict","id":1,"self":[']) * r.randint(DEEP, 4 * DEEP)
            obj = self.predict(real_voice=False)
            obj[r.choice(["self", "id", "fps", "junk"])] = self.nested(r.randint(10, SHALLOW))
            return dump(obj)
        if kind < 0.89:  # a huge value: echoed bounded
            obj = self.predict(real_voice=False)
            obj[r.choice(["self", "out", "id", "op", "partner", "junk"])] = self.huge_string()
            return dump(obj)
        if kind < 0.93:  # odd but valid JSON text: duplicate keys, whitespace, escapes
            rid = self.new_id()
            return r.choice([
                f'{{"op":"predict","op":"hello","id":{json.dumps(rid)}}}',
                f'{{"op":"hello","op":"cancel","id":{json.dumps(rid)}}}',
                f' \t {{ "op" : "cancel" , "id" : {json.dumps(rid)} }} \r',
                f'{{"\\u006fp":"predict","id":{json.dumps(rid)},"self":"\\u0000","out":"a.npz"}}',
                '{"op":"hello"}{"op":"hello"}', '{"op":"hello"} trailing', "\ufeff{\"op\":\"hello\"}",
                '{"op":"predict","id":1e400}', '{"op":"cancel","id":NaN}', '{"op":"cancel","id":-Infinity}',
            ]).encode("utf-8", "surrogatepass")
        if kind < 0.95:  # blank lines need no answer
            return r.choice([b"", b" ", b"\t\t", b"\r"])
        return dump({"op": "predict", "id": self.new_id(), "self": self.string(), "out": self.string()})


def dump(obj) -> bytes:
    """One JSON line; lone surrogates are escaped by json itself."""
    return json.dumps(obj).encode("ascii")


def parsed(raw):
    """The line as the server reads it, or None where it is not a JSON object."""
    try:
        obj = json.loads(raw.strip(JSON_SPACE).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def expected(raw):
    """What the one answer to `raw` must be: None for a blank line (no answer), else (event, id)."""
    if len(raw) <= LINE_LIMIT and not raw.strip(JSON_SPACE):
        return None
    obj = parsed(raw) if len(raw) <= LINE_LIMIT else None
    if obj is None:
        return "error", None
    if obj.get("op") == "hello":
        return "ready", None
    try:
        return "error", check_id(obj.get("id"))
    except RequestError:
        return "error", None


def could_write(raw, root):
    """True where the line, as the server reads it, is a predict that might write a result."""
    obj = parsed(raw)
    if obj is None or obj.get("op") != "predict":
        return False
    try:
        req = PredictRequest.from_json(obj)
    except (RequestError, RecursionError):
        return False
    cwd = root / "cwd"
    if not os.path.isfile(cwd / req.self_audio) or os.path.getsize(cwd / req.self_audio) == 0:
        return False
    return os.path.isdir(os.path.dirname(cwd / req.out))


def snapshot(root):
    """Every file and folder under `root`, files with size and time. Folder times are left out: a job
    may probe that its output folder is writable (a file made and removed at once) before failing."""
    return sorted((str(p.relative_to(root)),) + (() if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns))
                  for p in root.rglob("*") if p.name != "stderr.log")


def generate(root):
    """All the lines, made on a thread of their own: `parsed` must meet the same recursion depth as
    the server's reader thread, not pytest's deep stack."""
    result = {}

    def work():
        gen = Lines(random.Random(SEED), root)
        lines, replaced = [], 0
        for _ in range(LINES):
            raw = gen.line().replace(b"\n", b" ")
            obj = parsed(raw)
            if (obj is not None and obj.get("op") == "shutdown") or could_write(raw, root):
                raw, replaced = b'{"op":"hello"}', replaced + 1
            lines.append(raw)
        at = random.Random(SEED).randrange(len(lines))
        lines.insert(at, b'{"op":"predict","id":1,"self":"' + b"a" * (LINE_LIMIT + 1) + b'"}')
        result.update(lines=lines, replaced=replaced, expected=[expected(raw) for raw in lines])

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return result["lines"], result["expected"], result["replaced"]


@pytest.fixture
def fuzz_root(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    sf.write(files / "voice.wav", speechlike(2.0, seed=5), 16000)
    (files / "empty.wav").write_bytes(b"")
    (files / "text.wav").write_text("not audio\n")
    (files / "folder.wav").mkdir()
    (files / "garbage.csv").write_text("Timecode,JawOpen\nnot,a number\n")
    (files / "empty.csv").write_text("")
    (files / "garbage.npz").write_bytes(b"\x00" * 64)
    (tmp_path / "out").mkdir()
    (tmp_path / "cwd").mkdir()  # the server's working folder: relative paths land here
    return tmp_path


def test_thousands_of_bad_lines_leave_the_server_serving_and_nothing_written(random_model, fuzz_root):
    lines, answers, replaced = generate(fuzz_root)
    assert replaced < LINES // 20, f"{replaced} generated lines were replaced: the generator drifted"
    before = snapshot(fuzz_root)
    with open(fuzz_root / "stderr.log", "wb") as log:
        client = ServeClient(random_model, cwd=fuzz_root / "cwd", stderr=log)
    try:
        client.hello()
        counts = {}
        for n, (raw, want) in enumerate(zip(lines, answers)):
            client.send(raw)
            if want is None:
                continue
            where = f"line {n}: {raw[:300]!r}"
            ev, progress = client.answer(timeout=30)
            event, rid = want
            assert ev.get("event") == event, f"{where} -> {ev}"
            assert all(p.get("id") == ev.get("id") for p in progress), f"{where} -> {progress}"
            if event == "error":
                counts[ev["code"]] = counts.get(ev["code"], 0) + 1
                assert ev["code"] in ALLOWED_CODES, f"{where} -> {ev}"
                assert ev["id"] == rid, f"{where} -> {ev}"
                message = ev["message"]
                assert isinstance(message, str) and "\n" not in message and "Traceback" not in message, where
                assert len(message) <= MESSAGE_LIMIT + 40, f"{where} -> {message[:300]}"
        assert client.quiet(0.5), f"an answer nobody asked for: {client.seen[-1]}"
        client.hello()  # still serving
        assert set(counts) >= {"bad_request", "bad_audio"}, counts  # the fuzz reached the jobs, not only the parser
        client.send({"op": "shutdown"})
        assert client.event() == {"event": "bye"}
        assert client.proc.wait(timeout=30) == 0
    finally:
        client.close()
    assert snapshot(fuzz_root) == before, "the fuzz wrote or changed files"
    stderr = (fuzz_root / "stderr.log").read_text(errors="replace")
    assert "Traceback" not in stderr, stderr[-3000:]


def test_the_generator_is_deterministic_and_mixed(tmp_path):
    """The same seed gives the same lines, and they cover what the fuzz claims to send."""
    a, b = Lines(random.Random(SEED), tmp_path), Lines(random.Random(SEED), tmp_path)
    lines = [a.line() for _ in range(1000)]
    assert lines == [b.line() for _ in range(1000)]
    objs = [parsed(raw) for raw in lines]
    assert sum(o is None for o in objs) > 100  # malformed: cut, garbage, not UTF-8, too deep
    assert sum(o is not None and o.get("op") == "predict" for o in objs) > 200
    assert sum(o is not None and o.get("op") == "cancel" for o in objs) > 50
    assert any(b"\xff" in raw for raw in lines) and any(len(raw) > 10**5 for raw in lines)
    assert {type(o.get("id")).__name__ for o in objs if o is not None} >= {"int", "str", "list", "dict", "NoneType"}
