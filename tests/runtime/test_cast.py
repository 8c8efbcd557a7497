"""A cast: any number of characters, one voice track each, through the shipped model.

Audio is made here: each member's microphone holds its own voice loud during its turns and the
others faintly (bleed), over room noise, written to real files.
"""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from model_runtime.audio import Samples
from model_runtime.cast import MelInputs, SumOf, face_weights, partner_holders, plan, read_positions, run_cast
from model_runtime.channels import CHANNELS
from model_runtime.errors import BadInput, Cancelled
from model_runtime.liveliness import cast_voice_activity, voice_activity
from model_runtime.predict import load_predictor, run_predict
from model_runtime.request import CastRequest, PredictRequest, RequestError
from tests.conftest import REPO, run_runtime
from tests.runtime.serve_client import ServeClient

SR = 16000
JAW = CHANNELS.index("jawOpen")
YAW = CHANNELS.index("headYaw")
SHIPPED = REPO / "assets" / "duet_dualtalk.onnx"
# (member, start s, end s): three people taking turns, with pauses, one short overlap.
TURNS = [(0, 0.4, 4.2), (1, 4.8, 8.6), (2, 9.1, 13.4), (0, 13.6, 16.8), (2, 17.4, 21.0), (1, 21.3, 25.2)]
SECONDS = 26.0


