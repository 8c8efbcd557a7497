"""Evaluation metrics: DualTalk's (defined below) per channel group, plus lip sync, leakage, blinks.

Groups (model_runtime.channels): "mouth_jaw" (DualTalk's expression + jaw), "eyes_brows",
"head" (DualTalk's pose). All inputs are (T, 55) arrays in CHANNELS order at `fps`.

- mse: mean squared error per group.
- fd: Fréchet distance ‖μp−μg‖² + Tr(Σp + Σg − 2(ΣpΣg)^½) between the frame distributions.
- sid: entropy (bits) of the histogram of k-means cluster assignments of predicted listening
  frames, clusters fitted on reference (ground-truth) frames; k = 40 for expression groups,
  10 for jaw and pose (DualTalk). Higher = more diverse listening.
- rpcc: |corr(gt, partner gt) − corr(pred, partner gt)|, Pearson over time per channel, averaged
  over the group's channels: does the prediction relate to the partner as the ground truth does.
- lipsync: Pearson correlation of predicted and true jawOpen while the character speaks.
- leakage: mean jawOpen while only the partner speaks / the same while only the character speaks
  (0 = the mouth rests while listening; 1 = it lip-syncs the partner as much as itself).
- blink_rate: blinks per minute (eyeBlink rising through 0.5, re-armed below 0.25).
"""

import numpy as np

from model_runtime.channels import EYES_BROWS, HEAD, MOUTH_JAW, index_of
from model_runtime.liveliness import frame_rms
from model_runtime.timebase import SAMPLE_RATE

GROUPS = {"mouth_jaw": index_of(MOUTH_JAW), "eyes_brows": index_of(EYES_BROWS), "head": index_of(HEAD)}
SID_K = {"mouth_jaw": 40, "eyes_brows": 40, "head": 10, "jaw": 10}
JAW = index_of(("jawOpen",))[0]
# The lips meeting: the channels that close them, and the phones where they must (fidelity's closure
# rate measures them; training weighs them at those phones).
CLOSURE = ("mouthClose", "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper")
BILABIALS = ("P", "B", "M")
BLINK = index_of(("eyeBlinkLeft", "eyeBlinkRight"))


def mse(pred, gt):
    return float(np.mean((np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) ** 2))


def frechet(pred, gt):
    """Fréchet distance between Gaussians fitted to the rows of pred and gt ((T, C) each)."""
    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    mp, mg = p.mean(0), g.mean(0)
    cp = np.atleast_2d(np.cov(p, rowvar=False))
    cg = np.atleast_2d(np.cov(g, rowvar=False))
    # Tr((Σp Σg)^½) = Tr((Σp^½ Σg Σp^½)^½): symmetric PSD, so eigh stays stable when channels are
    # constant (singular covariances are the rule here: a listener's lips barely move).
    rp = _psd_sqrt(cp)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(rp @ cg @ rp), 0, None)).sum()
    fd = np.sum((mp - mg) ** 2) + np.trace(cp) + np.trace(cg) - 2 * tr_covmean
    return float(max(fd, 0.0))  # rounding can leave -1e-17 for identical inputs


