import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

@Suite("GGUF writer")
struct GGUFWriterTests {
    /// Rewrites a file from what the reader got out of it.
    func rewrite(_ file: GGUFFile, to path: String) throws {
        let metadata = file.metadataKeys.map { (key: $0, value: file.metadata[$0]!) }
        let descriptions = try file.tensorNames.map { name in
            let info = try file.tensorInfo(name)
            return GGUFTensorDescription(name: name, type: info.type, dimensions: info.dimensions)
        }
        let writer = try GGUFFileWriter(path: path, metadata: metadata, tensors: descriptions)
        for name in file.tensorNames { try writer.writeTensorData(try file.data(name)) }
        try writer.finish()
    }

    /// Files written by gguf-py's GGUFWriter, llama.cpp's llama-quantize and
    /// convert_hf_to_gguf.py come out byte for byte the same when rewritten.
    @Test(arguments: ["metadata.gguf", "halves.gguf", "quantize.gguf", "tiny-mixtral-mixed.gguf",
                      "tiny-mixtral-hf.gguf", "tiny-mixtral-hf-per-expert.gguf"])
    func rewritingReproducesTheFile(_ name: String) throws {
        let file = try GGUFFixtures.open(name)
        let path = TemporaryGGUF.directory.appendingPathComponent("rewrite-" + name).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try rewrite(file, to: path)
        let original = try Data(contentsOf: GGUFFixtures.directory.appendingPathComponent(name))
        let copy = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(copy.count == original.count)
        if copy != original {
            let index = zip(copy, original).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
            Issue.record("\(name): first differing byte \(index)")
        }
    }

    @Test func roundTripsEmptyArraysAndStreamsTensors() throws {
        let path = TemporaryGGUF.directory.appendingPathComponent("writer-roundtrip.gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.alignment", .uint32(16)),
            ("empty", .array(elementType: .float32, values: [])),
            ("nested", .array(elementType: .array, values: [.array(elementType: .bool, values: [.bool(false)])])),
        ]
        let tensors = [GGUFTensorDescription(name: "a", type: .q8_0, dimensions: [32, 3]),
                       GGUFTensorDescription(name: "b", type: .f16, dimensions: [5])]
        let writer = try GGUFFileWriter(path: path, metadata: metadata, tensors: tensors)
        let a = [UInt8](repeating: 7, count: 3 * 34), b = [UInt8](repeating: 9, count: 10)
        try a.withUnsafeBytes { try writer.writeTensorData($0) }
        #expect(throws: GGUFError.self) { try writer.finish() }  // "b" missing
        try b.withUnsafeBytes { try writer.writeTensorData($0) }
        try writer.finish()

        let file = try GGUFFile(path: path)
        #expect(file.alignment == 16)
        #expect(file.metadataKeys == metadata.map(\.key))
        for (key, value) in metadata { #expect(file.metadata[key] == value) }
        #expect(Array(try file.data("a")) == a)
        #expect(Array(try file.data("b")) == b)
        #expect(try file.tensorInfo("b").offset % 16 == 0)
    }

    @Test func rejectsInconsistentInput() throws {
        let path = TemporaryGGUF.directory.appendingPathComponent("writer-bad.gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: GGUFError.self) {
            try GGUFFileWriter(path: path, metadata: [("k", .uint8(1)), ("k", .uint8(2))], tensors: [])
        }
        #expect(throws: GGUFError.self) {
            try GGUFFileWriter(path: path, metadata: [("k", .array(elementType: .int32, values: [.uint8(1)]))], tensors: [])
        }
        #expect(throws: GGUFError.self) {
            try GGUFFileWriter(path: path, metadata: [("general.alignment", .uint32(12))], tensors: [])
        }
        #expect(throws: GGUFError.self) {
            try GGUFFileWriter(path: path, metadata: [], tensors: [GGUFTensorDescription(name: "q", type: .q4_0, dimensions: [48])])
        }
        #expect(throws: GGUFError.self) {
            try GGUFFileWriter(path: "/nonexistent/dir/x.gguf", metadata: [], tensors: [])
        }
        let writer = try GGUFFileWriter(path: path, metadata: [], tensors: [GGUFTensorDescription(name: "t", type: .f32, dimensions: [4])])
        let short = [UInt8](repeating: 0, count: 12)
        #expect(throws: GGUFError.self) { try short.withUnsafeBytes { try writer.writeTensorData($0) } }
    }
}