def voices(turns, seconds, n, seed=0, bleed=0.05):
    """(n, samples) microphone tracks: own voice in own turns, the others' bleed, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None)
    dry = []
    for k in range(n):
        f0 = 110.0 + 55.0 * k
        gate = np.zeros(len(t))
        for who, a, b in turns:
            if who == k:
                gate[int(a * SR):int(b * SR)] = 1.0
        dry.append(0.2 * gate * syllables * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8)))
    dry = np.array(dry)
    tracks = dry + bleed * (dry.sum(0) - dry) + 0.002 * rng.standard_normal(dry.shape)
    return tracks.astype(np.float32)


def write_tracks(folder, tracks, names="ABCDEFGH"):
    paths = []
    for k, x in enumerate(tracks):
        paths.append(folder / f"{names[k]}.wav")
        sf.write(paths[-1], x, SR)
    return paths


@pytest.fixture(scope="module")
def predictor():
    return load_predictor(str(SHIPPED), announce=False)


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    d = tmp_path_factory.mktemp("trio")
    return write_tracks(d, voices(TURNS, SECONDS, 3))


def cast(paths, folder, names="ABC", outs=None, **kw):
    members = [{"name": n, "voice": str(p), "out": str(folder / f"{n}.npz") if outs is None or outs[k] else None}
               for k, (n, p) in enumerate(zip(names, paths))]
    return CastRequest(members=members, **kw)


def curves(path):
    with np.load(path) as z:
        return z["weights"], float(z["fps"])


def spans(turns, fps, who, own, trim=0.3):
    """Frames inside the turns of `who` (own) or of everyone else (not own), trimmed at the edges."""
    m = np.zeros(int(SECONDS * fps) + 1, bool)
    for k, a, b in turns:
        if (k == who) == own:
            m[int((a + trim) * fps):int((b - trim) * fps)] = True
    return m


def test_each_member_speaks_in_its_own_turns_and_rests_in_the_others(predictor, trio, tmp_path):
    done = run_cast(predictor, cast(trio, tmp_path, fps=30.0))
    assert sorted(done["outs"]) == ["A", "B", "C"] and done["frames"] == 780
    for k, name in enumerate("ABC"):
        w, fps = curves(done["outs"][name])
        assert w.shape == (780, 55) and fps == 30.0
        own = w[spans(TURNS, fps, k, True)[:len(w)], JAW].mean()
        others = w[spans(TURNS, fps, k, False)[:len(w)], JAW].mean()
        # Leakage: the jaw while the others speak, against the jaw in its own speech.
        assert own > 0.1, (name, own)
        assert others < 0.15 * own, (name, own, others)


def triangle(c_x):
    """A and B face each other across the y axis; C sits at x = c_x, facing the middle."""
    return {"version": 1, "characters": {
        "A": {"position": [0.0, 1.0, 1.6], "forward": [0, -1, 0]},
        "B": {"position": [0.0, -1.0, 1.6], "forward": [0, 1, 0]},
        "C": {"position": [c_x, 0.0, 1.6], "forward": [-np.sign(c_x), 0, 0]},
        "Someone else": {"position": [9, 9, 9], "forward": [1, 0, 0]}}}


def test_listeners_turn_toward_the_speaker_as_the_seating_says(predictor, trio, tmp_path):
    yaw = {}
    for c_x in (1.5, -1.5):
        folder = tmp_path / f"c{c_x}"
        folder.mkdir()
        (folder / "positions.json").write_text(json.dumps(triangle(c_x)))
        done = run_cast(predictor, cast(trio, folder, positions=str(folder / "positions.json"), fps=25.0,
                                        liveliness=False))
        yaw[c_x] = {n: curves(p)[0][:, YAW] for n, p in done["outs"].items()}
    c_turn = spans(TURNS, 25.0, 2, True, trim=0.8)[:650]  # C speaking, after the listeners' reaction
    # A faces -Y, so its own left is +X: C at +X is to A's left (+ yaw), and to B's right (- yaw).
    for name, sign in (("A", 1.0), ("B", -1.0)):
        here, mirrored = yaw[1.5][name][c_turn].mean(), yaw[-1.5][name][c_turn].mean()
        assert sign * here > 0.1 and sign * mirrored < -0.1, (name, here, mirrored)
    # The network's own head motion is the same in both: outside C's turns, and for C itself, the
    # seating changes little.
    a_turn = spans(TURNS, 25.0, 0, True, trim=0.8)[:650]
    assert abs(yaw[1.5]["B"][a_turn].mean() - yaw[-1.5]["B"][a_turn].mean()) < 0.05


def test_a_muted_member_is_heard_but_not_written(predictor, trio, tmp_path):
    done = run_cast(predictor, cast(trio, tmp_path, outs=[True, True, False], attention=False))
    assert sorted(done["outs"]) == ["A", "B"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.npz", "B.npz"]
    w, fps = curves(done["outs"]["A"])
    # C still takes the floor: A is quiet while C speaks.
    assert w[spans(TURNS, fps, 2, True)[:len(w)], JAW].mean() < 0.05


def test_cancel_mid_cast_writes_nothing(predictor, trio, tmp_path):
    seen = []

    def progress(stage, value):
        seen.append((stage, value))

    with pytest.raises(Cancelled):
        run_cast(predictor, cast(trio, tmp_path), progress, cancel=lambda: any(s == "network" and v > 0.3
                                                                                 for s, v in seen))
    assert list(tmp_path.iterdir()) == []
    assert max(v for s, v in seen if s == "network") < 1.0


def test_bad_audio_for_one_member_names_that_file_and_writes_nothing(predictor, trio, tmp_path):
    bad = tmp_path / "voice.wav"
    bad.write_text("this is not audio\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BadInput) as err:
        run_cast(predictor, cast([trio[0], bad, trio[2]], out))
    assert err.value.code == "bad_audio" and str(err.value).startswith(f"{bad}: not a readable audio file")
    assert list(out.iterdir()) == []


def conversation_mode(predictor, a, b, folder, fps):
    """The add-on's conversation mode: A alone, B given A's result, A given B's result."""
    run_predict(predictor, PredictRequest(str(a), str(folder / "draft.npz"), partner=str(b), fps=fps, seed=0))
    run_predict(predictor, PredictRequest(str(b), str(folder / "b.npz"), partner=str(a),
                                          partner_motion=str(folder / "draft.npz"), fps=fps, seed=1))
    run_predict(predictor, PredictRequest(str(a), str(folder / "a.npz"), partner=str(b),
                                          partner_motion=str(folder / "b.npz"), fps=fps, seed=0))
    return curves(folder / "a.npz")[0], curves(folder / "b.npz")[0]


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_a_cast_of_two_is_conversation_mode(predictor, tmp_path, fps):
    """The plan for two is conversation mode's three passes, so the results differ only where
    conversation mode hands a face from one pass to the next through a result file at the output
    frame rate and reads it back at the network's 25 fps: linear interpolation there and back
    smooths the partner face a little. At 25 fps that round trip is exact and so are the results;
    at 30 fps the measured difference was at most 0.034 (mean 4.6e-4; model v6, whose crisper mouth
    reacts more to the smoothed partner face than v5's at most 0.012 and v4's 0.002), against face
    curves whose standard deviation is about 0.03: a blendshape a thirtieth off on one frame. Model
    v9: at most 0.067 (mean 5.4e-4), on mouthSmileLeft for a few frames where A's smile echoes B's
    (that channel's std 0.16; 207 of 51 260 values differ by more than 0.02). A wrong plan differs
    far more: A without its last pass (no partner face) is up to 0.45 off, mean 7e-3, 3 320 values
    over 0.02."""
    a, b = (REPO / "assets" / "sample" / n for n in ("a.wav", "b.wav"))
    ref_a, ref_b = conversation_mode(predictor, a, b, tmp_path, fps)
    done = run_cast(predictor, CastRequest(members=[{"name": "A", "voice": str(a), "out": str(tmp_path / "A.npz")},
                                                    {"name": "B", "voice": str(b), "out": str(tmp_path / "B.npz")}],
                                           fps=fps, attention=False, seed=0))
    for name, ref in (("A", ref_a), ("B", ref_b)):
        got = curves(done["outs"][name])[0]
        assert got.shape == ref.shape
        diff = np.abs(got - ref)
        if fps == 25.0:
            assert diff.max() == 0.0, (name, diff.max())
        else:
            assert diff.max() < 0.1 and diff.mean() < 1e-3, (name, diff.max(), diff.mean())
            assert diff.max() > 0.0  # the round trip is real: this test would see a bigger one