def _psd_sqrt(a):
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def pearson(a, b):
    """Pearson correlation of two 1-D series; 0 when either is constant (no linear relation)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def rpcc(pred, gt, partner_gt):
    """Mean over channels of |corr(gt_c, partner_c) − corr(pred_c, partner_c)|."""
    return float(np.mean([abs(pearson(gt[:, c], partner_gt[:, c]) - pearson(pred[:, c], partner_gt[:, c]))
                          for c in range(gt.shape[1])]))


def kmeans(x, k, seed=0, iters=50):
    """Plain k-means with k-means++ seeding (deterministic from seed). Returns (k, C) centres."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centres.append(x[rng.choice(len(x), p=p)])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.array(centres)
    for _ in range(iters):
        lab = assign(x, c)
        new = np.array([x[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def assign(x, centres):
    d = (x ** 2).sum(1)[:, None] - 2 * x @ centres.T + (centres ** 2).sum(1)[None, :]
    return np.argmin(d, axis=1)


def sid(frames, centres):
    """Entropy in bits of the histogram of nearest-centre assignments of `frames`."""
    if len(frames) == 0:
        return 0.0
    counts = np.bincount(assign(np.asarray(frames, np.float64), centres), minlength=len(centres))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def lipsync(pred, gt, speaking):
    m = np.asarray(speaking, bool)
    return pearson(pred[m, JAW], gt[m, JAW]) if m.sum() > 2 else float("nan")


def leakage(motion, speaking, partner_speaking):
    s, p = np.asarray(speaking, bool), np.asarray(partner_speaking, bool)
    only_partner, only_self = p & ~s, s & ~p
    if not only_partner.any() or not only_self.any():
        return float("nan")
    return float(motion[only_partner, JAW].mean() / max(motion[only_self, JAW].mean(), 1e-6))


def blink_count(motion, on=0.5, off=0.25):
    b = np.asarray(motion)[:, BLINK].mean(1)
    n, armed = 0, True
    for v in b:
        if armed and v >= on:
            n, armed = n + 1, False
        elif not armed and v < off:
            armed = True
    return n


def blink_rate(motion, fps=25.0):
    minutes = len(motion) / fps / 60.0
    return blink_count(motion) / minutes if minutes > 0 else float("nan")


def evaluate(pred, gt, partner_gt, speaking, partner_speaking, fps=25.0, sid_centres=None):
    """All per-conversation metrics for one character. sid_centres: {group: (k, C)} from
    fit_sid_centres (listening SID is skipped without them)."""
    pred, gt, partner_gt = (np.asarray(a, np.float32) for a in (pred, gt, partner_gt))
    speaking, partner_speaking = np.asarray(speaking, bool), np.asarray(partner_speaking, bool)
    out = {}
    listening = partner_speaking & ~speaking
    for state, m in (("speak", speaking), ("listen", listening), ("all", np.ones(len(gt), bool))):
        for g, idx in GROUPS.items():
            if m.sum() > len(idx) + 1:  # a covariance needs more frames than channels
                out[f"fd_{g}_{state}"] = frechet(pred[m][:, idx], gt[m][:, idx])
            if m.any():
                out[f"mse_{g}_{state}"] = mse(pred[m][:, idx], gt[m][:, idx])
    for g, idx in GROUPS.items():
        out[f"rpcc_{g}"] = rpcc(pred[:, idx], gt[:, idx], partner_gt[:, idx])
    if sid_centres is not None and listening.any():
        for g, c in sid_centres.items():
            idx = GROUPS[g] if g in GROUPS else [JAW]
            out[f"sid_{g}_listen"] = sid(pred[listening][:, idx], c)
    out["lipsync"] = lipsync(pred, gt, speaking)
    out["leakage"] = leakage(pred, speaking, partner_speaking)
    out["blink_rate"] = blink_rate(pred, fps)
    return out


def fit_sid_centres(reference_frames, seed=0):
    """k-means centres per group on reference (ground-truth listening) frames, (N, 55)."""
    ref = np.asarray(reference_frames, np.float64)
    out = {}
    for g, k in SID_K.items():
        idx = GROUPS[g] if g in GROUPS else [JAW]
        out[g] = kmeans(ref[:, idx], k, seed)
    return out


def mean_metrics(rows):
    """Average a list of metric dicts key by key, ignoring NaN (DualTalk: per file, then mean)."""
    out = {}
    for k in sorted({k for r in rows for k in r}):
        vals = np.array([r[k] for r in rows if k in r], np.float64)
        vals = vals[np.isfinite(vals)]
        out[k] = float(vals.mean()) if len(vals) else float("nan")
    return out


def energy_baseline(audio, n_frames, fps=25.0, sr=SAMPLE_RATE, gain=0.6):
    """The issue's lip-sync baseline: jawOpen from the track's own loudness, all else at rest.

    Loudness is frame RMS in dB mapped from the track's 30th..98th percentile to 0..1; the
    track's bleed and noise leak straight into the mouth, which is what the model must beat."""
    out = np.zeros((n_frames, 55), np.float32)
    rms = frame_rms(np.asarray(audio, np.float32), n_frames, int(round(sr / fps)))
    db = 10 * np.log10(rms ** 2 + 1e-10)
    lo, hi = np.percentile(db, 30), np.percentile(db, 98)
    out[:, JAW] = gain * np.clip((db - lo) / max(hi - lo, 1e-3), 0, 1)
    return out


def evaluate_conversations(convs, predict, seed=0):
    """Mean metrics over conversations, each character in turn (A with partner B, then B).

    predict(own_audio, partner_audio, partner_motion, n_frames) -> (T, 55). SID centres are
    fitted on the ground truth's listening frames of these conversations."""
    roles = []
    for c in convs:
        roles.append((c.audio_a, c.audio_b, c.targets_a, c.targets_b, c.speaking_a, c.speaking_b, c.fps))
        roles.append((c.audio_b, c.audio_a, c.targets_b, c.targets_a, c.speaking_b, c.speaking_a, c.fps))
    ref = [gt[ps & ~s] for _, _, gt, _, s, ps, _ in roles]
    centres = fit_sid_centres(np.concatenate(ref), seed) if sum(map(len, ref)) > 40 else None
    rows = []
    for own, partner, gt, pgt, s, ps, fps in roles:
        pred = predict(own, partner, pgt, len(gt))
        rows.append(evaluate(pred, gt, pgt, s, ps, fps, centres))
    return mean_metrics(rows)
