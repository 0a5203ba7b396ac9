import Foundation
import Testing
@testable import Mixtral

/// Expert streaming (`--ram-budget`): experts read from the file into a pool of slots must
/// give the resident model's logits bit for bit, at every budget, in prefill and decode,
/// for MoE and dense models, safetensors and GGUF (stacked, per-expert and split).
@Suite("Expert streaming")
struct ExpertStreamingTests {
    static let models: [String] = [
        Fixtures.parity("mixtral-gqa"), Fixtures.parity("mixtral-sharded"), Fixtures.parity("mixtral-bf16"),
        Fixtures.parity("mistral-dense"), Fixtures.parity("llama-tied"),
        Fixtures.root + "/gguf/tiny-mixtral-hf-q4_0.gguf", Fixtures.root + "/gguf/tiny-mixtral-hf-q8_0.gguf",
        Fixtures.root + "/gguf/tiny-mixtral-hf-q4_0-split-00001-of-00003.gguf",
    ]

    /// The logits of a prefill (every position) and of greedy decode steps after it, and
    /// the greedy tokens.
    static func run(_ model: LanguageModel, prompt: [Int], steps: Int) throws -> (logits: [[Float]], tokens: [Int]) {
        let cache = model.makeCache(maxPositions: prompt.count + steps + 1)
        var logits = [try model.forward(prompt, cache: cache, allLogits: true)]
        var tokens: [Int] = []
        for _ in 0..<steps {
            let last = logits.last!.suffix(model.config.vocabSize)
            let next = last.indices.max { last[$0] < last[$1] }! - last.startIndex
            tokens.append(next)
            logits.append(try model.forward([next], cache: cache))
        }
        return (logits, tokens)
    }

    static func load(_ path: String, streaming: ExpertStreamingOptions?, precision: PrecisionChoice = .auto) throws -> LanguageModel {
        try ModelBundle.load(path: path, threads: 2, residency: .memory, precision: precision, streaming: streaming).model
    }

    static func bits(_ logits: [[Float]]) -> [[UInt32]] { logits.map { $0.map(\.bitPattern) } }

    @Test(arguments: models)
    func logitsAreBitIdenticalAtEveryBudget(_ path: String) throws {
        let resident = try Self.load(path, streaming: nil)
        let c = resident.config
        let prompt = (0..<11).map { ($0 * 7919 + 3) % c.vocabSize }
        let expected = try Self.run(resident, prompt: prompt, steps: 6)
        // Sizes come from a streamer that holds everything.
        let probe = try Self.load(path, streaming: ExpertStreamingOptions(ramBudget: 1 << 40))
        let stats = try #require(probe.expertStreamingStats)
        let experts = c.numLayers * (c.isMoE ? c.numExperts : 1)
        #expect(stats.slots == experts)
        for slots in Set([1, c.numLayers, experts / 2, experts]) {
            for policy in ExpertCachePolicy.allCases {
                let options = ExpertStreamingOptions(ramBudget: stats.denseBytes + slots * stats.slotBytes, policy: policy,
                                                     ioThreads: 3, prefetch: slots != c.numLayers)
                let streamed = try Self.load(path, streaming: options)
                #expect(streamed.expertStreamingStats?.slots == slots)
                let got = try Self.run(streamed, prompt: prompt, steps: 6)
                #expect(got.tokens == expected.tokens, "\(path): \(slots) slots, \(policy)")
                #expect(Self.bits(got.logits) == Self.bits(expected.logits), "\(path): \(slots) slots, \(policy)")
                let used = try #require(streamed.expertStreamingStats)
                #expect(used.hits + used.prefetchHits + used.misses == used.uses)
                if slots < experts { #expect(used.bytesRead > 0) }
            }
        }
    }

    /// The exact (fp32 activation) path and batched steps, as the server runs them.
    @Test func exactPrecisionAndBatchedSteps() throws {
        let path = Fixtures.parity("mixtral-gqa")
        let resident = try Self.load(path, streaming: nil, precision: .exact)
        let probe = try Self.load(path, streaming: ExpertStreamingOptions(ramBudget: 1 << 40), precision: .exact)
        let stats = try #require(probe.expertStreamingStats)
        let streamed = try Self.load(path, streaming: ExpertStreamingOptions(ramBudget: stats.denseBytes + 3 * stats.slotBytes),
                                     precision: .exact)
        func batch(_ model: LanguageModel) throws -> [[Float]?] {
            let a = model.makeCache(maxPositions: 64), b = model.makeCache(maxPositions: 64)
            _ = try model.forward(batch: [BatchEntry(tokens: [1, 5, 9, 13], cache: a), BatchEntry(tokens: [2, 4], cache: b)])
            return try model.forward(batch: [BatchEntry(tokens: [17], cache: a), BatchEntry(tokens: [21], cache: b)])
        }
        #expect(try batch(streamed).map { $0?.map(\.bitPattern) } == batch(resident).map { $0?.map(\.bitPattern) })
        #expect(try Self.bits(Self.run(streamed, prompt: [1, 2, 3, 4, 5], steps: 4).logits)
                == Self.bits(Self.run(resident, prompt: [1, 2, 3, 4, 5], steps: 4).logits))
    }