def test_a_cast_of_one_is_a_predict_with_no_partner(predictor, tmp_path):
    voice = str(REPO / "assets" / "sample" / "a.wav")
    run_predict(predictor, PredictRequest(voice, str(tmp_path / "p.npz"), fps=24.0, seed=3))
    done = run_cast(predictor, CastRequest(members=[{"name": "A", "voice": voice, "out": str(tmp_path / "A.npz")}],
                                           fps=24.0, seed=3, attention=False))
    np.testing.assert_array_equal(curves(done["outs"]["A"])[0], curves(tmp_path / "p.npz")[0])


def test_the_plan_for_two_is_conversation_mode_and_four_stay_in_budget(predictor):
    fps = 25.0
    two = np.zeros((2, 1500), bool)
    two[0, 100:400] = two[1, 450:900] = two[0, 950:1400] = True
    p = plan(predictor, two, [True, True], fade=5)
    full = len(predictor.windows(1500))
    assert p.finals == [1, 0] and p.drafts == {0: predictor.windows(1500)} and p.windows == 3 * full
    # Four people, ten minutes of turns: one full pass each and nothing more (the speed budget).
    rng = np.random.default_rng(0)
    n_frames = int(600 * fps)
    four = np.zeros((4, n_frames), bool)
    t, who = 0, 0
    while t < n_frames:
        d = int(rng.uniform(1.5, 8.0) * fps)
        four[who, t:t + d] = True
        t, who = t + d + int(0.4 * fps), (who + 1 + rng.integers(3)) % 4
    p = plan(predictor, four, [True] * 4, fade=5)
    assert p.finals == [3, 2, 1, 0] and p.drafts == {} and p.windows == 4 * len(predictor.windows(n_frames))
    # A muted fourth member: three finals, and the budget's fourth pass drafts faces where they are seen.
    p = plan(predictor, four, [True, True, True, False], fade=5)
    assert p.finals == [2, 1, 0] and p.windows <= 4 * len(predictor.windows(n_frames)) and 3 in p.drafts


def test_partner_faces_follow_the_floor_hold_and_cross_fade():
    floor = np.array([-1, -1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 0, 0, 0, 1, 1])
    p = partner_holders(floor, 0, fallback=1)
    # Before anyone: the first other holder; in its own turns: the last other one.
    assert p.tolist() == [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 1, 1]
    assert partner_holders(np.full(6, -1), 0, fallback=1).tolist() == [1] * 6
    w = face_weights(p, 5)
    assert np.allclose(sum(w.values()), 1.0)
    assert w[2][5:10].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # 5 frames, centred on the change


