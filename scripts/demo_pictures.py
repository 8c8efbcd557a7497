"""The demo's pictures, drawn from the rendered frames and the saved scene's curves: demo.png
(a contact sheet of moments where each one speaks) and demo_curves.png (jaw, mouth, blink, head)."""

import textwrap

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from demo_common import PEOPLE, say  # noqa: E402

from model_runtime.timebase import mask_from_segments  # noqa: E402

COLOURS = dict(zip(PEOPLE, ("#2e8b57", "#b5523b", "#3a56a0")))  # Alex green, Sam brick, Kim blue (their shirts)
SHEET_COLS, SHEET_ROWS, SHEET_PAD, SHEET_TITLE = 3, 2, 8, 0.16  # title band: a fraction of frame height
CURVES_WIDTH, CURVES_PER_PERSON = 1400, 500  # demo_curves.png, pixels: 1400x1000 for two people


def draw(files, step, curves, times, who, size, sheet_path, curves_path, rest_yaw, tags=None):
    """Both pictures. files: the rendered frames (every step-th scene frame); curves, times: the
    saved scene's (demo_scene.open_saved), one entry per person in seating order; who: (segments,
    lines, source) from demo_voices.who_speaks; rest_yaw: {name: each head's yaw before animation};
    tags: {name: (x, y)} where to name the heads on the sheet (fractions of the frame), or None."""
    segments, lines, source = who
    jaw = {n: c.get("jawOpen", np.zeros_like(times))[::step] for n, c in curves.items()}
    picks = pick_moments(segments, jaw, times[::step], SHEET_COLS * SHEET_ROWS)
    w, h = contact_sheet(files, picks, lines, size, sheet_path, tags)
    stats, size_c = plot_curves(curves, times, segments, curves_path, source, rest_yaw)
    say(f"      {sheet_path}  ({w}x{h}, {len(picks)} moments)")
    say(f"      {curves_path}  ({size_c[0]}x{size_c[1]})")
    for n, (speak, listen) in stats.items():
        say(f"      {n}: jawOpen mean {_fmt(speak)} while speaking, {_fmt(listen)} otherwise")


