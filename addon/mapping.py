"""Shape-key name mapping: ARKit channel -> the character's shape key (pure Python, no bpy).

Rigs in the wild name their keys in many ways: exact ARKit (Faceit, Ready Player Me, VRoid),
PascalCase (Live Link, Unreal), `_L`/`_R` or `Left`/`Right` suffixes, prefixes such as `BS_` or
`A01_` (Character Creator), Maya namespaces. Matching goes from
strict to loose so an exact key always wins over a variant.
"""

import re
from dataclasses import dataclass, field

from ..model_runtime.channels import ARKIT_NAMES

# Prefixes rigs put in front of ARKit names: BS_, A01_ (Character Creator), blendShape1., ...
_PREFIX_RE = re.compile(r"^(?:[a-z]\d{1,3}|bs|blendshapes?\d*|arkit|shape|sk|morph|facs)[_.\-: ]+", re.I)
_SIDE_SEP_RE = re.compile(r"[_.\-\s](l|r|left|right)$", re.I)
_SIDE_CAMEL_RE = re.compile(r"(?<=[a-z0-9])([LR])$")  # eyeBlinkL: one capital letter after lowercase
_SIDE_PREFIX_RE = re.compile(r"^(l|r|left|right)[_.\-\s]", re.I)
_SIDES = {"l": "left", "r": "right", "left": "left", "right": "right"}


def normalize(name):
    """Lower-case letters and digits only: 'Mouth_Smile_L' and 'mouthSmileLeft' meet here."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def variants(name):
    """Normalised forms a key name may stand for, most literal first."""
    out = [normalize(name)]
    n = name.strip()
    for sep in (":", "|"):  # Maya/FBX namespaces: 'Face:jawOpen'
        n = n.rpartition(sep)[2]
    for _ in range(2):
        n2 = _PREFIX_RE.sub("", n)
        if n2 == n or not n2:
            break
        n = n2
    side = ""
    m = _SIDE_SEP_RE.search(n) or _SIDE_CAMEL_RE.search(n)
    if m:
        side, n = _SIDES[m.group(1).lower()], n[: m.start()]
    else:
        m = _SIDE_PREFIX_RE.match(n)
        if m:
            side, n = _SIDES[m.group(1).lower()], n[m.end():]
    for cand in (normalize(n) + side, normalize(n)):
        if cand and cand not in out:
            out.append(cand)
    return out


def _pascal(name):
    return name[0].upper() + name[1:]


def _lr_suffix(name):
    return re.sub(r"(Left|Right)$", lambda m: "_" + m.group(1)[0], name)


# Presets: how a rig family spells each ARKit name. AUTO tries every rule instead.
PRESETS = {
    "AUTO": ("Auto", "Exact, then case-insensitive, then variants (prefixes, _L/_R, Left/Right)", None),
    "ARKIT": ("ARKit exact", "Apple's camelCase names (Faceit, Ready Player Me, VRoid ARKit)", lambda n: n),
    "PASCAL": ("Live Link / Unreal", "PascalCase names such as JawOpen, EyeBlinkLeft", _pascal),
    "LR_SUFFIX": ("_L / _R suffix", "eyeBlink_L, mouthSmile_R", _lr_suffix),
    "CC_ARKIT": ("Character Creator ARKit", "A01_Brow_Inner_Up style (prefix + underscores)", None),
}


@dataclass
class MappingResult:
    mapping: dict = field(default_factory=dict)  # ARKit channel -> shape key name
    how: dict = field(default_factory=dict)  # channel -> "exact" | "case" | "variant" | "table" | preset
    unmatched: list = field(default_factory=list)  # ARKit channels with no shape key, in ARKit order

    def summary(self):
        return f"{len(self.mapping)}/{len(self.mapping) + len(self.unmatched)} ARKit channels matched"


def match_shape_keys(key_names, preset="AUTO", table=None, channels=ARKIT_NAMES):
    """Map ARKit channels to shape keys.

    key_names: the character's shape keys (the reference/Basis key should be left out).
    table: {channel: key name} from the artist's edited table; it wins, '' means "leave unmapped".
    """
    keys = [k for k in key_names if k]
    key_set = set(keys)
    res = MappingResult()
    used = set()

    def take(ch, key, how):
        res.mapping[ch] = key
        res.how[ch] = how
        used.add(key)

    if table:
        for ch in channels:
            if ch in table:
                key = table[ch]
                if key and key in key_set:
                    take(ch, key, "table")
    # A channel the table names (even as '') is the artist's decision: automatic rules skip it.
    todo = [c for c in channels if not (table and c in table)]

    spell = PRESETS.get(preset, PRESETS["AUTO"])[2]
    if spell is not None:
        by_fold = {}
        for k in keys:
            by_fold.setdefault(k.casefold(), k)
        for ch in todo:
            want = spell(ch)
            key = want if want in key_set else by_fold.get(want.casefold())
            if key and key not in used:
                take(ch, key, preset)
    else:
        for ch in todo:  # 1: exact
            if ch in key_set and ch not in used:
                take(ch, ch, "exact")
        by_fold = {}
        for k in keys:
            by_fold.setdefault(k.casefold(), k)
        for ch in todo:  # 2: case-insensitive
            k = by_fold.get(ch.casefold())
            if ch not in res.mapping and k and k not in used:
                take(ch, k, "case")
        want = {normalize(ch): ch for ch in todo if ch not in res.mapping}
        for depth in range(3):  # 3: variants, the most literal reading of every key first
            for k in keys:
                if k in used:
                    continue
                v = variants(k)
                if depth < len(v) and v[depth] in want and want[v[depth]] not in res.mapping:
                    take(want[v[depth]], k, "variant")
    res.unmatched = [c for c in channels if c not in res.mapping]
    return res

