-- BigGAN at paper scale: ajbrock/BigGAN-PyTorch's CIFAR-10 recipe (scripts/launch_cifar_ema.sh),
-- every flag it sets: ch 64 (widths 256), no shared embedding, no hierarchical z, no orthogonal
-- regularization, batch 50, four D steps per G step, Adam 2e-4 / 2e-4 (0, 0.999), N(0, 0.02)
-- init, an EMA of 0.9999 from iteration 1,000, 500 epochs of CIFAR-10 (125,000 G steps). Days
-- on a CPU; scripts/biggan.lua's defaults are the same architecture sized for minutes.
--   luagan scripts/biggan.lua --config=scripts/configs/biggan_cifar.lua --dataset=cifar10 --dataRoot=DIR
return {
  ch = 64,
  shared = false,
  hier = false,
  GOrthoBeta = 0.0,
  batchSize = 50,
  numDSteps = 4,
  GLr = 2e-4,
  DLr = 2e-4,
  emaDecay = 0.9999,
  emaStart = 1000,
  minutes = 0.0,
  iters = 125000,
  sampleEvery = 2000,
  saveEvery = 2000,
  evalEvery = 5000,
  onCollapse = "warn",
  out = "runs/biggan-cifar",
}
