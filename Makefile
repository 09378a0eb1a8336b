# luagan: the two commands a new user runs are `make demo` and `make test`.
# Both install missing system packages first and build in release mode.
LUAGAN := .build/release/luagan

.PHONY: all setup build demo test bench clean
all: build

setup:
	@scripts/setup.sh

build: setup
	swift build -c release

# The main job: a short training run that prints its loss falling.
demo: build
	$(LUAGAN) scripts/demo.lua

# Every test: the Swift suites (gradcheck sweep, Winograd, autograd) and the Lua suites run
# through the luagan executable (bridge, misuse loop, memory, PyTorch fixtures, CLI).
test: build
	swift build -c release --build-tests
	swift test -c release --skip-build

# Kernel benchmarks (sgemm, conv2d at BigGAN shapes, thread scaling).
bench: build
	$(LUAGAN) scripts/bench/kernels.lua

clean:
	rm -rf .build
