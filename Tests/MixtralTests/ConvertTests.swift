import Foundation
import Testing
@testable import Mixtral

@Suite struct ConvertTests {
    /// The mixtral-gqa fixture written in Mistral's original layout by
    /// scripts/convert/make_consolidated_fixture.py converts back to an HF folder whose
    /// logits equal those of the original checkpoint.
    @Test func consolidatedLayoutConvertsToTheOriginalCheckpoint() throws {
        let output = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: output) }
        try MistralConsolidatedConverter.convert(from: Fixtures.root + "/consolidated/mixtral-gqa", to: output + "/hf")
        let converted = try LanguageModel(folder: output + "/hf", threads: 2)
        let original = try LanguageModel(folder: Fixtures.parity("mixtral-gqa"), threads: 2)
        #expect(converted.config.headDim == original.config.headDim && converted.config.numExperts == 4)
        let prompt = try Fixtures.reference("mixtral-gqa").prompt_ids
        let a = try converted.forward(prompt, cache: converted.makeCache(), allLogits: true)
        let b = try original.forward(prompt, cache: original.makeCache(), allLogits: true)
        #expect(a == b)
        let expected = try NPY.read(path: Fixtures.parity("mixtral-gqa") + "/logits.npy").values
        let scale = expected.map(abs).max() ?? 0
        #expect(zip(a, expected).map { abs($0 - $1) }.max() ?? .infinity <= 1e-4 * scale)
    }

    /// Logits are written atomically to regular files only: a symbolic link or a device
    /// at the destination is refused and left as it was.
    @Test func npyWriteRefusesLinksAndDevices() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let target = folder + "/target.npy", link = folder + "/link.npy"
        try NPY.write([1, 2], shape: [2], to: target)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(throws: NPY.Error.self) { try NPY.write([3], shape: [1], to: link) }
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == target)
        #expect(try NPY.read(path: target).values == [1, 2])
        #expect(throws: NPY.Error.self) { try NPY.write([3], shape: [1], to: "/dev/full") }
        try NPY.write([4, 5, 6], shape: [3], to: target)  // a regular file is replaced
        #expect(try NPY.read(path: target).values == [4, 5, 6])
    }

    /// A header whose shape claims more than the file holds (even past Int's range) is a
    /// typed error.
    @Test func npyHugeShapesAreMalformed() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for shape in ["(9223372036854775807, 9223372036854775807)", "(4611686018427387904,)", "(-1, 2)"] {
            var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
            header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
            var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
            bytes += Array(header.utf8) + [0, 0, 128, 63]
            let path = folder + "/huge.npy"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(throws: NPY.Error.self) { try NPY.read(path: path) }
        }
    }

    @Test func refusesToOverwriteAModel() throws {
        #expect(throws: CheckpointError.self) {
            try MistralConsolidatedConverter.convert(from: Fixtures.root + "/consolidated/mixtral-gqa", to: Fixtures.parity("mixtral-gqa"))
        }
    }
}
