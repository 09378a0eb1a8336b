# luagan: the two commands a new user runs are `make demo` and `make test`.
# Both install missing system packages first and build in release mode.
LUAGAN := .build/release/luagan

.PHONY: all setup build demo test bench clean
all: build

setup:
	@scripts/setup.sh

build: setup
	swift build -c release

# The main job: BigGAN at 32x32 on Fashion-MNIST (scripts/configs/demo.lua, about 15 minutes
# on 2 cores), then a class sheet, interpolations and a truncation sweep from its checkpoint.
demo: build
	rm -rf runs/demo
	$(LUAGAN) scripts/biggan.lua --config=scripts/configs/demo.lua
	$(LUAGAN) scripts/sample.lua --ckpt=runs/demo --truncations='{0,1.5,1,0.5}' --n=2000
	@echo "samples: runs/demo/samples/latest.png, runs/demo/sample/classes.png; truncation sweep: runs/demo/sample/truncation.png"

# Every test: the Swift suites (gradcheck sweep, Winograd, autograd) and the Lua suites run
# through the luagan executable (bridge, misuse loop, memory, PyTorch fixtures, CLI).
test: build
	swift build -c release --build-tests
	swift test -c release --skip-build

# Kernel benchmarks (sgemm, conv2d at BigGAN shapes, thread scaling), then the biggan32 and
# pggan32 training workloads of ../shared/bench (compare with torch_reference.py back to back).
bench: build
	$(LUAGAN) scripts/bench/kernels.lua
	LG_MEM=1 $(LUAGAN) scripts/bench/gan_workloads.lua biggan32 --steps=5 --threads=2
	LG_MEM=1 $(LUAGAN) scripts/bench/gan_workloads.lua pggan32 --steps=5 --threads=2

clean:
	rm -rf .build
