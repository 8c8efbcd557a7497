"""FACEGOOD's real recording as ARKit curves: a held-out real-mouth check of the network, and
(later) real supervision of the mouth channels it covers.

The data (read in place from SHARED/data/facegood, never copied; see its README.md): 7 takes,
10.9 min, one female speaker reading Chinese, 16 kHz mono wav + `bs_value_NAME.npy` (frames x 116,
30 fps, frame i at i/30 s) in FACEGOOD's own rig, animated in Maya from video of the same
recording. Only the mouth moves; there is no partner and no listening.

From the rig to ARKit (`mapping()`): FACEGOOD's own table, Voice2Face_blendshape2ARkit.xlsx (read
with zipfile + xml, no openpyxl), taken as it says, rows marked "valid" only:

    jawOpen <- mouth_stretch_c              mouthFunnel <- max(mouth_funnel_dl, _dr, _ul, _ur)
    mouthPucker <- max(mouth_pucker_l, _r)  mouthRollLower <- max(mouth_suck_dl, _dr)
    mouthRollUpper <- max(mouth_suck_ul, _ur)  mouthShrugUpper <- mouth_chinRaise_u
    mouthSmile{L,R} <- mouth_lipCornerPull_{l,r}   mouthStretch{L,R} <- mouth_lipStretch_{l,r}
    mouthPress{L,R} <- mouth_press_{l,r}    mouthLowerDown{L,R} <- mouth_lowerLipDepress_{l,r}
    mouthUpperUp{L,R} <- mouth_upperLipRaise_{l,r}
    (+ jaw/mouth rows whose rig channel never moves here: jawForward, jawLeft/Right, mouthClose,
    mouthLeft/Right, mouthFrown*, mouthDimple*, mouthShrugLower; eyes, brows, cheeks and nose
    rows are "Invalid" in the table and are not used.)

The rig's weights are already 0..1 (every column of every take lies in [0, 1], the largest is
exactly 1.0), so RIG_SCALE is 1; a file outside that range is refused rather than clipped.
Curves are resampled 30 -> 25 fps with model_runtime.timebase (frame i at i/fps) onto the
network's frame grid for the audio (timebase.frame_count), so they line up with the Predictor's.

    python -m training.facegood [--model assets/duet_dualtalk.onnx] [--takes A B] [--json F]

prints the held-out check (`evaluate`): per covered mouth channel, Pearson r with the real
performance and the spread ratio (network std / real std) over the speaking frames, at lag 0 and
at the best global lag of jawOpen (-5..5 frames), beside a loudness baseline (r of the frame level
with the real jawOpen) and a lip-rounding diagnostic that counts the rig's unmapped oh/oo visemes.
"""

import argparse
import functools
import json
import re
import warnings
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import soundfile as sf

from model_runtime.channels import CHANNELS, NUM_CHANNELS, canonical_name
from model_runtime.liveliness import frame_level_db, voice_activity
from model_runtime.paths import ASSETS, SHARED
from model_runtime.timebase import SAMPLE_RATE, frame_count, resample_curves, samples_per_frame

from .metrics import pearson

DATA = SHARED / "data" / "facegood"
TABLE = "Voice2Face_blendshape2ARkit.xlsx"
SRC_FPS = 30.0
FPS = 25.0
RIG_SCALE = 1.0  # the rig's weights are 0..1 already (checked in _rig_values)
# A channel "moves" when its std (ARKit curve, 25 fps) is above this: 0.5 % of the full range. It
# keeps mouthStretch (std 0.008 over all takes, peaks 0.32) and mouthShrugUpper (0.012, peaks 0.48)
# and drops jawLeft (0.0006, peaks 0.05) and mouthDimple (0.0001): solver noise, not performance.
MOVE_FLOOR = 0.005
LAGS = range(-5, 6)  # frames at 25 fps: +-0.2 s

# Never used for training. One take from each recording session (1114_2, 1114_3), and one of each of
# the two ways the artist shaped this mouth: 1114_2_01 animates pucker and press (the only held-out
# lip closure besides the rolls) and 1114_3_16 leans on the smile channel (lipCornerPull) and the
# rig's unmapped "oh" viseme. Together 157 s (24 %); training keeps 8.3 min in which every covered
# channel moves (mouthShrugUpper moves only in 1114_2_02, so that take must stay in training, and
# the held-out check cannot score it).
HELD_OUT = ("1114_2_01", "1114_3_16")

