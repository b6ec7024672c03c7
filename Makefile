PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
URL := http://127.0.0.1:8000

.PHONY: run demo test lint format clean

# The virtualenv is rebuilt when a requirements file changes.
$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# A secret key and a webhook token, made once and reused (git-ignored).
.env: | $(BIN)/.installed
	$(BIN)/python -c "import secrets; print(f'SECRET_KEY={secrets.token_urlsafe(50)}'); print(f'ROOTLINE_WEBHOOK_TOKEN={secrets.token_urlsafe(32)}')" > $@
	@echo "wrote .env (SECRET_KEY, ROOTLINE_WEBHOOK_TOKEN)"

run: $(BIN)/.installed .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py setup_rootline --url $(URL)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho --env .env --procfile Procfile start

# A real incident replayed end to end (needs the Debian package prometheus); its own
# database, demo.sqlite3, made afresh each time. See demo/run.py.
demo: $(BIN)/.installed .env
	$(BIN)/python demo/run.py

test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .hypothesis test-rootline.sqlite3* demo.sqlite3*