def pick_moments(segments, jaw, times, count):
    """Moments for the contact sheet: [(time, frame index, label, colour, line key)].

    For each character, count/people of its longest turns; in each, the rendered frame near the
    middle where that character's jaw is most open. A clip with fewer turns is filled with evenly
    spread moments, labelled with whoever speaks then."""
    names = list(jaw)
    picks = []
    for name in names:
        segs = sorted((s for s in segments[name] if s[1] - s[0] >= 0.6), key=lambda s: s[0] - s[1])
        for a, b in sorted(segs[:count // len(names)]):
            mid, half = (a + b) / 2, (b - a) * 0.3
            idx = np.flatnonzero((times >= mid - half) & (times <= mid + half))
            if len(idx) == 0:
                idx = [int(np.argmin(abs(times - mid)))]
            i = int(max(idx, key=lambda k: jaw[name][k]))
            picks.append((float(times[i]), i, f"{name} speaking", COLOURS[name], (name, round(a, 3))))
    used = {p[1] for p in picks}
    for t in np.linspace(times[0], times[-1], count + 2)[1:-1]:
        i = int(np.argmin(abs(times - t)))
        if len(picks) >= count or i in used:
            continue
        used.add(i)
        who = [n for n in names if any(a <= times[i] < b for a, b in segments[n])]
        label = (f"{who[0]} speaking" if len(who) == 1 else "pause" if not who
                 else "both speaking" if len(names) == 2 else f"{' and '.join(who)} speaking")
        colour = COLOURS[who[0]] if len(who) == 1 else "#444444"
        picks.append((float(times[i]), i, label, colour, None))
    return sorted(picks)


def contact_sheet(files, picks, lines, size, path, tags=None):
    """The picked frames, SHEET_COLS x SHEET_ROWS, each titled with its time and who speaks, and the
    line said as a subtitle; with `tags` ({name: (x, y)} fractions of the frame) each head named
    there, the speaker's name in its colour. Returns the sheet's size in pixels."""
    w, h = size
    cols, rows, pad = SHEET_COLS, SHEET_ROWS, SHEET_PAD
    title = int(round(h * SHEET_TITLE))
    W, H = cols * w + (cols + 1) * pad, rows * (h + title) + (rows + 1) * pad
    dpi = 100
    fig = plt.figure(figsize=(W / dpi, H / dpi), dpi=dpi, facecolor="white")
    fs = max(5.0, title * 0.42 * 72 / dpi)
    for k, (t, i, label, colour, line) in enumerate(picks[:cols * rows]):
        r, c = divmod(k, cols)
        x0 = pad + c * (w + pad)
        y0 = H - (pad + r * (h + title + pad) + title + h)  # from the bottom, in pixels
        ax = fig.add_axes((x0 / W, y0 / H, w / W, h / H))
        ax.imshow(mpimg.imread(files[i]), interpolation="nearest")
        ax.set_axis_off()
        m, s = divmod(t, 60)
        fig.text(x0 / W, (y0 + h + title * 0.18) / H, f"{int(m)}:{s:04.1f}  {label}",
                 fontsize=fs, color=colour, weight="bold", ha="left", va="bottom")
        for name, (tx, ty) in (tags or {}).items():
            speaking = line is not None and line[0] == name
            fig.text((x0 + tx * w) / W, (y0 + ty * h) / H, name, fontsize=fs * 0.8, ha="center", va="bottom",
                     color="white", weight="bold" if speaking else "normal",
                     bbox=dict(facecolor=COLOURS[name] if speaking else "black", alpha=0.8 if speaking else 0.45,
                               edgecolor="none", boxstyle="round,pad=0.2"))
        text = lines.get(line, "")
        if text:  # the line being said, as a subtitle
            sub = fs * 0.8
            chars = max(10, int(w * 0.92 / (sub * 0.5 * dpi / 72)))
            fig.text((x0 + w / 2) / W, (y0 + h * 0.03) / H, textwrap.fill(text, chars, max_lines=2, placeholder="…"),
                     fontsize=sub, color="white", ha="center", va="bottom", linespacing=1.1,
                     bbox=dict(facecolor="black", alpha=0.55, edgecolor="none", boxstyle="round,pad=0.25"))
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)
    return W, H


def plot_curves(curves, times, segments, path, source, rest_yaw):
    """Per character: jaw and mouth, blink, head rotation from rest, with each one's speech shaded
    in its colour. Returns ({name: (jawOpen mean while that one speaks, otherwise)}, picture size)."""
    dpi = 100
    names = list(curves)
    size = (CURVES_WIDTH, CURVES_PER_PERSON * len(names))
    fig, axes = plt.subplots(3 * len(names), 1, figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, sharex=True,
                             gridspec_kw={"height_ratios": [2.2, 1, 1.6] * len(names), "hspace": 0.35})
    stats = {}
    for ci, name in enumerate(names):
        c = curves[name]
        others = [n for n in names if n != name]
        own_mask = mask_from_segments(segments[name], times)
        jaw = c.get("jawOpen", np.zeros_like(times))
        speak = float(jaw[own_mask].mean()) if own_mask.any() else float("nan")
        listen = float(jaw[~own_mask].mean()) if (~own_mask).any() else float("nan")
        stats[name] = (speak, listen)
        mouth = np.mean([c[k] for k in ("mouthSmileLeft", "mouthSmileRight", "mouthFunnel", "mouthPucker")
                         if k in c] or [np.zeros_like(times)], axis=0)
        blink = np.mean([c[k] for k in ("eyeBlinkLeft", "eyeBlinkRight") if k in c] or [np.zeros_like(times)],
                        axis=0)
        rest = rest_yaw[name]
        yaw = np.degrees(c.get("rot2", np.full_like(times, rest)) - rest)
        pitch = np.degrees(c.get("rot0", np.zeros_like(times)))
        roll = np.degrees(c.get("rot1", np.zeros_like(times)))
        a_mouth, a_blink, a_head = axes[3 * ci:3 * ci + 3]
        for ax in (a_mouth, a_blink, a_head):
            for s, e in segments[name]:
                ax.axvspan(s, e, color=COLOURS[name], alpha=0.18, lw=0)
            for o in others:
                for s, e in segments[o]:
                    ax.axvspan(s, e, color=COLOURS[o] if len(names) > 2 else "#888888", alpha=0.12, lw=0)
            ax.grid(alpha=0.3)
            ax.margins(x=0)
        a_mouth.plot(times, jaw, color=COLOURS[name], lw=1.4, label="jawOpen")
        a_mouth.plot(times, mouth, color="#333333", lw=1.0, ls="--", label="mouth (smile/funnel/pucker mean)")
        a_mouth.set_ylim(0, max(0.3, float(jaw.max()) * 1.1))
        shade = (f"grey: {others[0]} speaks" if len(others) == 1
                 else "lighter: " + ", ".join(others) + " speak, each in their colour")
        a_mouth.set_title(f"{name}: mouth — jawOpen mean {_fmt(speak)} while {name} speaks, {_fmt(listen)} "
                          f"otherwise  (shaded: {name} speaks; {shade})", fontsize=10, loc="left")
        a_mouth.legend(loc="upper right", fontsize=8, framealpha=0.8)
        a_blink.plot(times, blink, color="#4060a0", lw=1.0)
        a_blink.set_ylim(0, 1.05)
        a_blink.set_title(f"{name}: blink (eyeBlink mean)", fontsize=10, loc="left")
        for v, lab, col in ((yaw, "yaw (+ = own left)", "#c04000"), (pitch, "pitch (+ = down)", "#0060c0"),
                            (roll, "roll", "#609000")):
            a_head.plot(times, v, lw=1.0, label=lab, color=col)
        a_head.set_ylabel("degrees", fontsize=8)
        a_head.set_title(f"{name}: head (object rotation from rest)", fontsize=10, loc="left")
        a_head.legend(loc="upper right", fontsize=8, ncol=3, framealpha=0.8)
    axes[-1].set_xlabel("seconds")
    px = 1 / size[1]  # the margins stay as many pixels as on the two-person plot, whatever its height
    fig.suptitle(f"Duet demo: curves read back from the saved .blend (shaded speech: {source})", fontsize=12,
                 y=1 - 20 * px)
    fig.subplots_adjust(left=0.05, right=0.985, top=1 - 60 * px, bottom=50 * px)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return stats, size


def _fmt(x):
    """2 decimals, or n/a for NaN (a mean over no frames)."""
    return "n/a" if x != x else f"{x:.2f}"
