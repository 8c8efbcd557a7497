# Duet — one entry point for setup, tests, benchmarks.
# `make test` on a fresh clone creates .venv (and installs what it needs) first.

PY_BOOT ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.duet-setup-$(shell cat requirements.txt 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup test lint bench clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 resolves to the local CPU wheel here; other torch specs pull GBs of CUDA.
	$(PY) -m pip install -q -r requirements.txt
	@rm -f $(VENV)/.duet-setup-* && touch $@

lint: setup
	$(PY) -m ruff check model_runtime training tests addon ops ui scripts __init__.py

# Runtime and add-on tests run as separate pytest processes: the PyPI bpy module keeps global
# state, and the runtime tests must prove they never need bpy. Needs nothing but Python 3.11
# (any OS): the training tests that need the TTS engines skip, saying so in one line, where
# `make setup-train` has not installed them.
test: setup lint setup-train-py
	$(PY) -m pytest -q tests/runtime
	$(PY) -m pytest -q tests/addon
	$(PY) -m pytest -q tests/train

bench: setup
	$(PY) -m model_runtime.bench
	$(PY) scripts/bench_addon.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out

# --- Blender extension (addon) ---
# Add-on tests run in their own pytest invocation (the PyPI bpy module keeps global state;
# the runtime tests never import bpy). `make test-addon` is what `make test` should call.
ADDON_SRC     := addon ops ui tests/addon scripts __init__.py
# Blender's own extension CLI: a plain-Python script that ships inside the PyPI bpy wheel.
BLENDER_EXT    = $(shell $(PY) -c "import bpy, os; print(os.path.join(bpy.utils.system_resource('SCRIPTS'), 'addons_core', 'bl_pkg', 'cli', 'blender_ext.py'))" 2>/dev/null)
COMPAT_BPY    ?= 4.2 5.0
COMPAT_PY     ?= python3.11

.PHONY: extension lint-addon test-addon test-compat animate bench-addon

extension: setup
	$(PY) "$(BLENDER_EXT)" validate .
	@mkdir -p dist
	$(PY) "$(BLENDER_EXT)" build --source-dir . --output-dir dist
	$(PY) "$(BLENDER_EXT)" validate dist/duet-$$(sed -n 's/^version = "\(.*\)"/\1/p' blender_manifest.toml).zip

lint-addon: setup
	$(PY) -m ruff check $(ADDON_SRC)

test-addon: setup lint-addon
	$(PY) -m pytest -q tests/addon

# The same tests on the other bpy versions Duet supports (4.2 LTS, 5.0), each in its own venv;
# the runtime still runs under .venv's Python (it carries torch and onnxruntime).
test-compat: setup
	@set -e; for v in $(COMPAT_BPY); do \
	  venv=$(VENV)/compat-bpy$$(echo $$v | tr -d .); \
	  test -x $$venv/bin/python || $(COMPAT_PY) -m venv $$venv; \
	  $$venv/bin/python -c "import bpy, sys; sys.exit(not bpy.app.version_string.startswith('$$v'))" 2>/dev/null || \
	    $$venv/bin/python -m pip install -q "bpy==$$v.*" soundfile pytest; \
	  echo "== bpy $$v =="; \
	  DUET_RUNTIME_PYTHON=$(abspath $(PY)) $$venv/bin/python -m pytest -q -p no:cacheprovider tests/addon; \
	done

# make animate BLEND=in.blend OBJECT=Face SELF=a.wav PARTNER=b.wav OUT=out.blend \
#              [PARTNER_MOTION=m.csv] [EXPORT=out.glb|out.fbx] [MODEL=m.onnx] [DEVICE=auto|gpu|cpu]
# A cast instead of OBJECT/SELF/PARTNER (the .blend's Cast list is replaced, then Generate cast):
# make animate BLEND=in.blend CAST="Alex=a.wav Sam=b.wav Kim=c.wav" OUT=out.blend [EXPORT=..]
#   one row per OBJECT=VOICE, in that order, the head turning on the object itself, facing -Y
#   (no spaces in names or paths); CAST_FILE=cast.json instead for per-row head, facing and mute,
#   seed and attention (format: python scripts/animate.py --help). EXPORT then writes every
#   character and head object; glTF as one clip of the scene's frame range.
animate: setup
	@[ -n "$(BLEND)" ] && [ -n "$(OUT)" ] && { [ -n "$(CAST)$(CAST_FILE)" ] || { [ -n "$(OBJECT)" ] && [ -n "$(SELF)" ]; }; } || \
	  { echo "usage: make animate BLEND=in.blend OBJECT=Face SELF=a.wav [PARTNER=b.wav] OUT=out.blend [PARTNER_MOTION=m.csv] [EXPORT=out.glb]"; \
	    echo "       make animate BLEND=in.blend CAST=\"Alex=a.wav Sam=b.wav\" | CAST_FILE=cast.json OUT=out.blend [EXPORT=out.glb]"; exit 2; }
	$(PY) scripts/animate.py --blend "$(BLEND)" --out "$(OUT)" \
	  $(if $(CAST),--cast $(foreach p,$(CAST),"$(p)")) $(if $(CAST_FILE),--cast-file "$(CAST_FILE)") \
	  $(if $(OBJECT),--object "$(OBJECT)") $(if $(SELF),--self "$(SELF)") \
	  $(if $(PARTNER),--partner "$(PARTNER)") $(if $(PARTNER_MOTION),--partner-motion "$(PARTNER_MOTION)") \
	  $(if $(EXPORT),--export "$(EXPORT)") $(if $(MODEL),--model "$(MODEL)") $(if $(DEVICE),--device "$(DEVICE)")

bench-addon: setup
	$(PY) scripts/bench_addon.py $(if $(MODEL),--model "$(MODEL)")
# --- end of Blender extension (addon) ---

# --- Training (training/) ---
# `make setup-train` installs the offline TTS engines (Debian packages, only those missing; needs
# root or sudo) and requirements-train.txt into .venv; `make setup-train-py` only the latter (pip); `make test-train` runs tests/train; `make train-data`
# aligns the shared LibriSpeech speech and fills .cache/duet-train with conversations.
TRAIN_DEBS   := flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng libespeak-ng1 sox
TRAIN_STAMP  := $(VENV)/.duet-train-$(shell cat requirements-train.txt 2>/dev/null | cksum | cut -d' ' -f1)
TRAIN_CONVS ?= 400
TEST_CONVS  ?= 40
TRAIN_JOBS  ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: setup-train setup-train-py train-debs test-train train-data

setup-train: setup train-debs setup-train-py

setup-train-py: setup $(TRAIN_STAMP)

train-debs:
	@missing=$$(for p in $(TRAIN_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing $$missing"; \
	  $$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y $$missing; \
	fi

$(TRAIN_STAMP): requirements-train.txt
	$(PY) -m pip install -q -r requirements-train.txt
	@rm -f $(VENV)/.duet-train-* && touch $@

test-train: setup-train
	$(PY) -m ruff check training tests/train
	$(PY) -m pytest -q tests/train

train-data: setup-train
	$(PY) -m training.voices --jobs $(TRAIN_JOBS)
	$(PY) -m training.conversation --split train --count $(TRAIN_CONVS) --jobs $(TRAIN_JOBS)
	$(PY) -m training.conversation --split test --count $(TEST_CONVS) --jobs $(TRAIN_JOBS)

# `make train`: the shipped model from nothing (data, training, ONNX export, evaluation, card).
.PHONY: train
train: train-data
	$(PY) -m training.train --train-conversations $(TRAIN_CONVS) --test-conversations $(TEST_CONVS)
# --- end of Training (training/) ---

# --- Demo ---
# `make demo`: two demo heads (Alex, Sam) talk through the shipped sample conversation, animated by
# the real extension and runtime; `make demo SELF=a.wav PARTNER=b.wav` uses your own two tracks
# (Alex speaks SELF, Sam speaks PARTNER). Writes out/demo.blend, .glb, .fbx (each re-imported and
# checked), demo.mp4 (Workbench preview with both voices), demo.png (contact sheet) and
# demo_curves.png. About 2 minutes on 2 CPU cores. `make demo CAST=3`: three heads (Alex, Sam, Kim)
# around a table, Generate cast on the three-person sample (assets/sample_cast), each turning toward
# whoever speaks; the same outputs named out/demo_cast.*. Options: python scripts/demo.py --help.
# `make sample` rebuilds both shipped samples (assets/sample, assets/sample_cast) from their scripts.
.PHONY: demo sample
demo: setup
	$(PY) scripts/demo.py $(if $(CAST),--cast "$(CAST)") $(if $(SELF),--self "$(SELF)") $(if $(PARTNER),--partner "$(PARTNER)")

sample: setup-train
	$(PY) scripts/make_sample_conversation.py
	$(PY) scripts/make_sample_conversation.py --cast
# --- end of Demo ---