def test_partner_audio_is_a_lazy_sum_and_voice_activity_of_two_is_unchanged():
    x = voices(TURNS, 6.0, 3)
    s = SumOf([x[0], Samples(len(x[1]) + 100, array=x[1])])
    assert len(s) == len(x[1]) + 100
    np.testing.assert_array_equal(s[1000:5000], x[0][1000:5000] + x[1][1000:5000])
    assert s[len(x[0]) - 10:len(x[0]) + 50].shape == (60,)
    n = 6 * 25
    both = cast_voice_activity([x[0], x[1]], n, 640)
    np.testing.assert_array_equal(both[0], voice_activity(x[0], x[1], n, 640))
    np.testing.assert_array_equal(both[1], voice_activity(x[1], x[0], n, 640))
    three = cast_voice_activity(list(x), n, 640)
    assert three[0, 25:100].all() and not three[0, 125:].any() and three[1, 125:].any()


def test_positions_files_are_read_interpolated_and_refused_in_one_line(tmp_path):
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"version": 1, "characters": {
        "A": {"position": [0, 1, 1.6], "forward": [0, -1, 0]},
        "B": {"times": [0.0, 1.0, 2.0], "position": [[1, 0, 1.6], [2, 0, 1.6], [4, 0, 1.6]], "forward": [-1, 0, 0]}}}))
    pos, fwd = read_positions(str(good), ["B", "A"]).at(76, 25.0)
    assert pos.shape == (2, 76, 3) and fwd.shape == (2, 76, 3)
    assert pos[0, [0, 12, 25, 50, 75], 0].tolist() == pytest.approx([1, 1.48, 2, 4, 4])  # held after the last
    assert (pos[1] == [0, 1, 1.6]).all() and (fwd[0] == [-1, 0, 0]).all()
    bad = {
        "missing": None, "not JSON": "{", "a list": "[]", "version": {"version": 2, "characters": {}},
        "no member": {"version": 1, "characters": {"A": {"position": [0, 0, 0], "forward": [0, -1, 0]}}},
        "short vector": {"version": 1, "characters": {"A": {"position": [0, 0], "forward": [0, -1, 0]},
                                                      "B": {"position": [0, 0, 0], "forward": [0, -1, 0]}}},
        "times back": {"version": 1, "characters": {
            "A": {"times": [1, 0], "position": [[0, 0, 0], [1, 0, 0]], "forward": [0, -1, 0]},
            "B": {"position": [0, 0, 0], "forward": [0, -1, 0]}}},
        "zero forward": {"version": 1, "characters": {"A": {"position": [0, 0, 0], "forward": [0, 0, 0]},
                                                      "B": {"position": [0, 0, 0], "forward": [0, -1, 0]}}},
        "NaN": '{"version": 1, "characters": {"A": {"position": [NaN, 0, 0], "forward": [0, -1, 0]}}}',
    }
    for case, doc in bad.items():
        path = tmp_path / f"{case}.json"
        if doc is not None:
            path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        with pytest.raises(BadInput) as err:
            read_positions(str(path), ["A", "B"])
        msg = str(err.value)
        assert err.value.code == "bad_request" and msg.startswith(f"{path}: ") and "\n" not in msg, (case, msg)


def test_cast_requests_are_checked_field_by_field():
    ok = {"op": "cast", "id": 1, "members": [{"name": "A", "voice": "a.wav", "out": "A.npz"},
                                             {"name": "B", "voice": "b.wav", "out": None}]}
    r = CastRequest.from_json(ok)
    assert r.attention is True and r.fps == 30.0 and r.members[1].out is None
    assert CastRequest.from_json(r.to_json()) == r
    for change, field in [({"members": []}, "members"), ({"members": "A"}, "members"),
                          ({"members": [{"name": "A", "voice": "a.wav"}]}, "members"),  # nothing to write
                          ({"members": [ok["members"][0], {"name": "A", "voice": "b.wav"}]}, "members[1].name"),
                          ({"members": [ok["members"][0], {"name": "x/y", "voice": "b.wav"}]}, "members[1].name"),
                          ({"members": [ok["members"][0], {"name": "B", "voice": 3}]}, "members[1].voice"),
                          ({"members": [ok["members"][0], {"name": "B", "voice": "b", "out": "b.txt"}]},
                           "members[1].out"),
                          ({"members": [ok["members"][0], {"name": "B", "voice": "b", "out": "./A.npz"}]},
                           "members[1].out"),
                          ({"members": [ok["members"][0]] * 17}, "members"),
                          ({"attention": "yes"}, "attention"), ({"positions": 5}, "positions"),
                          ({"fps": 0}, "fps"), ({"seed": -1}, "seed")]:
        with pytest.raises(RequestError) as err:
            CastRequest.from_json({**ok, **change})
        assert str(err.value).startswith(f"{field}: "), (change, str(err.value))


