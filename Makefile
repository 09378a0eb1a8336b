# luagan: the two commands a new user runs are `make demo` and `make test`.
# Both install missing system packages first and build in release mode.
LUAGAN := .build/release/luagan

.PHONY: all setup build install demo demo-pggan test lint bench bench-scaling fuzz test-asan clean
all: build

setup:
	@scripts/setup.sh

build: setup
	swift build -c release

# luagan on PATH: a link in $(PREFIX)/bin to this checkout's build, which finds its scripts
# (scripts/, scripts/lib) next to itself; `luagan scripts/biggan.lua` then works from anywhere.
PREFIX ?= $(if $(filter 0,$(shell id -u)),/usr/local,$(HOME)/.local)
install: build
	mkdir -p $(PREFIX)/bin
	ln -sf $(CURDIR)/$(LUAGAN) $(PREFIX)/bin/luagan
	@echo "installed $(PREFIX)/bin/luagan -> $(CURDIR)/$(LUAGAN)"; \
	case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; *) echo "add it to PATH: export PATH=\"$(PREFIX)/bin:\$$PATH\"";; esac

# The main job: BigGAN at 32x32 on Fashion-MNIST (scripts/configs/demo.lua, about 15 minutes
# on 2 cores), then a class sheet, interpolations and a truncation sweep from its checkpoint.
demo: build
	rm -rf runs/demo
	$(LUAGAN) scripts/biggan.lua --config=scripts/configs/demo.lua
	$(LUAGAN) scripts/sample.lua --ckpt=runs/demo --truncations='{0,1.5,1,0.5}' --n=2000
	@echo "samples: runs/demo/samples/latest.png, runs/demo/sample/classes.png; truncation sweep: runs/demo/sample/truncation.png"

# PGGAN's main job: progressive growing on Fashion-MNIST to 32x32 (scripts/configs/demo_pggan.lua,
# about 15 minutes on 2 cores whatever their speed), then a sheet and z interpolations from Gs
# and the paper's evaluation on 10,000 samples: SWD per Laplacian level, MS-SSIM, domain FID and
# IS, and mode coverage (runs/demo-pggan/eval-*.json).
demo-pggan: build
	rm -rf runs/demo-pggan
	$(LUAGAN) scripts/pggan.lua --config=scripts/configs/demo_pggan.lua
	$(LUAGAN) scripts/sample.lua --ckpt=runs/demo-pggan --truncations='{0}' --n=0
	$(LUAGAN) scripts/eval.lua --ckpt=runs/demo-pggan --n=16384 --split=train
	@echo "samples: runs/demo-pggan/samples/latest.png, runs/demo-pggan/sample/; evaluation: runs/demo-pggan/eval-*.json"

# Every test: the Swift suites (gradcheck sweep, Winograd, autograd) and the Lua suites run
# through the luagan executable (bridge, misuse loop, memory, PyTorch fixtures, CLI).
test: build lint
	swift build -c release --build-tests
	swift test -c release --skip-build

# Benchmarks: what runs (CPU, ISA, BLAS core), kernel rates (sgemm, conv2d at BigGAN shapes,
# thread scaling), then biggan32, pggan32 and demo32 side by side with PyTorch's
# ../shared/bench/torch_reference.py, A B A B, as ratios (PyTorch from $$TORCH_PYTHON or
# ../.venv-torch). LUAGAN_SIMULATE_BLAS_FALLBACK=1 make bench runs it all as on a CPU OpenBLAS
# does not recognise.
bench: build
	$(LUAGAN) scripts/dev/bench/kernels.lua
	$(LUAGAN) scripts/dev/bench/side_by_side.lua --rounds=2 --steps=5
	scripts/dev/bench/ranks.sh biggan32 2 5
	$(MAKE) bench-scaling

# The scaling table: BigGAN and PGGAN training at 64 and 128 px (PyTorch eager and compiled) and
# BigGAN-deep sampling at 128, 256 and 512 px, each also at twice its batch (name@batch), side by
# side, A B C A B C, time and peak resident memory (about 75 minutes on 2 cores).
SCALING = biggan64,biggan64@32,biggan128,biggan128@16,pggan64,pggan64@32,pggan128,pggan128@16,deep128,deep128@16,deep256,deep256@16,deep512,deep512@8
bench-scaling: build
	$(LUAGAN) scripts/dev/bench/side_by_side.lua --rounds=2 --steps=3 --compiled --workloads=$(SCALING)

# The fuzzer at full size: random calls of every function and method with hostile arguments,
# mutated files (and files whose declared sizes lie) for every reader, and dist's collectives
# called differently on each rank under mpirun -n 2, watched from outside (scripts/dev/fuzz,
# Sources/LuaganFuzz). Failures go to fuzz-failures.log with the seed, the case and a command
# to replay it.
fuzz: build
	.build/release/luagan-fuzz --calls 1000000 --files 10000 --mpi-cases 2000 --seed $${SEED:-1}

# The style budgets (140 columns, 100-line Swift functions, a ratchet for what exceeded them
# when the check began), checked by luagan itself, and the formatter's rules (.swift-format,
# scripts/dev/format_lint.sh); docs/DESIGN.md says more.
lint: build
	$(LUAGAN) scripts/dev/check_style.lua
	scripts/dev/format_lint.sh

# The Lua suites and a fuzz slice under the address sanitizer (a separate build folder).
test-asan: setup
	swift build -c release --sanitize=address --scratch-path .build-asan
	scripts/dev/run_lua_suites.sh .build-asan/release/luagan
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/dev/lsan.supp .build-asan/release/luagan-fuzz --calls 20000 --per-child 2000 --files 1000 --timeout 120 --max-as 0 --luagan .build-asan/release/luagan

clean:
	rm -rf .build
