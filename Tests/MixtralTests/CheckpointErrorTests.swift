import Foundation
import Testing
@testable import Mixtral

/// Malformed files give typed errors naming the file and tensor; never a crash.
@Suite struct CheckpointErrorTests {
    /// Bytes of a safetensors file with the given header JSON and data length.
    static func safetensors(header: String, dataBytes: Int) -> Data {
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var data = Data()
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: headerBytes)
        data.append(Data(count: dataBytes))
        return data
    }

    static func write(_ data: Data) throws -> String {
        let path = try Fixtures.temporaryFolder() + "/model.safetensors"
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func open(_ data: Data) throws -> CheckpointError? {
        let path = try Self.write(data)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        do {
            _ = try SafeTensorsFile(path: path)
            return nil
        } catch {
            return error
        }
    }

    /// Read into huge-page memory, a checkpoint has the same tensors and bytes as mapped,
    /// and a truncated file is still rejected.
    @Test func memoryResidencyReadsTheSameBytes() throws {
        let folder = Fixtures.parity("mixtral-gqa")
        let mapped = try SafeTensorsCheckpoint(folder: folder, residency: .mapped)
        let resident = try SafeTensorsCheckpoint(folder: folder, residency: .memory)
        for name in mapped.tensorNames {
            let a = try mapped.tensor(name), b = try resident.tensor(name)
            #expect(a.shape == b.shape && a.type == b.type)
            let bytes = a.type.byteCount(elements: a.elementCount) ?? 0
            #expect(memcmp(a.data, b.data, bytes) == 0, "\(name)")
        }
        let original = try Data(contentsOf: URL(fileURLWithPath: folder + "/model.safetensors"))
        let path = try Self.write(original.prefix(original.count - 100))
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        #expect(throws: CheckpointError.self) { _ = try SafeTensorsFile(path: path, residency: .memory) }
    }

    /// Read into memory, the bytes are moved so that the tensors start on 64-byte cache
    /// lines (GGUF aligns tensor data to 32 bytes only), and they still equal the file's.
    @Test func memoryResidencyAlignsTensorsToCacheLines() throws {
        let path = GGUFFixtures.path("tiny-mixtral-hf-per-expert.gguf")  // all tensors 32 bytes into a line
        let mapped = try GGUFFile(path: path, residency: .mapped)
        let resident = try GGUFFile(path: path, residency: .memory)
        #expect(try mapped.tensorNames.allSatisfy { Int(bitPattern: try mapped.data($0).baseAddress) % 64 == 32 })
        var aligned = 0
        for name in mapped.tensorNames {
            let a = try mapped.data(name), b = try resident.data(name)
            #expect(a.elementsEqual(b), "\(name)")
            if Int(bitPattern: b.baseAddress) % 64 == 0 { aligned += 1 }
        }
        #expect(aligned == mapped.tensorNames.count)

        let folder = Fixtures.parity("mixtral-gqa")
        let checkpoint = try SafeTensorsCheckpoint(folder: folder, residency: .memory)
        let lined = try checkpoint.tensorNames.filter { Int(bitPattern: try checkpoint.tensor($0).data) % 64 == 0 }
        #expect(lined.count * 2 > checkpoint.tensorNames.count)
    }

    @Test func truncatedFile() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: Fixtures.parity("mixtral-gqa") + "/model.safetensors"))
        let error = try open(original.prefix(original.count - 100))
        guard case .malformedHeader(_, let reason) = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(reason.contains("truncated"))
        #expect(try open(original.prefix(5)) != nil)  // shorter than the length field
        #expect(try open(Data()) != nil)
    }

    @Test func headerLengthPastTheEnd() throws {
        var data = Data()
        withUnsafeBytes(of: UInt64(4096).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array("{}".utf8))
        guard case .malformedHeader(_, let reason) = try open(data) else { Issue.record("expected malformedHeader"); return }
        #expect(reason.contains("past the end"))
        var huge = Data()
        withUnsafeBytes(of: UInt64.max.littleEndian) { huge.append(contentsOf: $0) }
        guard case .malformedHeader = try open(huge) else { Issue.record("expected malformedHeader"); return }
    }

    @Test func overlappingOffsets() throws {
        let header = #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}"#
        guard case .malformedTensor(_, let tensor, let reason) = try open(Self.safetensors(header: header, dataBytes: 24)) else {
            Issue.record("expected malformedTensor"); return
        }
        #expect(tensor == "b")
        #expect(reason.contains("overlap"))
    }

    @Test func sizeDisagreesWithShape() throws {
        let header = #"{"w": {"dtype": "BF16", "shape": [4, 4], "data_offsets": [0, 16]}}"#
        guard case .malformedTensor(_, "w", let reason) = try open(Self.safetensors(header: header, dataBytes: 16)) else {
            Issue.record("expected malformedTensor for w"); return
        }
        #expect(reason.contains("needs 32"))
    }

    @Test func unknownDTypeAndBadJSON() throws {
        let unknown = #"{"w": {"dtype": "F7", "shape": [1], "data_offsets": [0, 1]}}"#
        guard case .malformedTensor(_, "w", _) = try open(Self.safetensors(header: unknown, dataBytes: 1)) else {
            Issue.record("expected malformedTensor"); return
        }
        guard case .malformedHeader = try open(Self.safetensors(header: "{not json", dataBytes: 0)) else {
            Issue.record("expected malformedHeader"); return
        }
    }

    /// Copies a fixture folder, lets `change` edit it, and returns the error of loading it.
    func loadEdited(_ fixture: String, _ change: (String) throws -> Void) throws -> Error? {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for file in try FileManager.default.contentsOfDirectory(atPath: Fixtures.parity(fixture)) {
            try FileManager.default.copyItem(atPath: Fixtures.parity(fixture) + "/" + file, toPath: folder + "/" + file)
        }
        try change(folder)
        do {
            _ = try LanguageModel(folder: folder, threads: 1)
            return nil
        } catch {
            return error
        }
    }

    func editConfig(_ folder: String, _ edit: (inout [String: Any]) -> Void) throws {
        let path = folder + "/config.json"
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    }

    @Test func shapeMismatchWithConfig() throws {
        let error = try loadEdited("mixtral-gqa") { try editConfig($0) { $0["intermediate_size"] = 128 } }
        guard case .shapeMismatch(let file, let tensor, let expected, let found) = error as? CheckpointError else {
            Issue.record("got \(String(describing: error))"); return
        }
        #expect(file.hasSuffix("model.safetensors"))
        #expect(tensor == "model.layers.0.block_sparse_moe.experts.0.w1.weight")
        #expect(expected == [128, 64] && found == [96, 64])
    }

    @Test func missingTensor() throws {
        let error = try loadEdited("mixtral-gqa") { try editConfig($0) { $0["num_local_experts"] = 5 } }
        guard case .missingTensor(_, let tensor) = error as? CheckpointError else { Issue.record("got \(String(describing: error))"); return }
        #expect(tensor == "model.layers.0.block_sparse_moe.experts.4.w1.weight")
        // A shard named by the index but absent from the folder.
        let missingShard = try loadEdited("mixtral-sharded") { try FileManager.default.removeItem(atPath: $0 + "/model-00002-of-00004.safetensors") }
        guard case .fileNotFound(let path) = missingShard as? CheckpointError else { Issue.record("got \(String(describing: missingShard))"); return }
        #expect(path.hasSuffix("model-00002-of-00004.safetensors"))
    }

    @Test func unknownArchitectureAndBadConfig() throws {
        let error = try loadEdited("mixtral-gqa") { try editConfig($0) { $0["model_type"] = "gpt_neox" } }
        guard case .unsupportedArchitecture(_, "gpt_neox") = error as? CheckpointError else {
            Issue.record("got \(String(describing: error))"); return
        }
        let badValue = try loadEdited("mixtral-gqa") { try editConfig($0) { $0["hidden_size"] = "sixty-four" } }
        guard case .invalidConfig(_, let reason) = badValue as? CheckpointError else { Issue.record("got \(String(describing: badValue))"); return }
        #expect(reason.contains("hidden_size"))
        let notJSON = try loadEdited("mixtral-gqa") { try Data("{".utf8).write(to: URL(fileURLWithPath: $0 + "/config.json")) }
        guard case .invalidConfig = notJSON as? CheckpointError else { Issue.record("got \(String(describing: notJSON))"); return }
        let noWeights = try loadEdited("mixtral-gqa") { try FileManager.default.removeItem(atPath: $0 + "/model.safetensors") }
        guard case .fileNotFound = noWeights as? CheckpointError else { Issue.record("got \(String(describing: noWeights))"); return }
    }

    /// Values that would compute something else, or garbage, are refused by name:
    /// another activation than SiLU, a zero or NaN epsilon, a non-positive RoPE base, and a
    /// generation_config.json that is there but does not parse.
    @Test func valuesThatWouldComputeGarbage() throws {
        let edits: [(String, (inout [String: Any]) -> Void)] = [
            ("hidden_act", { $0["hidden_act"] = "relu" }),
            ("rms_norm_eps", { $0["rms_norm_eps"] = 0 }),
            ("rope_theta", { config in
                // transformers 5 nests it in rope_parameters, which wins over the top level.
                config["rope_theta"] = -1
                if var parameters = config["rope_parameters"] as? [String: Any] {
                    parameters["rope_theta"] = -1
                    config["rope_parameters"] = parameters
                }
            }),
        ]
        for (field, edit) in edits {
            let error = try loadEdited("mixtral-gqa") { try editConfig($0, edit) }
            guard case .invalidConfig(_, let reason) = error as? CheckpointError else {
                Issue.record("\(field): got \(String(describing: error))"); continue
            }
            #expect(reason.contains(field), "\(reason)")
        }
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data("{\"do_sample\": tru".utf8).write(to: URL(fileURLWithPath: folder + "/generation_config.json"))
        let config = try ModelConfig.load(path: Fixtures.parity("mixtral-gqa") + "/config.json")
        #expect(throws: CheckpointError.self) { try GenerationOptions.defaults(folder: folder, config: config) }
    }

    /// A FIFO as the model or as a weight file is refused at once instead of blocking in
    /// open() until some writer comes.
    @Test func fifosAreRefusedNotWaitedFor() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(mkfifo(folder + "/model.gguf", 0o600) == 0)
        #expect(throws: CheckpointError.unreadable(file: folder + "/model.gguf", reason: "not a regular file or folder")) {
            try ModelBundle.load(path: folder + "/model.gguf")
        }
        let error = try loadEdited("mixtral-gqa") { folder in
            try FileManager.default.removeItem(atPath: folder + "/model.safetensors")
            #expect(mkfifo(folder + "/model.safetensors", 0o600) == 0)
        }
        guard case .unreadable(_, let reason) = error as? CheckpointError else { Issue.record("got \(String(describing: error))"); return }
        #expect(reason.contains("not a regular file"))
    }

    @Test func unsupportedWeightDType() throws {
        let header = #"{"model.norm.weight": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}"#
        let path = try Self.write(Self.safetensors(header: header, dataBytes: 16))
        let file = try SafeTensorsFile(path: path)
        #expect(throws: CheckpointError.unsupportedDType(file: path, tensor: "model.norm.weight", dtype: "I64")) {
            _ = try file.tensor("model.norm.weight")
        }
    }

    @Test func tokenIDsOutOfRangeAndContextOverflow() throws {
        let model = try LanguageModel(folder: Fixtures.parity("mixtral-gqa"), threads: 1)
        #expect(throws: ModelError.tokenOutOfRange(id: 320, vocabularySize: 320)) {
            _ = try model.forward([1, 320], cache: model.makeCache())
        }
        #expect(throws: ModelError.tokenOutOfRange(id: -1, vocabularySize: 320)) {
            _ = try model.forward([-1], cache: model.makeCache())
        }
        #expect(throws: ModelError.contextOverflow(tokens: 5, limit: 4)) {
            _ = try model.forward([1, 2, 3, 4, 5], cache: model.makeCache(maxPositions: 4))
        }
        #expect(throws: ModelError.emptyInput) { _ = try model.forward([], cache: model.makeCache()) }
    }
}
