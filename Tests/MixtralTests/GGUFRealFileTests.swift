import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

/// Opt-in check on real GGUF files too large to commit (a model, llama.cpp's vocab files):
/// every metadata value and the dequantised tensors against gguf-py. Prepare with
///     python3 scripts/gguf/check_real_file.py OUTDIR FILE.gguf ...
/// and run with
///     GGUF_REAL_FILES=FILE.gguf:... GGUF_REAL_EXPECTED=OUTDIR swift test --filter GGUFRealFile
@Suite("GGUF real files (opt-in)", .enabled(if: ProcessInfo.processInfo.environment["GGUF_REAL_FILES"] != nil))
struct GGUFRealFileTests {
    static var files: [String] {
        (ProcessInfo.processInfo.environment["GGUF_REAL_FILES"] ?? "").split(separator: ":").map(String.init)
    }

    static var expectedDirectory: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment["GGUF_REAL_EXPECTED"] ?? ".")
    }

    @Test(arguments: files)
    func matchesGGUFPy(_ path: String) throws {
        let file = try GGUFFile(path: path)
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let json = try Data(contentsOf: Self.expectedDirectory.appendingPathComponent(stem + ".metadata.json"))
        let reference = try #require(try JSONSerialization.jsonObject(with: json) as? [String: [String: Any]])

        var compared = 0
        for (key, entry) in reference {
            let value = try #require(file.metadata[key], "\(key) missing")
            let type = try #require(entry["type"] as? String)
            #expect(value.type.description == type, "\(key)")
            if case let .array(elementType, values) = value {
                #expect(elementType.description == entry["element"] as? String, "\(key)")
                let expected = try #require(entry["value"] as? [Any])
                #expect(values.count == expected.count, "\(key)")
                for (i, (actual, wanted)) in zip(values, expected).enumerated() where !Self.equal(actual, wanted) {
                    Issue.record("\(key)[\(i)]: \(actual) vs \(wanted)")
                    break
                }
            } else {
                #expect(Self.equal(value, entry["value"] as Any), "\(key): \(value) vs \(String(describing: entry["value"]))")
            }
            compared += 1
        }
        #expect(compared == file.metadata.count)

        let expected = try GGUFFile(path: Self.expectedDirectory.appendingPathComponent(stem + ".expected.gguf").path)
        for name in expected.tensorNames {
            let reference = try expected.floats(name)
            let baseName = name.hasSuffix("@rows") ? String(name.dropLast(5)) : name
            let matrix = try file.matrix(baseName)
            let rows = reference.count / matrix.columns
            var actual = [Float](repeating: .nan, count: reference.count)
            actual.withUnsafeMutableBufferPointer { out in
                for r in 0..<rows {
                    dequantizeRow(matrix.type, matrix.row(r), out.baseAddress! + r * matrix.columns, count: matrix.columns)
                }
            }
            if let mismatch = firstBitMismatch(actual, reference) {
                Issue.record("\(name) (\(matrix.type)): element \(mismatch.index) differs")
            }
        }
    }

    static func equal(_ value: GGUFValue, _ json: Any) -> Bool {
        switch value {
        case .string(let s):
            // The reference stores strings as hex of their UTF-8 bytes.
            return s.utf8.map { String(format: "%02x", $0) }.joined() == json as? String
        case .bool(let b): return b == json as? Bool
        case .float32(let f): return (json as? NSNumber).map { Float($0.doubleValue) == f } ?? false
        case .float64(let d): return (json as? NSNumber).map { $0.doubleValue == d } ?? false
        case .uint64(let u): return (json as? NSNumber).map { $0.uint64Value == u } ?? false
        case .array: return false
        default: return (json as? NSNumber).map { $0.int64Value == Int64(value.intValue ?? Int.min) } ?? false
        }
    }
}