# Table ambiguities, decided:
# - Column order. bs_name.npy (the value columns' order, per the README) and bsname.txt (the rig's
#   list, UE order) disagree from column 1 on; bs_name.npy is right: only in its order do the rig's
#   left/right pairs come out identical (the solve is symmetric) and does jawOpen <- mouth_stretch_c
#   follow the audio's loudness (r 0.6-0.8 per take).
# - "max(a, b, ...)": the table's note says to take the largest, so we do; the pairs it merges are
#   identical or nearly so in this data, so the choice (max, mean) changes nothing here.
# - Left/right: mouthXLeft <- mouth_x_l as the table pairs them. The data is symmetric, so a mirrored
#   convention (whose left) cannot change any number.
# - mouth_oh_c, mouth_oo_c ("O" and "U" visemes) and tooth_d_d move but have no row in the table (nor
#   in FACEGOOD's own ARKit export): dropped, not guessed. The artist used them instead of
#   mouthFunnel / mouthPucker on some takes (pucker never moves in 1114_2_03, _05, 3_15, 3_16, while
#   oh_c is 1114_3_16's largest channel), so rounding is under-represented there: `moving_in_take`
#   and load_take(per_take=True) score or supervise a channel only on the takes where it moves.
# - mouthClose <- mouth_chew_c: the table's choice; chew never moves here, so mouthClose is not covered
#   (lip closure shows in mouthPress and the rolls instead).


def available():
    """True when the FACEGOOD folder with its table, names and at least one take is there."""
    return DATA.is_dir() and (DATA / TABLE).is_file() and (DATA / "bs_name.npy").is_file() and bool(takes())


def takes():
    """The take names (those with both a wav and a bs_value file), sorted."""
    if not DATA.is_dir():
        return []
    names = (p.name[len("bs_value_"):-len(".npy")] for p in DATA.glob("bs_value_*.npy"))
    return sorted(n for n in names if (DATA / f"{n}.wav").is_file())


@functools.lru_cache(maxsize=None)
def rig_names():
    """The 116 rig channel names in the order of the value columns."""
    with warnings.catch_warnings():  # "created on Python 2": harmless header parsing
        warnings.simplefilter("ignore", UserWarning)
        return tuple(str(n) for n in np.load(DATA / "bs_name.npy", allow_pickle=True, encoding="latin1"))


