import XCTest
@testable import MixtralServer
