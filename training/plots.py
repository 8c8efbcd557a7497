"""Dev only: plot a generated conversation's audio and targets to PNG (needs matplotlib).

python -m training.plots --split train --index 0 --start 0 --end 30 --out conv.png
Look at what the animator makes: jaw on own vowels only, rest while listening, nods, blinks.
"""

import argparse

import numpy as np

from model_runtime.channels import CHANNELS
from model_runtime.timebase import SAMPLE_RATE

from .conversation import generate

CH = {n: i for i, n in enumerate(CHANNELS)}
FACE = ("jawOpen", "mouthClose", "mouthPucker", "mouthSmileLeft", "eyeBlinkLeft", "browInnerUp")
HEAD = ("headYaw", "headPitch", "headRoll", "eyeLookOutLeft", "eyeLookInLeft")


def plot_conversation(conv, out, start=0.0, end=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(conv.n_frames) / conv.fps
    ta = np.arange(len(conv.audio_a)) / SAMPLE_RATE
    fig, ax = plt.subplots(6, 1, figsize=(18, 14), sharex=True)
    sides = ((conv.audio_a, conv.targets_a, conv.speaking_a, "A"), (conv.audio_b, conv.targets_b, conv.speaking_b, "B"))
    for k, (audio, tg, sp, name) in enumerate(sides):
        a = ax[3 * k]
        a.plot(ta, audio, lw=0.3)
        a.fill_between(t, 0, sp * 0.5, color="orange", alpha=0.3, label="speaking")
        for s, e in conv.meta.get("backchannels", [[], []])[k]:
            a.axvspan(s, e, color="red", alpha=0.3)
        a.set_ylabel(f"{name}: {conv.meta['voices'][k]}")
        if end is not None and end - start <= 12:  # zoomed in: label the phones under the wave
            for s, e, p in conv.meta.get("phones_" + name.lower(), []):
                if p != "SIL" and start <= s <= end:
                    a.axvline(s, color="gray", lw=0.3)
                    a.text((s + e) / 2, -0.3, p, ha="center", fontsize=7)
        for row, chans in ((1, FACE), (2, HEAD)):
            for c in chans:
                ax[3 * k + row].plot(t, tg[:, CH[c]], label=c)
            ax[3 * k + row].legend(fontsize=7, loc="upper right")
    ax[0].set_xlim(start, end if end is not None else t[-1])
    plt.tight_layout()
    plt.savefig(out, dpi=60)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--split", default="train")
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--end", type=float, default=None)
    ap.add_argument("--out", default="conversation.png")
    a = ap.parse_args(argv)
    plot_conversation(generate(a.split, a.index, a.seed), a.out, a.start, a.end)
    print(a.out)


if __name__ == "__main__":
    main()