def test_the_command_line_casts_end_to_end(trio, tmp_path):
    r = run_runtime("cast", "--voice", f"A={trio[0]}", "--voice", f"B={trio[1]}", "--voice", f"C={trio[2]}",
                    "--fps", "24", "--format", "csv", "--attention", "off", "--model", SHIPPED, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.csv", "B.csv", "C.csv"]
    assert r.stderr.splitlines()[-1].startswith(f"wrote 3 files in {tmp_path}: 624 frames each at 24 fps")
    (tmp_path / "again").mkdir()
    r = run_runtime("cast", "--voice", f"A={trio[0]}", "--voice", f"B={tmp_path / 'gone.wav'}", "--model", SHIPPED,
                    "--out", tmp_path / "again")
    assert r.returncode == 2 and r.stderr == f"error: {tmp_path / 'gone.wav'}: audio file not found\n"
    assert list((tmp_path / "again").iterdir()) == []


def test_the_server_casts_end_to_end(trio, tmp_path):
    c = ServeClient(SHIPPED)
    try:
        assert c.hello()["protocol"] == 2
        c.send({"op": "cast", "id": "bad", "members": [{"name": "A", "voice": str(trio[0]), "out": "A.wav"}]})
        err = c.event()
        assert (err["event"], err["code"], err["id"]) == ("error", "bad_request", "bad")
        assert err["message"].startswith("members[0].out: ")
        req = cast(trio, tmp_path, outs=[True, False, True], fps=24).to_json()
        c.send({**req, "id": 7})
        done, seen = c.until("done", 7)
        assert done["event"] == "done", done
        assert done["outs"] == {"A": str(tmp_path / "A.npz"), "C": str(tmp_path / "C.npz")}
        assert done["frames"] == 624 and done["fps"] == 24
        stages = [(e["stage"], e["value"]) for e in seen if e.get("event") == "progress"]
        assert [s for s, _ in stages] == sorted(s for s, _ in stages)  # audio, then network
        for stage in ("audio", "network"):
            values = [v for s, v in stages if s == stage]
            assert values == sorted(values) and values[-1] == 1.0, (stage, values)
        assert sorted(os.listdir(tmp_path)) == ["A.npz", "C.npz"]
        c.hello()
    finally:
        c.close()


def test_cast_inputs_are_predicts_own_log_mel_and_the_mix_of_the_others(predictor):
    """One spectrum per track: own rows are the bits predict reads; the partner's are the log of the others'
    summed mel power, which is the mixed samples' log-mel up to the cross terms of independent voices."""
    rng = np.random.default_rng(3)
    n = 16000 * 6
    env = [np.repeat(rng.random(60) > 0.5, n // 60) for _ in range(3)]
    tracks = [(rng.standard_normal(n) * 0.1 * e).astype(np.float32) for e in env]
    n_frames = 150
    inputs = MelInputs(predictor, tracks, n_frames)
    own, partner = inputs.rows(0)
    expect_own, r = predictor._frame_inputs(tracks[0], n_frames)
    assert r == inputs.r and np.array_equal(own[0:len(own)], expect_own)
    mixed, _ = predictor._frame_inputs(tracks[1] + tracks[2], n_frames)
    got = partner[0:len(partner)]
    loud = mixed - inputs.partner_offset[0] > np.log(1e-2)  # loud as recorded, before level normalisation
    # Natural-log units: about 0.75 dB on average where both voices sound at once, 0 where one does.
    assert np.abs(got - mixed)[loud].mean() < 0.25
    two = MelInputs(predictor, tracks[:2], n_frames)
    assert np.array_equal(two.rows(0)[1][0:len(own)], predictor._frame_inputs(tracks[1], n_frames)[0])
