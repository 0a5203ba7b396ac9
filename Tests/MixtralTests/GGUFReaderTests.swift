import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

@Suite("GGUF reader")
struct GGUFReaderTests {
    /// metadata.gguf was written by gguf.GGUFWriter with these exact values.
    @Test func readsEveryMetadataValueType() throws {
        let file = try GGUFFixtures.open("metadata.gguf")
        #expect(file.version == 3)
        #expect(file.alignment == 64)
        let m = file.metadata
        #expect(m["general.architecture"] == .string("llama"))
        #expect(m["general.alignment"] == .uint32(64))
        #expect(m["test.uint8"] == .uint8(200))
        #expect(m["test.int8"] == .int8(-100))
        #expect(m["test.uint16"] == .uint16(60000))
        #expect(m["test.int16"] == .int16(-30000))
        #expect(m["test.uint32"] == .uint32(4_000_000_000))
        #expect(m["test.int32"] == .int32(-2_000_000_000))
        #expect(m["test.uint64"] == .uint64(18_000_000_000_000_000_000))
        #expect(m["test.int64"] == .int64(-9_000_000_000_000_000_000))
        #expect(m["test.float32"] == .float32(0.1))
        #expect(m["test.float64"] == .float64(0.1))
        #expect(m["test.bool"] == .bool(true))
        #expect(m["test.string"] == .string("h\u{e9}llo \u{2713} GGUF"))
        #expect(m["test.array.int32"] == .array(elementType: .int32, values: [.int32(1), .int32(-2), .int32(3)]))
        #expect(m["test.array.uint8"] == .array(elementType: .uint8, values: [.uint8(0), .uint8(255)]))
        #expect(m["test.array.bool"] == .array(elementType: .bool, values: [.bool(true), .bool(false)]))
        #expect(m["test.array.nested"] == .array(elementType: .array, values: [
            .array(elementType: .int32, values: [.int32(1), .int32(2)]),
            .array(elementType: .int32, values: [.int32(3)]),
            .array(elementType: .int32, values: [.int32(4), .int32(5), .int32(6)]),
        ]))
        #expect(m["test.array.nested_strings"]?.arrayValue?.map { $0.stringArray } == [["x"], ["y", "z"]])

        // Typed accessors.
        #expect(try file.string("test.string") == "h\u{e9}llo \u{2713} GGUF")
        #expect(try file.int("test.uint8") == 200)
        #expect(try file.int("test.int64") == -9_000_000_000_000_000_000)
        #expect(try file.float("test.float32") == 0.1)
        // As llama.cpp's gguf_get_val_f32: an integer under a float key is a broken file.
        #expect(throws: GGUFError.self) { try file.float("test.uint16") }
        #expect(try file.bool("test.bool"))
        #expect(try file.stringArray("test.array.string") == ["a", "bc", "\u{2713}"])
        #expect(try file.intArray("test.array.int32") == [1, -2, 3])
        #expect(try file.floatArray("test.array.float32") == [0.5, -1.25])
        #expect(file.metadataKeys.first == "general.architecture")
    }

    @Test func typedAccessorsGiveTypedErrors() throws {
        let file = try GGUFFixtures.open("metadata.gguf")
        #expect(throws: GGUFError.missingKey(path: file.path, key: "no.such.key")) { try file.int("no.such.key") }
        #expect(throws: GGUFError.typeMismatch(path: file.path, key: "test.string", expected: "an integer", found: "STRING")) {
            try file.int("test.string")
        }
        #expect(throws: GGUFError.self) { try file.stringArray("test.array.int32") }
        // UINT64 above Int.max is not an Int.
        #expect(throws: GGUFError.self) { try file.int("test.uint64") }
        #expect(throws: GGUFError.tensorNotFound(path: file.path, tensor: "nope")) { try file.matrix("nope") }
    }

    /// Tensors are found at aligned offsets after the padding (alignment 64 here).
    @Test func readsTensorsAtTheCustomAlignment() throws {
        let file = try GGUFFixtures.open("metadata.gguf")
        #expect(file.dataOffset % 64 == 0)
        let vector = try file.tensorInfo("vector")
        #expect(vector.dimensions == [3])
        #expect(vector.type.name == "F32")
        #expect(vector.offset == 0)
        let matrix = try file.tensorInfo("matrix")
        #expect(matrix.dimensions == [5, 2])
        #expect(matrix.shape == [2, 5])
        #expect(matrix.offset == 64)
        #expect(matrix.fileOffset == file.dataOffset + 64)
        #expect(try file.floats("vector") == [1, -2, 3.5])
        #expect(try file.floats("matrix") == (0..<10).map(Float.init))
        let weights = try file.matrix("matrix")
        #expect(weights.rows == 2 && weights.columns == 5 && weights.type == .f32)
        #expect(try file.data("matrix").count == 40)
    }

    /// The file made by llama.cpp's llama-quantize: model metadata and tensor layout.
    @Test func readsTheLlamaQuantizeFile() throws {
        let file = try GGUFFixtures.open("tiny-mixtral-mixed.gguf")
        #expect(file.version == 3)
        #expect(file.alignment == 32)
        #expect(try file.string("general.architecture") == "llama")
        #expect(try file.int("llama.expert_count") == 2)
        #expect(try file.int("llama.embedding_length") == 256)
        #expect(try file.float("llama.rope.freq_base") == 1e6)
        #expect(try file.stringArray("tokenizer.ggml.tokens").count == 32)
        #expect(try file.stringArray("tokenizer.ggml.tokens")[5] == "<t5>")
        let down = try file.tensorInfo("blk.0.ffn_down_exps.weight")
        #expect(down.dimensions == [32, 256, 2])
        #expect(down.type.weightType == .q8_0)
        #expect(down.byteCount == 2 * 256 * 34)
        let matrix = try file.matrix("blk.0.ffn_down_exps.weight")
        #expect(matrix.rows == 512 && matrix.columns == 32 && matrix.rowBytes == 34)
        #expect(try file.tensorInfo("token_embd.weight").type.name == "Q4_K")
        for name in file.tensorNames {
            let info = try file.tensorInfo(name)
            #expect(info.offset % 32 == 0)
            #expect(info.fileOffset + info.byteCount <= file.fileSize)
        }
    }

    /// Version 2 files have the same layout for little-endian data.
    @Test func readsVersion2() throws {
        var bytes = try Array(Data(contentsOf: GGUFFixtures.directory.appendingPathComponent("metadata.gguf")))
        bytes[4] = 2
        let file = try GGUFFile(path: try TemporaryGGUF.write(bytes))
        #expect(file.version == 2)
        #expect(try file.floats("vector") == [1, -2, 3.5])
    }

    @Test func readsEmptyArraysAndFilesWithoutTensors() throws {
        var b = GGUFBuilder()
        b.header(tensors: 0, metadata: 2)
        b.string("empty"); b.u32(9); b.u32(8); b.u64(0)
        b.string("deep"); b.u32(9); b.u32(9); b.u64(1); b.u32(4); b.u64(1); b.u32(7)
        let file = try GGUFFile(path: try TemporaryGGUF.write(b.bytes))
        #expect(file.metadata["empty"] == .array(elementType: .string, values: []))
        #expect(file.metadata["deep"] == .array(elementType: .array, values: [.array(elementType: .uint32, values: [.uint32(7)])]))
        #expect(file.tensors.isEmpty)
        #expect(file.dataOffset == b.bytes.count)
    }

    /// Empty tensors open (GGUF allows them) but give no matrices: their other dimensions
    /// are not bounded by the file, so a corrupt one could ask for absurd allocations.
    @Test func emptyTensorsGiveNoMatrices() throws {
        var b = GGUFBuilder()
        b.header(tensors: 1, metadata: 0)
        b.tensorInfo("empty", dimensions: [0, 1 << 40, 1 << 20], type: 0, offset: 0)
        b.padData(alignment: 32, bytes: 0)
        let path = try TemporaryGGUF.write(b.bytes)
        let file = try GGUFFile(path: path)
        #expect(try file.floats("empty") == [])
        #expect(throws: GGUFError.self) { try file.matrix("empty") }
        #expect(throws: GGUFError.self) { try file.matrices("empty") }
    }

    /// Tensors of ggml types the engine cannot compute with still open; using them fails.
    @Test func unsupportedButKnownTypeOpensAndFailsOnUse() throws {
        var b = GGUFBuilder()
        b.header(tensors: 1, metadata: 0)
        b.tensorInfo("q2k", dimensions: [256, 2], type: 10, offset: 0)  // Q2_K: 84 bytes a block
        b.padData(alignment: 32, bytes: 2 * 84)
        let path = try TemporaryGGUF.write(b.bytes)
        let file = try GGUFFile(path: path)
        #expect(try file.tensorInfo("q2k").type.name == "Q2_K")
        #expect(try file.tensorInfo("q2k").byteCount == 168)
        #expect(throws: GGUFError.unsupportedTensorType(path: path, tensor: "q2k", type: "Q2_K")) { try file.matrix("q2k") }
    }
}
