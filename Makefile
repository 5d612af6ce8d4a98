# Everything runs from a local virtualenv so a machine with only python3 can
# build, test and run Mailroom.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Bytecode caches stay on whatever the environment says: with
# PYTHONDONTWRITEBYTECODE set, every test worker rewrites every test module
# again and every `mailroom` a test starts compiles the package again (make
# test-fast: 46 s against 58-72 s on two cores).
unexport PYTHONDONTWRITEBYTECODE
# Collected once before the workers start, so they load the rewritten tests
# from the cache instead of each rewriting them (about 3 s, saving ~25 s of CPU).
PRECOLLECT = $(BIN)/pytest -q --collect-only -p no:cacheprovider >/dev/null

.PHONY: axe-core install test test-fast lint run sandbox diagrams bench bench-smoke soak soak-ci soak-selftest package-check container-image container-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Everything: unit, stand-in and (when Cyrus can be started) integration tests,
# on WORKERS processes (pytest-xdist; the tests of one Cyrus server share a
# worker, so each server starts once). Many tests wait on loopback servers (a
# Cyrus closing its stream after a minute, say): three workers per core keep
# the CPU busy meanwhile (4:17 on 2 cores against 5:03 with two per core).
WORKERS ?= $(shell echo $$(( $$(nproc) * 3 )))
test: $(STAMP)
	$(PRECOLLECT)
	$(BIN)/pytest -q -n $(WORKERS) --dist loadgroup

# The quick loop: without the Cyrus suites and the slow tests (the
# crash-and-refusal sweep, the stateful model, real processes killed, the
# longest Hypothesis runs, Prometheus, the browser); three workers per core.
FAST_WORKERS ?= $(shell echo $$(( $$(nproc) * 3 )))
test-fast: $(STAMP)
	$(PRECOLLECT)
	$(BIN)/pytest -q -n $(FAST_WORKERS) --dist loadgroup -m "not integration and not slow"

# axe-core, the accessibility checker the browser tests run on every page:
# npm's tarball, pinned by version and checked by hash (tests/web/test_browser.py).
AXE_VERSION := 4.14.1
AXE_SHA256 := 29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c
AXE := .cache/axe-core/axe.min.js
axe-core: $(AXE)
$(AXE):
	mkdir -p .cache/axe-core/tmp
	cd .cache/axe-core/tmp && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null
	tar -xzf .cache/axe-core/tmp/axe-core-$(AXE_VERSION).tgz -C .cache/axe-core/tmp package/axe.min.js
	echo "$(AXE_SHA256)  .cache/axe-core/tmp/package/axe.min.js" | sha256sum -c --quiet
	mv .cache/axe-core/tmp/package/axe.min.js $(AXE)
	rm -rf .cache/axe-core/tmp

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Starts the local Fastmail stand-in with a Screener full of mail, runs the
# service against it and applies triage labels the way a user would.
run: $(STAMP)
	$(BIN)/mailroom demo

# The numbers (about 25 minutes; Cyrus parts need root): bench/results.{json,md}
bench: $(STAMP)
	$(BIN)/python -m tests.bench.runner

# Tiny sizes, proves the runner works: bench/smoke.{json,md}
bench-smoke: $(STAMP)
	$(BIN)/python -m tests.bench.runner --smoke

# The chaos soak: the real service against the stand-in under a seeded fault
# schedule for 30 minutes (SEED=n to replay one, CONTACTS=jmap for JMAP contacts);
# bench/soak-<contacts>-<seed>.json gets the figures.
SEED ?=
CONTACTS ?=
soak: $(STAMP)
	$(BIN)/python -m tests.soak --minutes 30 $(if $(SEED),--seed $(SEED)) $(if $(CONTACTS),--contacts $(CONTACTS)) --report bench/

