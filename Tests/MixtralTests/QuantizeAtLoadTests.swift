import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

@Suite struct QuantizeAtLoadTests {
    /// A store whose quantised matrices are given back as fp32 after a round trip through
    /// the block format: the weights a quantised model computes with, in plain fp32.
    final class RoundTripStore: WeightStore, @unchecked Sendable {
        let quantized: QuantizingWeightStore
        var buffers: [UnsafeMutablePointer<Float>] = []
        init(_ quantized: QuantizingWeightStore) { self.quantized = quantized }
        deinit { buffers.forEach { $0.deallocate() } }
        var location: String { quantized.location }
        var tensorNames: [String] { quantized.tensorNames }
        func contains(_ name: String) -> Bool { quantized.contains(name) }
        func tensor(_ name: String) throws(CheckpointError) -> TensorView {
            let view = try quantized.tensor(name)
            guard view.type == quantized.type else { return view }
            let values = UnsafeMutablePointer<Float>.allocate(capacity: view.elementCount)
            dequantizeRow(view.type, view.data, values, count: view.elementCount)
            buffers.append(values)
            return TensorView(name: name, file: view.file, type: .f32, shape: view.shape, data: UnsafeRawPointer(values), owner: self)
        }
    }

    /// --quantize: the linear layers become the requested type, everything else stays, and
    /// the model computes exactly what fp32 arithmetic on the round-tripped weights gives.
    @Test(arguments: [WeightType.q8_0, .q4_0])  // the fixture's rows of 96 are whole blocks of 32 only
    func quantizedModelComputesWithTheQuantizedWeights(_ type: WeightType) throws {
        let folder = Fixtures.parity("mixtral-gqa")
        let prompt = try Fixtures.reference("mixtral-gqa").prompt_ids
        let config = try ModelConfig.load(path: folder + "/config.json")
        let pool = ComputePool(threadCount: 2)
        var reports = 0
        let store = try QuantizingWeightStore(base: try SafeTensorsCheckpoint(folder: folder), type: type, pool: pool) { _, _ in reports += 1 }
        let model = try LanguageModel(config: config, store: store, pool: pool)
        #expect(model.weights.layers[0].attention.q.type == type)
        #expect(model.weights.lmHead.type == .f32 && model.weights.embedTokens.type == .f32)
        if case .sparseMoE(let router, let experts) = model.weights.layers[1].mlp {
            #expect(router.type == .f32 && experts[3].down.type == type)
        }
        #expect(reports == 2 * (4 + 4 * 3))  // 2 layers x (q, k, v, o + 4 experts x 3)
        let logits = try model.forward(prompt, cache: model.makeCache(), allLogits: true)

        let roundTrip = RoundTripStore(try QuantizingWeightStore(base: try SafeTensorsCheckpoint(folder: folder), type: type, pool: pool))
        let reference = try LanguageModel(config: config, store: roundTrip, pool: pool)
        let expected = try reference.forward(prompt, cache: reference.makeCache(), allLogits: true)
        let scale = expected.map(abs).max() ?? 1
        #expect(zip(logits, expected).map { abs($0 - $1) }.max()! <= 1e-4 * scale)
    }

    /// `.auto` is resolved when the model is made: llama.cpp's arithmetic for quantised
    /// matrices, transformers' for float ones; explicit choices stay.
    @Test func precisionIsChosenOnceAtLoad() throws {
        let folder = Fixtures.parity("mixtral-gqa")
        let config = try ModelConfig.load(path: folder + "/config.json")
        let pool = ComputePool(threadCount: 1)
        let quantized = try QuantizingWeightStore(base: try SafeTensorsCheckpoint(folder: folder), type: .q8_0, pool: pool)
        #expect(try LanguageModel(config: config, store: quantized, pool: pool, precision: .auto).precision == .fast)
        #expect(try LanguageModel(config: config, store: quantized, pool: pool, precision: .exact).precision == .exact)
        #expect(try LanguageModel(folder: folder, threads: 1, precision: .auto).precision == .exact)
        #expect(try LanguageModel(folder: folder, threads: 1, precision: .fast).precision == .fast)
        #expect(try LanguageModel(folder: folder, threads: 1).precision == .exact)
    }

    /// NF4 at load gives the bytes NF4 quantisation gives (checked against bitsandbytes in
    /// NF4Tests); rows that are not whole blocks are refused with a typed error.
    @Test func nf4AtLoadAndPartialBlocks() throws {
        let base = try SafeTensorsCheckpoint(folder: Fixtures.parity("mixtral-gqa"))
        let store = try QuantizingWeightStore(base: base, type: .nf4, pool: ComputePool(threadCount: 1))
        let name = "model.layers.0.self_attn.q_proj.weight"  // [64, 64]
        let quantized = try store.tensor(name)
        #expect(quantized.type == .nf4 && quantized.shape == [64, 64])
        let source = try base.tensor(name)
        var row = [Float](repeating: 0, count: 64), expected = [UInt8](repeating: 0, count: 36)
        row.withUnsafeMutableBufferPointer { dequantizeRow(.f32, source.data + 5 * 256, $0.baseAddress!, count: 64) }
        try row.withUnsafeBufferPointer { r in try expected.withUnsafeMutableBytes { try quantizeRow(.nf4, r.baseAddress!, $0.baseAddress!, count: 64) } }
        #expect(Array(UnsafeRawBufferPointer(start: quantized.data + 5 * 36, count: 36)) == expected)
        #expect(throws: CheckpointError.self) { _ = try store.tensor("model.layers.0.block_sparse_moe.experts.0.w2.weight") }
        let q4k = try QuantizingWeightStore(base: base, type: .q4_K, pool: ComputePool(threadCount: 1))
        #expect(throws: CheckpointError.self) { _ = try q4k.tensor(name) }
        #expect(throws: CheckpointError.self) { _ = try QuantizingWeightStore(base: base, type: .q5_1, pool: ComputePool(threadCount: 1)) }
    }
}
