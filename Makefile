# subbilling: PGXS build.
#
#   make && make install          build and install into the PostgreSQL found by pg_config
#   make installcheck             pg_regress (test/sql) and isolation (test/specs) tests
#                                 against a running server
#   make prove_installcheck       TAP tests (test/t), each in clusters of its own made with the
#                                 installed binaries (run as a user that may run initdb)
#   make pgtap                    pgTAP tests (test/pgtap) against a database with the extension
#   bash scripts/test.sh          every test suite (see README), ends with "N passed, N failed"

EXTENSION   = subbilling
EXTVERSION  = 0.3

MODULE_big  = subbilling
# src/core/*.c is plain C (no PostgreSQL headers): parsing, formatting, calendar, rounding,
# allocation and check digits.  src/*.c are the thin fmgr wrappers and the worker.
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/core/*.c)))

# The install script of the current version is assembled from sql/parts/*.sql in name order.
# Versions that have shipped keep their install script as committed (sql/subbilling--0.1.sql,
# built from the parts of 0.1), and every step has an upgrade script
# (sql/subbilling--0.1--0.2.sql); test/upgrade.sh checks that an upgraded database has exactly
# the objects of a fresh install.
# While a version is open, its upgrade script from the previous one is assembled the same way
# from sql/upgrade/PREV--NEXT/*.sql (one step per change), so that parallel work adds files
# instead of editing one; when the version ships the assembled script is committed and frozen.
SQL_PARTS   = $(sort $(wildcard sql/parts/*.sql))
PREVVERSION = 0.2
UPGRADE_PARTS = $(sort $(wildcard sql/upgrade/$(PREVVERSION)--$(EXTVERSION)/*.sql))
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql sql/$(EXTENSION)--$(PREVVERSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

REGRESS      = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test --load-extension=btree_gist --load-extension=$(EXTENSION)
ISOLATION    = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=btree_gist --load-extension=$(EXTENSION)

# Server headers as system headers: their own inline functions' warnings are not ours.
PG_CPPFLAGS = -Isrc -Isrc/core -isystem $(shell $(PG_CONFIG) --includedir-server)
# Warning-free under -Wall -Wextra; scripts/test.sh builds with WERROR=-Werror.
PG_CFLAGS   = -Wall -Wextra $(WERROR)

# libcurl (Debian libcurl4-openssl-dev) for the webhook worker (src/webhook.c)
SHLIB_LINK  = -lcurl

EXTRA_CLEAN = build

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

sql/$(EXTENSION)--$(PREVVERSION)--$(EXTVERSION).sql: $(UPGRADE_PARTS)
	cat $^ > $@

$(OBJS): $(wildcard src/*.h src/core/*.h)

# PGXS defines how to run TAP tests (prove_installcheck) but runs them from installcheck only
# when TAP_TESTS is set; here installcheck stays pg_regress + isolation and the TAP tests have
# their own target.  PROVE_TESTS=test/t/NAME.pl runs one.
PROVE_TESTS ?= $(sort $(wildcard test/t/*.pl))
.PHONY: prove_installcheck
prove_installcheck:
	$(prove_installcheck)

.PHONY: pgtap
pgtap:
	pg_prove --pset tuples_only=1 $(sort $(wildcard test/pgtap/*.sql))