# ---------------------------------------------------------------------------------------------
# The table

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def read_table(path=None):
    """[(ARKit name as written, expression, status)] from the first sheet of the xlsx, header skipped."""
    with zipfile.ZipFile(path or DATA / TABLE) as z:
        shared = [("".join(t.text or "" for t in si.iter(f"{{{_NS['m']}}}t")))
                  for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", _NS)]
        sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
    rows = []
    for row in sheet.iter(f"{{{_NS['m']}}}row"):
        cells = {}
        for c in row.findall("m:c", _NS):
            col = re.match(r"[A-Z]+", c.get("r")).group(0)
            if c.get("t") == "s":
                cells[col] = shared[int(c.find("m:v", _NS).text)]
            elif c.get("t") == "inlineStr":
                cells[col] = "".join(t.text or "" for t in c.iter(f"{{{_NS['m']}}}t"))
            elif c.find("m:v", _NS) is not None:
                cells[col] = c.find("m:v", _NS).text
        # Columns: A = ARKit name, C = the rig's expression, G = status (valid / Invalid).
        if cells.get("A") and cells.get("A") != "ARKIT" and canonical_name(cells["A"]) is not None:
            rows.append((cells["A"], cells.get("C", "").strip(), cells.get("G", "").strip()))
    return rows


def parse_expression(expr):
    """'name' -> [name]; 'max(a,b,...)' -> [a, b, ...]; '' -> []. Anything else is refused."""
    if not expr:
        return []
    m = re.fullmatch(r"max\((.*)\)", expr.replace(" ", ""))
    names = m.group(1).split(",") if m else [expr]
    if not all(re.fullmatch(r"\w+", n) for n in names):
        raise ValueError(f"unexpected expression in the FACEGOOD table: {expr!r}")
    return names


@functools.lru_cache(maxsize=None)
def mapping():
    """{ARKit channel: (rig channel, ...)} for the table's valid rows, rig names as bs_name.npy spells
    them (the table's case differs now and then); combined with max."""
    by_lower = {n.lower(): n for n in rig_names()}
    out = {}
    for arkit, expr, status in read_table():
        if status.lower() != "valid":
            continue
        sources = []
        for n in parse_expression(expr):
            if n.lower() not in by_lower:
                raise ValueError(f"FACEGOOD table maps {arkit} to {n}, which the rig does not have")
            sources.append(by_lower[n.lower()])
        if sources:
            out[canonical_name(arkit)] = tuple(sources)
    return out


def to_arkit(rig):
    """(T, 116) rig weights -> (T, 55) ARKit curves at the same rate (unmapped channels and head 0)."""
    col = {n: i for i, n in enumerate(rig_names())}
    out = np.zeros((len(rig), NUM_CHANNELS), np.float32)
    for name, sources in mapping().items():
        out[:, CHANNELS.index(name)] = rig[:, [col[s] for s in sources]].max(1) * RIG_SCALE
    return out


# ---------------------------------------------------------------------------------------------
# Takes

@functools.lru_cache(maxsize=None)
def _rig_values(name):
    """(frames, 116) rig weights of a take at 30 fps, read once (mask, unmapped_moving and rig_curves
    all come back to them); read-only."""
    with warnings.catch_warnings():  # "created on Python 2": harmless header parsing
        warnings.simplefilter("ignore", UserWarning)
        v = np.load(DATA / f"bs_value_{name}.npy")
    if v.ndim != 2 or v.shape[1] != len(rig_names()):
        raise ValueError(f"bs_value_{name}.npy: shape {v.shape}, expected (frames, {len(rig_names())})")
    if v.min() < -1e-3 or v.max() > 1 + 1e-3:
        raise ValueError(f"bs_value_{name}.npy: weights span {v.min():.3g}..{v.max():.3g}, not the rig's 0..1")
    v.setflags(write=False)
    return v


def _audio(name):
    x, sr = sf.read(DATA / f"{name}.wav", dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE:
        raise ValueError(f"{name}.wav: {sr} Hz, expected {SAMPLE_RATE}")
    return np.ascontiguousarray(x.mean(1))


@functools.lru_cache(maxsize=None)
def _take(name):
    audio = _audio(name)
    n = frame_count(len(audio) / SAMPLE_RATE, FPS)
    arkit = np.clip(resample_curves(to_arkit(_rig_values(name)), SRC_FPS, FPS, n), 0.0, 1.0)
    return audio, arkit


def moving_in_take(arkit, floor=MOVE_FLOOR):
    """(55,) bool: the ARKit channels whose std over these frames is above floor."""
    return np.asarray(arkit).std(0) > floor


@functools.lru_cache(maxsize=None)
def mask():
    """(55,) bool: the ARKit channels this rig really drives (mapped, std above MOVE_FLOOR over all takes)."""
    allc = np.concatenate([_take(t)[1] for t in takes()])
    m = moving_in_take(allc)
    m[[CHANNELS.index(n) for n in CHANNELS if n not in mapping()]] = False
    return m


def load_take(name, per_take=False):
    """(audio float32 at 16 kHz, arkit (T, 55) float32 at 25 fps in [0, 1], mask (55,) bool).

    mask: the channels the rig drives over all takes; per_take=True also requires the channel to move
    in this take (the artist left pucker, press, stretch or smile flat on some takes while the speaker
    surely used them: see the notes on mouth_oh_c above). Use it when supervising."""
    if name not in takes():
        raise KeyError(f"no FACEGOOD take {name!r} in {DATA} (have: {', '.join(takes())})")
    audio, arkit = _take(name)
    m = mask().copy()
    if per_take:
        m &= moving_in_take(arkit)
    return audio.copy(), arkit.copy(), m


def covered():
    """Names of the covered ARKit channels (all of them mouth or jaw)."""
    return tuple(n for n, on in zip(CHANNELS, mask()) if on)


def unmapped_moving(floor=MOVE_FLOOR):
    """Rig channels that move (std over all takes, 30 fps) but no valid table row uses: what ARKit loses."""
    used = {s for src in mapping().values() for s in src}
    v = np.concatenate([_rig_values(t) for t in takes()])
    return {n: float(s) for n, s in zip(rig_names(), v.std(0)) if s > floor and n not in used}


# ---------------------------------------------------------------------------------------------
# The held-out check

def loudness(audio, n_frames):
    """(n_frames,) frame level in dB at 25 fps, floored 60 dB below the loudest frame."""
    db = frame_level_db(audio, n_frames, samples_per_frame(FPS))
    return np.maximum(db, db.max() - 60.0)


def speaking_frames(audio, n_frames):
    """(n_frames,) bool: the runtime's own voice activity (frame level above -45 dBFS, gaps under 0.3 s
    closed; no partner). Audio, not the real jawOpen, decides: a choice made from either compared curve
    would favour it, and the phrase-level rule keeps the mouth's closures between syllables in."""
    return voice_activity(audio, np.zeros(0, np.float32), n_frames, samples_per_frame(FPS))


def _pairs(net, real, speak, lag):
    """Rows (net[i + lag], real[i]) for the speaking frames i where both exist."""
    n = len(real)
    i = np.flatnonzero(speak)
    i = i[(i + lag >= 0) & (i + lag < n)]
    return net[i + lag], real[i]


def evaluate(onnx_path=ASSETS / "duet_dualtalk.onnx", takes=HELD_OUT, max_seconds=None, log=None):
    """The network as shipped (ONNX on CPU, no partner track, liveliness off) against the real mouth.

    Per covered channel, over the speaking frames of the takes where that channel moves: Pearson r at
    lag 0 and at the best global lag, and the spread ratio (network std / real std). The best lag is
    where the network's jawOpen, moved by -5..5 frames, correlates best with the real jawOpen (lag > 0:
    the network's mouth comes that many frames after the real one). max_seconds: only each take's start."""
    from model_runtime.audio import Track
    from model_runtime.backends import OnnxBackend
    from model_runtime.inference import Predictor

    predictor = Predictor(OnnxBackend(str(onnx_path), "cpu"))
    runs, rounding = [], []
    for name in takes:
        audio, real, _ = load_take(name)
        if max_seconds is not None:
            audio = audio[:int(max_seconds * SAMPLE_RATE)]
            real = real[:frame_count(len(audio) / SAMPLE_RATE, FPS)]
        res = predictor.predict(Track(audio, name), None, None, FPS, liveliness=False)
        net = res.weights[:len(real)]
        if len(net) != len(real):
            raise RuntimeError(f"{name}: network gave {len(net)} frames, the take has {len(real)}")
        speak = speaking_frames(audio, len(real))
        runs.append((name, audio, net, real, speak, moving_in_take(real) & mask()))
        rounding.append((_rounding(net)[speak], _rounding(real, rig_curves(name, ROUNDING_RIG)[:len(real)])[speak]))
        if log:
            log(f"{name}: {len(audio) / SAMPLE_RATE:.1f} s, {speak.mean():.0%} speaking")
    rep = score(runs, mask())
    rep["rounding_r"] = pearson(np.concatenate([a for a, _ in rounding]), np.concatenate([b for _, b in rounding]))
    return rep


# A diagnostic outside the table: lip rounding as the network's max(mouthFunnel, mouthPucker) against the
# real max(mouthFunnel, mouthPucker, rig mouth_oh_c, mouth_oo_c), so the unmapped "O"/"U" visemes the artist
# used on some takes count as rounding (the network's mouthFunnel follows oh_c better than the table's
# mouthFunnel). Not an ARKit channel and never a training target: how much oh/oo weigh is unknown.
ROUNDING_RIG = ("mouth_oh_c", "mouth_oo_c")


def rig_curves(name, channels):
    """(T, len(channels)) raw rig columns of a take at 25 fps (scaled like the mapped ones)."""
    cols = [rig_names().index(c) for c in channels]
    return np.clip(resample_curves(_rig_values(name)[:, cols] * RIG_SCALE, SRC_FPS, FPS, len(_take(name)[1])), 0, 1)


def _rounding(arkit, extra=None):
    r = np.asarray(arkit)[:, [CHANNELS.index("mouthFunnel"), CHANNELS.index("mouthPucker")]]
    return (r if extra is None else np.concatenate([r, extra], 1)).max(1)


def score(runs, covered=None):
    """evaluate's numbers from [(take, audio, net (T, 55), real (T, 55), speaking (T,), scored (55,) bool)]:
    a channel is scored on the takes where `scored` is set (covered and moving in that take); covered
    channels ((55,) bool) scored in none of them are listed as not animated in these takes."""
    m = np.logical_or.reduce([r[5] for r in runs]) if covered is None else np.asarray(covered, bool)
    jaw = CHANNELS.index("jawOpen")

    def r_at(c, lag, use):
        pairs = [_pairs(net[:, c], real[:, c], speak, lag) for _, _, net, real, speak, mv in runs if mv[c] or not use]
        if not pairs:
            return float("nan")
        return pearson(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))

    lag_r = {lag: r_at(jaw, lag, False) for lag in LAGS}
    best = max(LAGS, key=lambda k: (lag_r[k], -abs(k)))
    channels, flat = {}, []
    for c, name in enumerate(CHANNELS):
        if not m[c]:
            continue
        used = [t for t, _, _, _, _, mv in runs if mv[c]]
        if not used:
            flat.append(name)
            continue
        net = np.concatenate([r[2][r[4], c] for r in runs if r[5][c]])
        real = np.concatenate([r[3][r[4], c] for r in runs if r[5][c]])
        channels[name] = {"r": r_at(c, 0, True), "r_best_lag": r_at(c, best, True),
                          "spread": float(net.std() / real.std()) if real.std() > 0 else float("nan"),
                          "net_std": float(net.std()), "real_std": float(real.std()),
                          "net_mean": float(net.mean()), "real_mean": float(real.mean()), "takes": used}
    level = [(loudness(a, len(real)), real[:, jaw], speak) for _, a, _, real, speak, _ in runs]
    return {"takes": [r[0] for r in runs], "seconds": float(sum(len(r[1]) for r in runs) / SAMPLE_RATE),
            "speaking_share": float(np.concatenate([r[4] for r in runs]).mean()),
            "lag_frames": int(best), "lag_r": {int(k): float(v) for k, v in lag_r.items()},
            "channels": channels, "not_in_these_takes": flat,
            # What the audio level alone gets on jawOpen: the network should beat it.
            "loudness_jaw_r": pearson(np.concatenate([lv[sp] for lv, _, sp in level]),
                                      np.concatenate([j[sp] for _, j, sp in level]))}


def format_report(rep):
    lag = rep["lag_frames"]
    lines = [f"FACEGOOD held-out takes {', '.join(rep['takes'])}: {rep['seconds']:.0f} s, "
             f"{rep['speaking_share']:.0%} speaking (runtime voice activity); network alone, liveliness off",
             f"best lag of the network's jawOpen: {lag:+d} frames ({lag / FPS * 1000:+.0f} ms; r "
             f"{rep['lag_r'][0]:.2f} at 0, {rep['lag_r'][lag]:.2f} at best); audio loudness alone: r(jawOpen) "
             f"{rep['loudness_jaw_r']:.2f}"
             + (f"; lip rounding with the rig's oh/oo: r {rep['rounding_r']:.2f}" if "rounding_r" in rep else ""),
             "",
             f"| channel | r (lag 0) | r (lag {lag:+d}) | spread (net / real) | mean net / real | takes |",
             "|---|---|---|---|---|---|"]
    for name, c in rep["channels"].items():
        lines.append(f"| {name} | {c['r']:.2f} | {c['r_best_lag']:.2f} | {c['spread']:.2f} | "
                     f"{c['net_mean']:.3f} / {c['real_mean']:.3f} | {', '.join(c['takes'])} |")
    if rep["not_in_these_takes"]:
        lines += ["", f"covered but not animated in these takes: {', '.join(rep['not_in_these_takes'])}"]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ASSETS / "duet_dualtalk.onnx"))
    ap.add_argument("--takes", nargs="+", default=list(HELD_OUT))
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if not available():
        raise SystemExit(f"FACEGOOD data not found in {DATA}")
    print("mapping (ARKit <- max of FACEGOOD channels, scale %g):" % RIG_SCALE)
    for name, src in mapping().items():
        print(f"  {'*' if mask()[CHANNELS.index(name)] else ' '} {name} <- {', '.join(src)}")
    print(f"  (* = moves; {int(mask().sum())} covered)  rig channels that move but map to nothing: "
          + ", ".join(f"{n} (std {s:.3f})" for n, s in unmapped_moving().items()))
    print()
    rep = evaluate(args.model, tuple(args.takes))
    print(format_report(rep))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rep, fh, indent=1)


if __name__ == "__main__":
    main()
