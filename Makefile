# Kondge billing. `make run` and `make test` are all a new user needs.
SHELL := /bin/bash
VENV := .venv
KONDGE := $(VENV)/bin/kondge
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup run start stop status test test-unit bench bench-web bench-floor bench-cards bench-profile bench-rows bench-ab bench-engine bench-ha chaos fuzz psql clean

setup:
	@bash scripts/setup.sh

run: setup
	$(KONDGE) server run

start: setup
	$(KONDGE) server start

stop:
	@if [ -x $(KONDGE) ]; then $(KONDGE) server stop; fi

# The service, its last backup and, when `kondge ha up` made the HA
# topology, each node's role, replication lag and the RADIUS sets.
status:
	@$(KONDGE) server status; rc=$$?; \
	if [ -d var/ha/monitor ]; then $(KONDGE) ha status || rc=$$?; fi; exit $$rc

# The whole suite: unit, database (a private cluster of its own under
# var/test) and end to end (real FreeRADIUS on other ports). Leaves nothing running.
test: setup
	@$(PYTEST) tests $(PYTEST_ARGS); rc=$$?; \
	KONDGE_VAR=$(CURDIR)/var/test KONDGE_PG_PORT=5499 $(KONDGE) server stop >/dev/null 2>&1; \
	exit $$rc

test-unit: setup
	$(PYTEST) tests/unit $(PYTEST_ARGS)

# Issue 100,000 cards and write their XLSX file, timed (a cluster of its own under var/bench).
bench-cards: setup
	$(VENV)/bin/python bench/cards.py

# Benchmarks (not part of make test), each on a private cluster of its own:
# complete calls through the real stack at increasing load, beside the
# unlang and rlm_sql ceilings (var/bench-calls; results in
# var/bench/calls.{json,txt,png}); the floor, the least work a per-packet
# Python hook could do, beside the unlang workers, the rows workers (the
# service's rows, one statement a packet, no rule), the priced workers (the
# rows priced by the rating engine in the hook, two statements at stage 2
# and at the billed Stop) and the service, each
# behind the front end, with the service's hook CPU and wall time a packet
# inside its workers (var/bench-floor; var/bench/floor.{json,txt}); then
# the tariff engine at scale (var/bench, decks of 1k and 1M prefixes;
# results in var/bench/tariffs.{json,txt}).
bench: setup
	$(VENV)/bin/python bench/calls.py
	$(VENV)/bin/python bench/floor.py --hook-cpu
	$(VENV)/bin/python bench/tariffs.py

# Faults under load, the books checked after each (a service of its own
# under var/chaos-run; results in var/chaos/results.{json,txt}); about 15
# minutes. See bench/chaos.py --help and docs/operations.md.
chaos: setup
	$(VENV)/bin/python bench/chaos.py

# Random and mutated RADIUS packets through the real service, at least
# 100,000 of them, with process, answer, accounting and books checks after
# each batch (a service of its own under var/fuzz-run; results in
# var/fuzz/report.{json,txt} and findings.jsonl); about 4 minutes.
# FUZZ_ARGS passes options: FUZZ_ARGS="--seed 7 --rate 500". See
# bench/fuzz.py --help and docs/operations.md.
fuzz: setup
	$(VENV)/bin/python bench/fuzz.py $(FUZZ_ARGS)

# The web portal: logins/s, page views/s, and the call path's slowdown while
# the portal is loaded (a service of its own under var/bench-web; results in
# var/bench/web.{json,txt}); about 3 minutes. See bench/web.py --help.
bench-web: setup
	$(VENV)/bin/python bench/web.py $(BENCH_WEB_ARGS)

# The HA topology and the backups under faults (var/bench-ha, var/bench-restore;
# results in var/bench/ha.{json,txt}): the primary's postmaster alone killed,
# the primary killed under 60 calls/s,
# a RADIUS set killed, the standby held down, a restore of 1,000,000 cards
# and 5,000,000 CDRs and a point-in-time restore. HA_ARGS passes options
# (bench/ha.py --help), e.g. HA_ARGS="--cards 100000 --cdrs 500000".
bench-ha: setup
	$(VENV)/bin/python bench/ha.py $(HA_ARGS)

# The floor alone (see bench/floor.py --help).
bench-floor: setup
	$(VENV)/bin/python bench/floor.py $(FLOOR_ARGS)

# Where a call's time goes: the call path called directly, one packet at a
# time (per-packet timings, PostgreSQL function times, EXPLAIN ANALYZE,
# cProfile) on a cluster of its own (var/bench-profile); var/bench/profile.txt.
bench-profile: setup
	$(VENV)/bin/python bench/profile_calls.py

# The least the call path's tables cost: the floor, the service's rows
# written with one plain statement a packet, the same rows priced by the
# rating engine in the hook (bench/priced_hook.py), and the service, played
# in turn on one database (var/bench-rows); var/bench/call_rows.{txt,json}.
bench-rows: setup
	$(VENV)/bin/python bench/call_rows.py

# The working tree against a revision, REV=rev (default HEAD): both trees'
# call path played side by side, rounds begun together (var/ab), the CPU a
# call of each and their ratio round by round; var/bench/ab.{txt,json}.
bench-ab: setup
	$(VENV)/bin/python bench/ab.py $(or $(REV),HEAD)

# The rating engine's Python time per call, BASELINE=rev (default: merge-base with main) against this tree.
bench-engine: setup
	$(VENV)/bin/python bench/engine.py $(if $(BASELINE),--baseline $(BASELINE))

psql:
	psql "host=$(CURDIR)/var/pg/run port=$${KONDGE_PG_PORT:-5433} dbname=kondge user=kondge"

clean: stop
	rm -rf var/pg var/radius var/log var/test
