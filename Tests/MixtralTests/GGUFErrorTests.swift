import Foundation
import Testing
@testable import Mixtral

/// Builds GGUF bytes field by field, so that tests can write broken files on purpose.
struct GGUFBuilder {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes += s.utf8 }

    mutating func kv(_ key: String, string value: String) { string(key); u32(8); string(value) }
    mutating func kv(_ key: String, u32 value: UInt32) { string(key); u32(4); u32(value) }
    mutating func kv(_ key: String, f32 value: Float) { string(key); u32(6); u32(value.bitPattern) }
    mutating func kv(_ key: String, strings values: [String]) {
        string(key); u32(9); u32(8); u64(UInt64(values.count))
        for value in values { string(value) }
    }

    mutating func header(version: UInt32 = 3, tensors: UInt64, metadata: UInt64) {
        bytes += "GGUF".utf8
        u32(version); u64(tensors); u64(metadata)
    }

    mutating func tensorInfo(_ name: String, dimensions: [UInt64], type: UInt32, offset: UInt64) {
        string(name)
        u32(UInt32(dimensions.count))
        for d in dimensions { u64(d) }
        u32(type)
        u64(offset)
    }

    /// Pads to the alignment and appends `bytes` bytes of tensor data.
    mutating func padData(alignment: Int, bytes count: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
        bytes += [UInt8](repeating: 0x11, count: count)
    }
}

enum TemporaryGGUF {
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-tests-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func write(_ bytes: [UInt8]) throws -> String {
        let url = directory.appendingPathComponent(UUID().uuidString + ".gguf")
        try Data(bytes).write(to: url)
        return url.path
    }

    /// The error opening these bytes gives, or nil when they open.
    static func openError(_ bytes: [UInt8]) throws -> GGUFError? {
        let path = try write(bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try GGUFFile(path: path)
            return nil
        } catch {
            return error
        }
    }
}

/// A valid file with one F32 tensor [64, 2] at offset 0, for corrupting one field at a time.
private func oneTensorFile(type: UInt32 = 0, dimensions: [UInt64] = [64, 2], offset: UInt64 = 0,
                           dataBytes: Int = 512, metadata: (inout GGUFBuilder) -> UInt64 = { _ in 0 }) -> [UInt8] {
    var kv = GGUFBuilder()
    let count = metadata(&kv)
    var b = GGUFBuilder()
    b.header(tensors: 1, metadata: count)
    b.bytes += kv.bytes
    b.tensorInfo("blk.0.attn_q.weight", dimensions: dimensions, type: type, offset: offset)
    b.padData(alignment: 32, bytes: dataBytes)
    return b.bytes
}

@Suite("GGUF reader errors")
struct GGUFErrorTests {
    @Test func theBaseFileOpens() throws {
        #expect(try TemporaryGGUF.openError(oneTensorFile()) == nil)
    }

    @Test func missingFile() throws {
        let error = try TemporaryGGUF.openError([])  // empty file
        #expect(error.map { if case .truncated = $0 { true } else { false } } == true)
        #expect(throws: GGUFError.self) { try GGUFFile(path: "/nonexistent/model.gguf") }
        do {
            _ = try GGUFFile(path: "/nonexistent/model.gguf")
        } catch {
            guard case .cannotOpen(let path, _) = error else { Issue.record("\(error)"); return }
            #expect(path == "/nonexistent/model.gguf")
        }
        #expect(throws: GGUFError.self) { try GGUFFile(path: TemporaryGGUF.directory.path) }
    }

    @Test func badMagic() throws {
        var bytes = oneTensorFile()
        bytes[0] = UInt8(ascii: "X")
        #expect(isBadMagic(try TemporaryGGUF.openError(bytes)))
        #expect(isBadMagic(try TemporaryGGUF.openError(Array("GGML\u{3}\0\0\0".utf8))))
        #expect(isBadMagic(try TemporaryGGUF.openError(Array("ab".utf8))))
    }

