import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

/// A model split by llama.cpp's llama-gguf-split (tiny-mixtral-hf-q4_0.gguf, 10 tensors a
/// file) reads as the unsplit file.
@Suite("GGUF split files")
struct GGUFSplitTests {
    static let first = "tiny-mixtral-hf-q4_0-split-00001-of-00003.gguf"

    @Test func splitModelReadsAsTheWholeFile() throws {
        let split = try GGUFFixtures.open(Self.first)
        let whole = try GGUFFixtures.open("tiny-mixtral-hf-q4_0.gguf")
        #expect(split.shardPaths.count == 3)
        #expect(split.shardPaths[2].hasSuffix("tiny-mixtral-hf-q4_0-split-00003-of-00003.gguf"))
        #expect(whole.shardPaths == [whole.path])
        #expect(split.tensorNames == whole.tensorNames)
        #expect(Set(split.tensors.values.map(\.shard)) == [0, 1, 2])
        for name in whole.tensorNames {
            let a = try split.tensorInfo(name), b = try whole.tensorInfo(name)
            #expect(a.dimensions == b.dimensions && a.type == b.type, "\(name)")
            #expect(try split.data(name).elementsEqual(try whole.data(name)), "\(name)")
        }
        // Model metadata comes from the first file.
        #expect(try GGUFLlamaHyperparameters(file: split) == GGUFLlamaHyperparameters(file: whole))
        let h = try GGUFLlamaHyperparameters(file: split)
        let q = try split.llamaMatrixUndoingRoPEPermutation(hfName: "model.layers.1.self_attn.q_proj.weight", h)
        let qWhole = try whole.llamaMatrixUndoingRoPEPermutation(hfName: "model.layers.1.self_attn.q_proj.weight", h)
        #expect(UnsafeRawBufferPointer(start: q.matrix.base, count: q.matrix.byteCount)
            .elementsEqual(UnsafeRawBufferPointer(start: qWhole.matrix.base, count: qWhole.matrix.byteCount)))
    }

    @Test func laterFilesAndMissingFilesAreTypedErrors() throws {
        // Opening the second file.
        let second = GGUFFixtures.path("tiny-mixtral-hf-q4_0-split-00002-of-00003.gguf")
        #expect(throws: GGUFError.self) { try GGUFFile(path: second) }
        do {
            _ = try GGUFFile(path: second)
        } catch {
            guard case .invalidMetadata(_, "split.no", let reason) = error else { Issue.record("\(error)"); return }
            #expect(reason.contains("-00001-of-00003.gguf"))
        }

        // The first two files without the third.
        let directory = TemporaryGGUF.directory.appendingPathComponent("split-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for k in 1...2 {
            let name = "tiny-mixtral-hf-q4_0-split-0000\(k)-of-00003.gguf"
            try FileManager.default.copyItem(at: GGUFFixtures.directory.appendingPathComponent(name),
                                             to: directory.appendingPathComponent(name))
        }
        let missing = directory.appendingPathComponent("tiny-mixtral-hf-q4_0-split-00003-of-00003.gguf").path
        #expect(throws: GGUFError.self) { try GGUFFile(path: directory.appendingPathComponent(Self.first).path) }
        do {
            _ = try GGUFFile(path: directory.appendingPathComponent(Self.first).path)
        } catch {
            guard case .cannotOpen(let path, _) = error else { Issue.record("\(error)"); return }
            #expect(path == missing)
        }

        // A first file under another name.
        let renamed = directory.appendingPathComponent("model.gguf")
        try FileManager.default.copyItem(at: GGUFFixtures.directory.appendingPathComponent(Self.first), to: renamed)
        #expect(throws: GGUFError.self) { try GGUFFile(path: renamed.path) }
    }
}
