# Make targets for people; CI runs .ci/run. Nothing here needs more than Go.
GO       ?= go
FUZZTIME ?= 60s

.PHONY: test fuzz fuzz-targets

# test: the whole suite, the README's test command.
test:
	$(GO) test ./...

# fuzz: every Fuzz* target for $(FUZZTIME) each, one at a time, starting
# from its seed corpus in <package>/testdata/fuzz/<target>/. .ci/fuzz finds
# the package/target pairs with `go test -list 'Fuzz.*'` and runs one
# `go test -run '^$$' -fuzz '^Name$$' -fuzztime $(FUZZTIME) ./pkg` per target.
fuzz:
	FUZZTIME=$(FUZZTIME) .ci/fuzz

# fuzz-targets: the package and name of every fuzz target.
fuzz-targets:
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for name in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do echo "$$pkg $$name"; done; \
	done
