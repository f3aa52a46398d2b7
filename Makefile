# The two commands a rebuilder needs:  `make book`  and  `make test`.
# Both create .venv if it is missing and install the project into it (Python 3.11).

PYTHON   ?= python3.11
VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
MATHJAX_VERSION := 3.2.2
MATHJAX  := book/_static/mathjax/tex-chtml.js
# Sources whose change must re-execute every chapter (glued equations, figures).
PKG_SOURCES := $(wildcard derivations/*.py gencode/*.py)
JB_FLAGS := --builder html -W -n --keep-going

.PHONY: help venv book linkcheck test browser-test report serve bench bench-build clean clean-book

help:
	@echo "make book         install (if needed) and build the website into _build/html"
	@echo "make test         install (if needed) and run every symbolic, mutant and numeric test"
	@echo "make linkcheck    Sphinx linkcheck (external links only with LINKCHECK_EXTERNAL=1)"
	@echo "make browser-test open every built page in headless Chromium (needs chromium)"
	@echo "make report       print the verification report (python -m derivations)"
	@echo "make serve        serve _build/html on http://127.0.0.1:8000"
	@echo "make bench        side-by-side benchmark against diffusers, flow_matching, torchsde, torchdiffeq, zuko"
	@echo "make bench-build  time the symbolic suite, the tests, a cold and a no-change book build"
	@echo "make clean        remove _build (a full rebuild follows)"

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) on PATH (or make PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[book,test]"
	touch $@

# MathJax is served from the site itself, so the book renders offline (npm registry package).
$(MATHJAX):
	rm -rf _build/npm && mkdir -p _build/npm book/_static/mathjax
	cd _build/npm && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	cp _build/npm/package/es5/tex-chtml-full.js $(MATHJAX)
	mkdir -p book/_static/mathjax/output/chtml/fonts book/_static/mathjax/input/tex
	cp -r _build/npm/package/es5/output/chtml/fonts/woff-v2 book/_static/mathjax/output/chtml/fonts/
	cp -r _build/npm/package/es5/input/tex/extensions book/_static/mathjax/input/tex/
	cp -r _build/npm/package/es5/ui _build/npm/package/es5/a11y book/_static/mathjax/
	cp _build/npm/package/LICENSE book/_static/mathjax/

# A change in derivations/ or gencode/ changes what the chapters glue and draw: drop the
# execution cache and the doctrees so that every chapter is re-read and re-executed.
_build/.sources.stamp: $(PKG_SOURCES)
	rm -rf _build/.jupyter_cache _build/.doctrees
	mkdir -p _build && touch $@

# A failed build deletes the doctrees and the HTML, so the next build re-reads and re-executes
# everything instead of reporting success over stale pages.
book: $(STAMP) $(MATHJAX) _build/.sources.stamp
	@echo "jupyter-book build . $(JB_FLAGS)"
	@$(VENV)/bin/jupyter-book build . $(JB_FLAGS) || { rm -rf _build/.doctrees _build/html; \
	  echo "book build FAILED: _build/.doctrees and _build/html removed"; exit 1; }
	$(PY) scripts/check_site.py

# Sphinx's link checker over the same sources and cache (run after `make book`).
linkcheck: $(STAMP) $(MATHJAX) _build/.sources.stamp
	$(VENV)/bin/jupyter-book build . --builder linkcheck -W -n --keep-going
	@# Jupyter Book writes the report into _build/html; keep the site clean.
	mkdir -p _build/linkcheck && mv _build/html/output.txt _build/html/output.json _build/linkcheck/
	@echo "linkcheck: report in _build/linkcheck/output.json"

test: $(STAMP)
	$(PY) -m pytest

# The browser test also runs inside `make test` when Chromium and a built site exist; here a
# missing browser or site is a failure, not a skip.
browser-test: $(STAMP)
	REQUIRE_BROWSER=1 $(PY) -m pytest tests/test_browser.py

report: $(STAMP)
	$(PY) -m derivations

serve:
	@test -d _build/html || { echo "no _build/html: run make book first"; exit 1; }
	$(PY) -m http.server --directory _build/html --bind 127.0.0.1 8000

# Writes benchmarks/results.json, which the book's benchmark appendix shows (BENCH_ARGS="--device cuda").
bench: $(STAMP)
	$(PY) -m benchmarks.peers $(BENCH_ARGS)

bench-build: $(STAMP) $(MATHJAX)
	$(PY) scripts/bench_build.py

clean-book:
	rm -rf _build/html _build/.doctrees _build/.jupyter_cache _build/.sources.stamp

clean:
	rm -rf _build
