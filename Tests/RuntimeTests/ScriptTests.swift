import Foundation
import XCTest

/// The Lua-level tests in scripts/dev/tests, each run by the luagan executable.
final class ScriptTests: XCTestCase {
  static let listed = ["tensor_basics", "autograd", "bridge", "misuse", "memory", "fixtures_ops", "fixtures_layers",
                       "fixtures_optim", "fixtures_gan", "fixtures_exchange", "nn_modules", "misuse_nn", "gan2d",
                       "option_parsing", "images", "file_formats", "datasets", "checkpoints", "logs_plots", "tensorboard", "misuse_io",
                       "metrics", "fixtures_metrics", "inception_net", "fixtures_biggan", "domain_metrics", "threads", "never_crash",
                       "training_run", "small_data", "pth_files", "biggan_pytorch", "biggan_deep", "declared_sizes", "pggan_recipe"]

  func testEveryScriptIsListed() throws {
    let dir = Luagan.root.appendingPathComponent("scripts/dev/tests")
    let found = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".lua") }.map { String($0.dropLast(4)) }
    XCTAssertEqual(Set(found), Set(Self.listed), "scripts/dev/tests and ScriptTests.listed disagree")
  }

  func testTensorBasics() throws { try Luagan.runTestScript("tensor_basics") }
  func testAutograd() throws { try Luagan.runTestScript("autograd") }
  func testBridge() throws { try Luagan.runTestScript("bridge") }
  func testMisuse() throws { try Luagan.runTestScript("misuse") }
  func testMemoryStaysFlat() throws { try Luagan.runTestScript("memory") }
  func testPyTorchFixturesForOps() throws { try Luagan.runTestScript("fixtures_ops") }
  func testPyTorchFixturesForLayers() throws { try Luagan.runTestScript("fixtures_layers") }
  func testPyTorchFixturesForOptimizers() throws { try Luagan.runTestScript("fixtures_optim") }
  func testPyTorchFixturesForLosses() throws { try Luagan.runTestScript("fixtures_gan") }
  func testStateExchangeWithPyTorch() throws { try Luagan.runTestScript("fixtures_exchange") }
  func testModulesLayersOptimizers() throws { try Luagan.runTestScript("nn_modules") }
  func testToolkitMisuse() throws { try Luagan.runTestScript("misuse_nn") }
  func testGan2dCoversTheModes() throws { try Luagan.runTestScript("gan2d") }
  func testOptionParsing() throws { try Luagan.runTestScript("option_parsing") }
  func testImages() throws { try Luagan.runTestScript("images") }
  func testDatasetsAndLoaders() throws { try Luagan.runTestScript("datasets") }
  func testJPEGNpzZipsAndFolders() throws { try Luagan.runTestScript("file_formats") }
  func testPyTorchCheckpointsWithoutRunningCode() throws { try Luagan.runTestScript("pth_files") }
  func testDiffAugmentADALeCamAccumulation() throws { try Luagan.runTestScript("small_data") }
  func testCheckpoints() throws { try Luagan.runTestScript("checkpoints") }
  func testLogsAndPlots() throws { try Luagan.runTestScript("logs_plots") }
  func testTensorBoardEventFiles() throws { try Luagan.runTestScript("tensorboard") }
  func testTrainingRunWatchRollbackBudget() throws { try Luagan.runTestScript("training_run") }
  func testImagesDataCheckpointsMisuse() throws { try Luagan.runTestScript("misuse_io") }
  func testMetricSanityAndErrors() throws { try Luagan.runTestScript("metrics") }
  func testMetricsAgainstReferences() throws { try Luagan.runTestScript("fixtures_metrics") }
  func testInceptionMatchesPytorchFid() throws { try Luagan.runTestScript("inception_net") }
  func testTinyBigGANStepsMatchPyTorch() throws { try Luagan.runTestScript("fixtures_biggan") }
  func testBigGANPyTorchCheckpointLoads() throws { try Luagan.runTestScript("biggan_pytorch") }
  func testBigGANDeepMatchesBothReferences() throws { try Luagan.runTestScript("biggan_deep") }
  func testDomainClassifierAndMetricsOnRealData() throws { try Luagan.runTestScript("domain_metrics") }
  func testSameBitsForAnyThreadCount() throws { try Luagan.runTestScript("threads") }
  func testDeclaredSizesAreBoundedBeforeAllocating() throws { try Luagan.runTestScript("declared_sizes") }
  func testPGGANSchedulesPhasesSwitchesAndCoverage() throws { try Luagan.runTestScript("pggan_recipe") }

  /// The allocation cases under a 4 GiB address-space limit (prlimit --as), where the machine's
  /// free memory says yes and the process's own limit says no: each must be a Lua error.
  func testAllocationsPastRLIMIT_ASAreLuaErrors() throws {
    let r = try Luagan.run(["scripts/dev/tests/declared_sizes.lua", "--allocations"], launcher: ["prlimit", "--as=4294967296", "--"])
    XCTAssertEqual(r.status, 0, "under prlimit --as=4G\n--- stdout\n\(r.stdout)\n--- stderr\n\(r.stderr)")
    XCTAssertTrue(r.stdout.contains("2 passed, 0 failed"), r.stdout)
  }

  func testNeverCrash() throws { try Luagan.runTestScript("never_crash", environment: ["LUAGAN_LUA_HEAP_LIMIT": "512M"]) }
}
