# Two commands for a fresh machine: `make reproduce` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRIOR_SCALE ?= 4
PROFILE ?= small
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install reproduce pretrain pretrain-image test test-slow lint bench gpu-check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch and torchvision resolve as one release pair in this single install
	$(PY) -m pip install -e ".[notebooks,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3
	touch $@

install: $(VENV)/.installed

reproduce: install
	$(PY) -m framer_nb reproduce --profile $(PROFILE)

# Regenerate the shipped priors in data/priors/ (about an hour on 2 CPU cores, the two side by side; the model cards
# record how they were made: 2500 / 2250 steps at a constant learning rate after a 20-step warm-up, stopped early in a
# run keyed as 5000 steps; they denoise the residual at the SR stage's scale, PRIOR_SCALE * (HR - bicubic(LR)))
pretrain: install
	OMP_NUM_THREADS=1 $(PY) -m framer_nb pretrain --backbone tiny-dit --steps 5000 --stop-after 2500 --batch-size 64 --residual-scale $(PRIOR_SCALE) --eval-every 250 & \
	OMP_NUM_THREADS=1 $(PY) -m framer_nb pretrain --backbone tiny-unet --steps 5000 --stop-after 2250 --batch-size 64 --residual-scale $(PRIOR_SCALE) --eval-every 250; \
	wait

# The same for priors that denoise the whole HR image (TrainConfig.target="image"), into data/priors/<backbone>-image
pretrain-image: install
	OMP_NUM_THREADS=1 $(PY) -m framer_nb pretrain --backbone tiny-dit --target image --steps 5000 --stop-after 2500 --batch-size 64 --eval-every 250 & \
	OMP_NUM_THREADS=1 $(PY) -m framer_nb pretrain --backbone tiny-unet --target image --steps 5000 --stop-after 2250 --batch-size 64 --eval-every 250; \
	wait

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(PY) -m ruff check framer_nb tests benchmarks research notebooks

bench: install
	$(PY) benchmarks/overhead.py --backbone tiny-dit --device cpu
	$(PY) benchmarks/overhead.py --backbone tiny-unet --device cpu
	$(PY) benchmarks/optimizer_step.py
	$(PY) benchmarks/cli_latency.py
	$(PY) benchmarks/framer_cost.py

# On a one-GPU machine (see benchmarks/gpu_check.sh): SD3.5-medium overhead of both lenses, gpu tests, latent runs
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf build runs