    private func isBadMagic(_ error: GGUFError?) -> Bool {
        if case .badMagic? = error { return true }
        return false
    }

    @Test(arguments: [UInt32(0), 1, 4, 0x0300_0000])
    func unsupportedVersion(_ version: UInt32) throws {
        var bytes = oneTensorFile()
        withUnsafeBytes(of: version.littleEndian) { bytes.replaceSubrange(4..<8, with: $0) }
        let error = try TemporaryGGUF.openError(bytes)
        guard case .unsupportedVersion(_, let found)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(found == version)
        if version == 0x0300_0000 { #expect(error?.description.contains("big-endian") == true) }
    }

    /// Every proper prefix of a valid file fails with a typed error and never reads past
    /// its end: inside the header it is "truncated", inside the data "out of bounds".
    @Test func everyTruncationIsATypedError() throws {
        let bytes = try Array(Data(contentsOf: GGUFFixtures.directory.appendingPathComponent("metadata.gguf")))
        let file = try GGUFFixtures.open("metadata.gguf")
        // The writer pads after the last tensor too; cutting into that padding is harmless.
        let dataEnd = file.tensors.values.map { $0.fileOffset + $0.byteCount }.max() ?? 0
        // One copy, cut shorter and shorter (much faster than a new file per length).
        let path = try TemporaryGGUF.write(bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for length in (0 ..< dataEnd).reversed() where length < file.dataOffset + 8 || length % 7 == 0 {
            let handle = try #require(FileHandle(forWritingAtPath: path))
            try handle.truncate(atOffset: UInt64(length))
            try handle.close()
            let error: GGUFError?
            do {
                _ = try GGUFFile(path: path)
                error = nil
            } catch let thrown {
                error = thrown
            }
            switch error {
            case .truncated?:
                #expect(length <= file.dataOffset, "length \(length)")
            case .tensorDataOutOfBounds(_, let tensor, _, _, _)?:
                #expect(length >= file.dataOffset, "length \(length)")
                #expect(tensor == "matrix" || tensor == "vector")
            default:
                Issue.record("length \(length): \(String(describing: error))")
            }
        }
    }

    @Test func tensorDataPastTheEnd() throws {
        // 64 x 2 F32 = 512 bytes, only 511 present.
        let error = try TemporaryGGUF.openError(oneTensorFile(dataBytes: 511))
        guard case let .tensorDataOutOfBounds(_, tensor, offset, byteCount, available)? = error else {
            Issue.record("\(String(describing: error))"); return
        }
        #expect(tensor == "blk.0.attn_q.weight" && offset == 0 && byteCount == 512 && available == 511)
        #expect(error?.description.contains("blk.0.attn_q.weight") == true)
        // An offset far past the end, and one that would overflow when added to the size.
        let far = try TemporaryGGUF.openError(oneTensorFile(offset: 1 << 40))
        #expect({ if case .tensorDataOutOfBounds? = far { true } else { false } }())
        let huge = try TemporaryGGUF.openError(oneTensorFile(offset: UInt64.max - 31))
        #expect({ if case .tensorDataOutOfBounds? = huge { true } else { false } }())
    }

    @Test(arguments: [UInt32(4), 5, 31, 200, 0xFFFF_FFFF])
    func unknownGGMLType(_ type: UInt32) throws {
        let error = try TemporaryGGUF.openError(oneTensorFile(type: type))
        #expect(error == .unknownTensorType(path: pathOf(error), tensor: "blk.0.attn_q.weight", typeID: type))
    }

    @Test func misalignedOffset() throws {
        let error = try TemporaryGGUF.openError(oneTensorFile(offset: 16, dataBytes: 1024))
        #expect(error == .misalignedTensor(path: pathOf(error), tensor: "blk.0.attn_q.weight", offset: 16, alignment: 32))
    }

    @Test func badTensorDescriptions() throws {
        func reason(_ bytes: [UInt8]) throws -> String? {
            let error = try TemporaryGGUF.openError(bytes)
            guard case .invalidTensorInfo(_, let tensor, let reason)? = error else { return "wrong error: \(String(describing: error))" }
            #expect(tensor == "blk.0.attn_q.weight")
            return reason
        }
        #expect(try reason(oneTensorFile(dimensions: [64, 2, 1, 1, 1]))?.contains("5 dimensions") == true)
        #expect(try reason(oneTensorFile(dimensions: [1 << 62, 1 << 62]))?.contains("overflow") == true)
        #expect(try reason(oneTensorFile(dimensions: [UInt64.max]))?.contains("too large") == true)
        // Q8_0 rows must be whole blocks of 32.
        #expect(try reason(oneTensorFile(type: 8, dimensions: [48, 2]))?.contains("block") == true)
        // Element count fits but the byte size does not.
        #expect(try reason(oneTensorFile(dimensions: [1 << 62]))?.contains("byte size") == true)
    }

    @Test func garbageCountsAndLengths() throws {
        // Metadata count far beyond the file.
        var b = GGUFBuilder()
        b.header(tensors: 0, metadata: UInt64.max)
        #expect({ if case .truncated? = $0 { true } else { false } }(try TemporaryGGUF.openError(b.bytes)))
        // Tensor count far beyond the file.
        b = GGUFBuilder()
        b.header(tensors: 1 << 60, metadata: 0)
        #expect({ if case .truncated? = $0 { true } else { false } }(try TemporaryGGUF.openError(b.bytes)))
        // Key length and string value length beyond the file.
        b = GGUFBuilder()
        b.header(tensors: 0, metadata: 1)
        b.u64(UInt64.max)
        #expect({ if case .truncated? = $0 { true } else { false } }(try TemporaryGGUF.openError(b.bytes)))
        let longString = oneTensorFile { kv in kv.string("k"); kv.u32(8); kv.u64(1 << 50); return 1 }
        #expect({ if case .truncated? = $0 { true } else { false } }(try TemporaryGGUF.openError(longString)))
        // Array count beyond the file.
        let longArray = oneTensorFile { kv in kv.string("k"); kv.u32(9); kv.u32(10); kv.u64(UInt64.max / 2); return 1 }
        #expect({ if case .truncated? = $0 { true } else { false } }(try TemporaryGGUF.openError(longArray)))
        // Tensor name length beyond the file.
        b = GGUFBuilder()
        b.header(tensors: 1, metadata: 0)
        b.u64(1 << 40); b.bytes += [UInt8](repeating: 0, count: 40)
        #expect({ if case .truncated? = $0 { true } else { false } }(try TemporaryGGUF.openError(b.bytes)))
    }

    @Test func badMetadata() throws {
        func error(_ metadata: @escaping (inout GGUFBuilder) -> UInt64) throws -> GGUFError? {
            try TemporaryGGUF.openError(oneTensorFile(metadata: metadata))
        }
        let unknownType = try error { kv in kv.string("k"); kv.u32(13); kv.u8(0); return 1 }
        #expect(unknownType == .invalidMetadata(path: pathOf(unknownType), key: "k", reason: "unknown value type id 13"))
        let unknownElement = try error { kv in kv.string("arr"); kv.u32(9); kv.u32(99); kv.u64(1); return 1 }
        #expect({ if case .invalidMetadata(_, "arr", _)? = unknownElement { true } else { false } }())
        let duplicate = try error { kv in
            kv.string("same"); kv.u32(4); kv.u32(1)
            kv.string("same"); kv.u32(4); kv.u32(2)
            return 2
        }
        #expect({ if case .duplicateKey(_, "same")? = duplicate { true } else { false } }())
        // Arrays nested deeper than the limit.
        let deep = try error { kv in
            kv.string("deep")
            kv.u32(9)
            for _ in 0..<20 { kv.u32(9); kv.u64(1) }
            kv.u32(4); kv.u64(0)
            return 1
        }
        #expect({ if case .invalidMetadata(_, "deep", _)? = deep { true } else { false } }())
        // general.alignment must be a UINT32 power of two.
        let notPowerOfTwo = try error { kv in kv.string("general.alignment"); kv.u32(4); kv.u32(48); return 1 }
        #expect({ if case .invalidMetadata(_, "general.alignment", _)? = notPowerOfTwo { true } else { false } }())
        let zero = try error { kv in kv.string("general.alignment"); kv.u32(4); kv.u32(0); return 1 }
        #expect({ if case .invalidMetadata(_, "general.alignment", _)? = zero { true } else { false } }())
        let wrongType = try error { kv in kv.string("general.alignment"); kv.u32(10); kv.u64(32); return 1 }
        #expect({ if case .invalidMetadata(_, "general.alignment", _)? = wrongType { true } else { false } }())
    }

    @Test func duplicateTensorNames() throws {
        var b = GGUFBuilder()
        b.header(tensors: 2, metadata: 0)
        b.tensorInfo("w", dimensions: [8], type: 0, offset: 0)
        b.tensorInfo("w", dimensions: [8], type: 0, offset: 32)
        b.padData(alignment: 32, bytes: 64)
        #expect({ if case .duplicateTensor(_, "w")? = $0 { true } else { false } }(try TemporaryGGUF.openError(b.bytes)))
    }

    /// Random corruptions of headers never crash: a byte, a bit, or a random 64-bit value
    /// (counts, lengths, offsets) at random places; the file opens or throws, and whatever
    /// opens can be dequantised and located without trapping. (A heavier run of this,
    /// 18,000 corruptions of three fixtures in release mode, found nothing either.)
    @Test(arguments: ["metadata.gguf", "tiny-mixtral-hf.gguf"])
    func randomCorruptionNeverCrashes(_ name: String) throws {
        let original = try Array(Data(contentsOf: GGUFFixtures.directory.appendingPathComponent(name)))
        let headerEnd = try GGUFFixtures.open(name).dataOffset
        let url = URL(fileURLWithPath: try TemporaryGGUF.write(original))
        defer { try? FileManager.default.removeItem(at: url) }
        var generator = SplitMix64(seed: 42)
        var opened = 0
        for _ in 0..<200 {
            var bytes = original
            for _ in 0 ..< 1 + Int(generator.next() % 3) {
                let position = Int(generator.next() % UInt64(headerEnd))
                switch generator.next() % 3 {
                case 0:
                    bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 1:
                    bytes[position] ^= 1 << UInt8(generator.next() % 8)
                default:
                    let value = generator.next() >> (generator.next() % 64)
                    for k in 0..<8 where position + k < bytes.count {
                        bytes[position + k] = UInt8(truncatingIfNeeded: value >> UInt64(8 * k))
                    }
                }
            }
            try Data(bytes).write(to: url)
            do {
                let file = try GGUFFile(path: url.path)
                opened += 1
                for tensor in file.tensorNames { _ = try? file.floats(tensor) }
                if let h = try? GGUFLlamaHyperparameters(file: file) {
                    _ = try? file.llamaMatrixUndoingRoPEPermutation(hfName: "model.layers.0.self_attn.q_proj.weight", h)
                    _ = try? file.llamaMatrix(hfName: "model.layers.1.block_sparse_moe.experts.3.w2.weight", h)
                }
            } catch {
                #expect(!error.description.isEmpty)
            }
        }
        #expect(opened > 0 && opened < 200)
    }

    private func pathOf(_ error: GGUFError?) -> String {
        guard let error else { return "" }
        switch error {
        case .cannotOpen(let p, _), .writeFailed(let p, _), .badMagic(let p), .unsupportedVersion(let p, _), .truncated(let p, _),
             .invalidMetadata(let p, _, _), .duplicateKey(let p, _), .invalidTensorInfo(let p, _, _),
             .duplicateTensor(let p, _), .unknownTensorType(let p, _, _), .unsupportedTensorType(let p, _, _),
             .misalignedTensor(let p, _, _, _), .tensorDataOutOfBounds(let p, _, _, _, _), .tensorNotFound(let p, _),
             .unexpectedShape(let p, _, _, _), .missingKey(let p, _), .typeMismatch(let p, _, _, _):
            return p
        }
    }
}

struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The hostile-input issue's GGUF reproducers: typed errors with short, escaped messages.
extension GGUFErrorTests {
    @Test func oversizedKeysAndNamesAreRefusedWithShortMessages() throws {
        let longKey = String(repeating: "k", count: 70_000)
        let keyError = try #require(try TemporaryGGUF.openError(oneTensorFile { kv in kv.kv(longKey, u32: 1); return 1 }))
        guard case .invalidMetadata = keyError else { Issue.record("\(keyError)"); return }
        #expect(keyError.description.count < 1_000)

        var b = GGUFBuilder()
        b.header(tensors: 1, metadata: 0)
        b.tensorInfo(String(repeating: "n", count: 64), dimensions: [64], type: 0, offset: 0)
        b.padData(alignment: 32, bytes: 256)
        let nameError = try TemporaryGGUF.openError(b.bytes)
        guard case .invalidTensorInfo? = nameError else { Issue.record("\(String(describing: nameError))"); return }
    }

    @Test func terminalEscapesFromTheFileAreEscapedInMessages() throws {
        let error = try #require(try TemporaryGGUF.openError(oneTensorFile { kv in
            kv.string("\u{1B}]0;owned\u{07}\u{1B}[2J"); kv.u32(99); return 1
        }))
        #expect(!error.description.contains("\u{1B}"))
        #expect(error.description.contains("\\u{1b}"))
    }

    /// Llama metadata over the one-tensor file (blk.0 only).
    private func llamaFile(_ extra: (inout GGUFBuilder) -> UInt64) -> [UInt8] {
        oneTensorFile { kv in
            kv.kv("general.architecture", string: "llama")
            kv.kv("llama.embedding_length", u32: 64)
            return 2 + extra(&kv)
        }
    }

    private func hyperparameterError(_ bytes: [UInt8]) throws -> GGUFError? {
        let path = try TemporaryGGUF.write(bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try GGUFLlamaHyperparameters(file: try GGUFFile(path: path))
            return nil
        } catch {
            return error
        }
    }

    @Test func aBlockCountBeyondTheTensorsIsRefused() throws {
        for count: UInt32 in [2, 2_147_483_648, 4_294_967_295] {
            let error = try hyperparameterError(llamaFile { kv in kv.kv("llama.block_count", u32: count); return 1 })
            guard case .invalidMetadata(_, "llama.block_count", _)? = error else { Issue.record("\(count): \(String(describing: error))"); continue }
        }
    }

    @Test func floatKeysStoredAsIntegersAreTypeErrors() throws {
        let error = try hyperparameterError(llamaFile { kv in
            kv.kv("llama.block_count", u32: 1)
            kv.kv("llama.attention.head_count", u32: 1)
            kv.kv("llama.attention.layer_norm_rms_epsilon", u32: 1)
            return 3
        })
        guard case .typeMismatch(_, "llama.attention.layer_norm_rms_epsilon", _, _)? = error else {
            Issue.record("\(String(describing: error))"); return
        }
    }

    @Test func tokenizerKeysOfTheWrongTypeAreErrorsNotDefaults() throws {
        let path = try TemporaryGGUF.write(oneTensorFile { kv in
            kv.kv("tokenizer.ggml.model", string: "llama")
            kv.kv("tokenizer.ggml.tokens", strings: ["<unk>", "<s>", "</s>", "a"])
            kv.kv("tokenizer.ggml.add_bos_token", string: "yes")
            return 3
        })
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try GGUFFile(path: path)
        #expect {
            _ = try file.loadTokenizer()
        } throws: { error in
            guard case .typeMismatch(_, "tokenizer.ggml.add_bos_token", _, _)? = error as? GGUFError else { return false }
            return true
        }
    }
}