# The short soak CI runs (2 minutes): a fixed seed, so its fault schedule is
# the same every run; `make soak` explores a new one each time.
soak-ci: $(STAMP)
	$(BIN)/python -m tests.soak --minutes 2 --seed $(or $(SEED),2)
	$(BIN)/python -m tests.soak --minutes 2 --seed $(or $(SEED),2) --contacts jmap

# The soak against deliberately broken builds (a sender skipped, a valid sender
# flagged, only the labelled email re-filed, /health always pass, the label
# removed first, a part-way decision forgotten, nobody the user wrote to
# trusted, no list rules): passes only if the soak
# catches every one.
soak-selftest: $(STAMP)
	$(BIN)/python -m tests.soak.selftest --seconds 40

# Redraws diagrams/ from the state machine class (SVG when Graphviz is installed).
diagrams: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,diagrams]'
	$(BIN)/python -m mailroom.push.diagram

# Build the wheel and sdist, install the wheel into a fresh venv outside the
# checkout (as pipx would) and run it from there: --version, check without
# settings (exit 2 naming the variable), and a short demo.
PKG_VENV ?= /tmp/mailroom-package-check
package-check: $(STAMP)
	rm -rf dist $(PKG_VENV)
	$(BIN)/python -m build --outdir dist . >/dev/null
	$(PYTHON) -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/pip install --quiet dist/*.whl
	cd /tmp && env -i PATH=/usr/bin:/bin HOME=/tmp $(PKG_VENV)/bin/mailroom --version
	cd /tmp && env -i PATH=/usr/bin:/bin HOME=/tmp $(PKG_VENV)/bin/mailroom check >/dev/null 2>$(PKG_VENV)/check.err; \
	  code=$$?; cat $(PKG_VENV)/check.err; test $$code -eq 2 && grep -q MAILROOM_JMAP_TOKEN $(PKG_VENV)/check.err
	# The pages' templates and assets ship in the wheel; the password command works from it.
	cd /tmp && $(PKG_VENV)/bin/python -c "import importlib.resources as r; w = r.files('mailroom.web'); \
	  assert all(w.joinpath(f).is_file() for f in ('templates/screener.html', 'static/style.css', 'static/refresh.js'))"
	cd /tmp && echo 'a long enough password' | env -i PATH=/usr/bin:/bin HOME=/tmp \
	  $(PKG_VENV)/bin/mailroom web-password | grep -q '^\$$argon2id\$$'
	cd /tmp && env -i PATH=/usr/bin:/bin HOME=/tmp timeout 120 $(PKG_VENV)/bin/mailroom demo \
	  --pause 0.2 --debounce 0.5 --poll-interval 5 | grep "^demo | done: 7/7 senders triaged"

# The container image (Containerfile), built on a Debian bookworm root made
# here from Debian's packages (podman, debootstrap, runc): no public image is
# pulled. The host's CA bundle is mounted into the build step only (pip behind
# a network that inspects TLS), never into the image.
IMAGE ?= localhost/mailroom:latest
BASE_IMAGE ?= localhost/mailroom-base:bookworm
HOST_CA ?= /etc/ssl/certs/ca-certificates.crt
PODMAN_LIMITS = --ulimit nofile=4096:4096 --ulimit nproc=4096:4096
container-image:
	bash .ci/container-base.sh $(BASE_IMAGE)
	podman build --format docker --network=host $(PODMAN_LIMITS) $(BUILD_FLAGS) --build-arg BASE=$(BASE_IMAGE) \
	  $(if $(wildcard $(HOST_CA)),--volume $(HOST_CA):/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt) \
	  --tag $(IMAGE) --file Containerfile .

# The image as users run it: non-root, the demo inside, Cyrus 3.6 on the host's
# loopback (a label triaged, the health check, SIGTERM, a restart keeping the
# ledger) and the compose example up and down (tests/container).
container-check: $(STAMP) container-image
	MAILROOM_CONTAINER_IMAGE=$(IMAGE) $(BIN)/pytest -q tests/container

sandbox: $(STAMP)
	$(BIN)/mailroom sandbox

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build mailroom.egg-info
