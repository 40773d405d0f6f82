# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Both create .venv on first use (torch pinned first: an unpinned torch would pull CUDA builds
# where a CPU wheel is cached). Elsewhere, on a machine without a GPU:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
VENV ?= .venv
PYTHON ?= python3
TORCH_INDEX ?=
APT_PACKAGES = xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 \
	libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xfixes0 libxcb-cursor0 \
	libxkbcommon-x11-0 libxcb-xkb1 libgl1 libegl1 libfontconfig1 libdbus-1-3

.PHONY: demo test lint system-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(VENV)/bin/pip install --quiet -e ".[testing]"
	touch $@

# Xvfb and Qt's xcb libraries for the GUI tests (napari needs OpenGL, which offscreen Qt lacks).
system-packages:
	@if ! command -v Xvfb >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

demo: $(VENV)/.installed
	$(VENV)/bin/cellae demo --out demo_output

test: system-packages $(VENV)/.installed
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