    /// A prefill chunk runs each expert once for all the tokens routed to it, so it reads
    /// each expert at most once, however small the pool.
    @Test func prefillReadsEachExpertOncePerChunk() throws {
        let path = Fixtures.parity("mixtral-gqa")
        let probe = try Self.load(path, streaming: ExpertStreamingOptions(ramBudget: 1 << 40))
        let sizes = try #require(probe.expertStreamingStats)
        let streamed = try Self.load(path, streaming: ExpertStreamingOptions(ramBudget: sizes.denseBytes + 2 * sizes.slotBytes,
                                                                              prefetch: false))
        let c = streamed.config
        _ = try streamed.forward(Array(1...40), cache: streamed.makeCache(maxPositions: 64))
        let stats = try #require(streamed.expertStreamingStats)
        #expect(stats.uses > c.numLayers * c.numExpertsPerToken)  // 40 tokens spread over the experts
        #expect(stats.uses <= c.numLayers * c.numExperts)
        #expect(stats.misses == stats.uses)
        #expect(stats.bytesRead <= stats.uses * sizes.slotBytes)
    }

    @Test func budgetsThatCannotWorkAreTypedErrors() throws {
        let path = Fixtures.parity("mixtral-gqa")
        let probe = try Self.load(path, streaming: ExpertStreamingOptions(ramBudget: 1 << 40))
        let stats = try #require(probe.expertStreamingStats)
        let tooSmall = ExpertStreamingOptions(ramBudget: stats.denseBytes + stats.slotBytes - 1)
        #expect {
            try Self.load(path, streaming: tooSmall)
        } throws: { error in
            guard case .streamingUnavailable(let reason) = error as? CheckpointError else { return false }
            return reason.contains("does not hold the dense weights")
        }
        // --quantize makes the experts in memory: nothing to read from the file.
        #expect(throws: CheckpointError.self) {
            try ModelBundle.load(path: path, quantize: .q8_0, streaming: ExpertStreamingOptions(ramBudget: 1 << 40))
        }
    }

    /// Automatic streaming compares the weight files with memory: a split GGUF counts all
    /// its parts, a folder its safetensors shards.
    @Test func weightFileBytesCountEveryPart() throws {
        let split = Fixtures.root + "/gguf/tiny-mixtral-hf-q4_0-split-00001-of-00003.gguf"
        let parts = GGUFFile.partPaths(prefix: String(split.dropLast("-00001-of-00003.gguf".count)), count: 3)
        let sizes = try parts.map { try #require(FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) }
        #expect(ModelBundle.weightFileBytes(path: split) == sizes.reduce(0, +))
        let sharded = Fixtures.parity("mixtral-sharded")
        let shards = try FileManager.default.contentsOfDirectory(atPath: sharded).filter { $0.hasSuffix(".safetensors") }
        #expect(shards.count == 4)
        #expect(ModelBundle.weightFileBytes(path: sharded)
                == shards.reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: sharded + "/" + $1)[.size] as? Int) ?? 0) })
    }

    @Test func sizesParse() {
        #expect(ExpertStreamingOptions.parseSize("12G") == 12 << 30)
        #expect(ExpertStreamingOptions.parseSize("12GiB") == 12 << 30)
        #expect(ExpertStreamingOptions.parseSize("800m") == 800 << 20)
        #expect(ExpertStreamingOptions.parseSize("1.5G") == 3 << 29)
        #expect(ExpertStreamingOptions.parseSize("4096") == 4096)
        for bad in ["", "G", "-1G", "0", "1e30G", "twelve", "nan", "inf"] {
            #expect(ExpertStreamingOptions.parseSize(bad) == nil, "\(bad)")
        }
    }
}
