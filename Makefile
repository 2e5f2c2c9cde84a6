# Shortcuts for those who have make; the README's commands need only python3.
.PHONY: demo test install bench
demo:
	python3 .ci/dev.py demo
test:
	python3 .ci/dev.py test
install:
	python3 .ci/dev.py install
bench:
	for b in benchmarks/bench_*.py; do .venv/bin/python $$b || exit 1; done
