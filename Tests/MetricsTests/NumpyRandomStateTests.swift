import Metrics
import XCTest

/// The NumPy RandomState stream, bit for bit; the expected values were printed by numpy 2.4.6:
///   r = np.random.RandomState(2020); r.permutation(10), r.randint(3, 29, size=5), r.randn(3)
///   r = np.random.RandomState(7); r.choice(1000, 5, replace=False), r.choice(70000, 4, replace=False),
///       r.randint(0, 2**33, size=2), r.randn(5)
///   r = np.random.RandomState(4294967295); r.random_sample(2), r.randint(5, 6, size=2), r.randint(0, 2**32, size=2)
final class NumpyRandomStateTests: XCTestCase {
  func testMatchesNumpyLegacyStream() {
    var r = NumpyRandomState(seed: 2020)
    XCTAssertEqual(r.permutation(10), [2, 4, 9, 1, 5, 7, 6, 3, 8, 0])
    XCTAssertEqual((0..<5).map { _ in r.randint(3, 29) }, [19, 3, 27, 13, 12])
    XCTAssertEqual((0..<3).map { _ in r.standardNormal() }, [-0.06115443195334841, 0.06451384411861422, 0.4101129497994469])

    var s = NumpyRandomState(seed: 7)
    XCTAssertEqual(s.choiceWithoutReplacement(1000, 5), [778, 334, 271, 802, 216])
    XCTAssertEqual(s.choiceWithoutReplacement(70000, 4), [15341, 65949, 27204, 38443])
    XCTAssertEqual((0..<2).map { _ in s.randint(0, 1 << 33) }, [1805423963, 6891039388])
    XCTAssertEqual((0..<5).map { _ in s.standardNormal() },
                   [-0.19406995417432674, 0.8721976452973793, 0.022554018644469084, 1.1224769543301365, 0.9911415746968852])

    var t = NumpyRandomState(seed: 4294967295)
    XCTAssertEqual((0..<2).map { _ in t.nextDouble() }, [0.0976320289940138, 0.9123828453026218])
    XCTAssertEqual((0..<2).map { _ in t.randint(5, 6) }, [5, 5])
    XCTAssertEqual((0..<2).map { _ in t.randint(0, 1 << 32) }, [3388880820, 2260532800])
  }
}
