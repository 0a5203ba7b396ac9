import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

/// Tensor parallelism (`TensorParallel`) with N ranks as N threads of this process
/// (`LocalCommunicatorGroup`, which exchanges as MPICommunicator does): no dot product is
/// cut, so the logits are the single-process model's bit for bit, on every rank, under
/// exact and fast precision, and so are greedy and sampled tokens.
/// What the rank threads of a test return.
final class RankResults<T>: @unchecked Sendable {
    let lock = NSLock()
    var values: [Int: Result<T, any Error>] = [:]
}

@Suite struct TensorParallelTests {
    /// Fixtures and the rank counts their key/value heads allow (2 kv heads for the
    /// Mixtral fixtures, 4 for mistral-dense and llama-tied; 3 ranks split those unevenly,
    /// 1, 1 and 2 heads, and the vocabulary in shares of unequal size).
    static let cases: [(String, Int)] = [
        ("mixtral-gqa", 2), ("mixtral-sliding", 2), ("mixtral-bf16", 2),
        ("mistral-dense", 2), ("mistral-dense", 3), ("mistral-dense", 4), ("llama-tied", 2), ("llama-tied", 3), ("llama-tied", 4),
    ]

    /// `body(rank)` on `size` threads at once (collectives need every rank running, so
    /// not a pool that may run fewer at a time); results in rank order.
    static func onRanks<T: Sendable>(_ size: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        let results = RankResults<T>()
        let done = DispatchSemaphore(value: 0)
        for rank in 0..<size {
            let thread = Thread {
                let result = Result { try body(rank) }
                results.lock.lock()
                results.values[rank] = result
                results.lock.unlock()
                done.signal()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        for _ in 0..<size { done.wait() }
        return try (0..<size).map { rank throws -> T in
            guard let result = results.values[rank] else { throw CheckpointError.fileNotFound("rank \(rank)") }
            return try result.get()
        }
    }

    static func model(_ name: String, communicator: any Communicator = SingleProcessCommunicator(),
                      threads: Int = 1) throws -> LanguageModel {
        let folder = Fixtures.parity(name)
        return try LanguageModel(config: ModelConfig.load(path: folder + "/config.json"), store: SafeTensorsCheckpoint(folder: folder),
                                 pool: ComputePool(threadCount: threads), communicator: communicator)
    }

    @Test(arguments: cases)
    func logitsMatchOneProcess(_ name: String, _ size: Int) throws {
        let prompt = try Fixtures.reference(name).prompt_ids
        let single = try Self.model(name).forward(prompt, cache: Self.model(name).makeCache(), allLogits: true)
        let group = LocalCommunicatorGroup(size: size)
        let perRank = try Self.onRanks(size) { rank in
            let model = try Self.model(name, communicator: group.communicator(rank: rank))
            let cache = model.makeCache()
            // The prompt in one pass, then two more tokens one step at a time (the decode path).
            var logits = try model.forward(prompt, cache: cache, allLogits: true)
            logits += try model.forward([prompt[0]], cache: cache, allLogits: true)
            logits += try model.forward([prompt[1]], cache: cache, allLogits: true)
            return logits
        }
        let reference = try Self.model(name)
        let cache = reference.makeCache()
        var expected = try reference.forward(prompt, cache: cache, allLogits: true)
        #expect(Array(expected) == single)
        expected += try reference.forward([prompt[0]], cache: cache, allLogits: true)
        expected += try reference.forward([prompt[1]], cache: cache, allLogits: true)
        for (rank, logits) in perRank.enumerated() {
            let worst = zip(logits, expected).map { abs($0 - $1) }.max() ?? .infinity
            let first = zip(logits, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1
            #expect(worst == 0, "\(name) over \(size) ranks: rank \(rank) max difference \(worst), first at \(first) of \(logits.count)")
        }
    }

    @Test(arguments: cases)
    func greedyTokensMatchOneProcess(_ name: String, _ size: Int) throws {
        let reference = try Fixtures.reference(name)
        var options = try GenerationOptions.defaults(folder: Fixtures.parity(name), config: Self.model(name).config)
        options.maxNewTokens = 24
        options.eosTokenIDs = []
        options.doSample = false
        let expected = try Self.model(name).generate(prompt: reference.prompt_ids, options: options).generatedIDs
        let fixed = options
        let group = LocalCommunicatorGroup(size: size)
        let perRank = try Self.onRanks(size) { rank in
            try Self.model(name, communicator: group.communicator(rank: rank))
                .generate(prompt: reference.prompt_ids, options: fixed).generatedIDs
        }
        for ids in perRank { #expect(ids == expected, "\(name) over \(size) ranks") }
    }

    /// Seeded sampling: rank 0's seed and tokens are every rank's.
    @Test func sampledTokensMatchOneProcess() throws {
        let name = "mixtral-gqa"
        let prompt = try Fixtures.reference(name).prompt_ids
        var options = GenerationOptions()
        options.maxNewTokens = 16
        options.doSample = true
        options.temperature = 1.5
        options.seed = 1234
        let expected = try Self.model(name).generate(prompt: prompt, options: options).generatedIDs
        let fixed = options
        let group = LocalCommunicatorGroup(size: 2)
        let perRank = try Self.onRanks(2) { rank in
            var local = fixed
            if rank != 0 { local.seed = nil }  // rank 0's seed wins
            return try Self.model(name, communicator: group.communicator(rank: rank))
                .generate(prompt: prompt, options: local).generatedIDs
        }
        for ids in perRank { #expect(ids == expected) }
    }

    /// The batched path (the server's) exchanges too.
    @Test func batchedForwardMatchesOneProcess() throws {
        let name = "mistral-dense"
        let prompt = try Fixtures.reference(name).prompt_ids
        let reference = try Self.model(name)
        let expected = try reference.forward(batch: [BatchEntry(tokens: prompt, cache: reference.makeCache()),
                                                     BatchEntry(tokens: [prompt[0]], cache: reference.makeCache())])
        let group = LocalCommunicatorGroup(size: 2)
        let perRank = try Self.onRanks(2) { rank in
            let model = try Self.model(name, communicator: group.communicator(rank: rank))
            return try model.forward(batch: [BatchEntry(tokens: prompt, cache: model.makeCache()),
                                             BatchEntry(tokens: [prompt[0]], cache: model.makeCache())])
        }
        for result in perRank {
            #expect(result.count == expected.count)
            for (got, want) in zip(result, expected) { #expect(try #require(got) == (try #require(want))) }
        }
    }

    @Test func eachRankHoldsItsShare() throws {
        let group = LocalCommunicatorGroup(size: 2)
        let shapes = try Self.onRanks(2) { rank in
            let model = try Self.model("mixtral-gqa", communicator: group.communicator(rank: rank))
            let layer = model.weights.layers[0]
            guard case .sparseMoE(let router, let experts) = layer.mlp else { return [Int]() }
            // Every slice is the rank's own copy, none points into the mapped file.
            let matrices = [model.weights.embedTokens, model.weights.lmHead, router, layer.attention.q, layer.attention.o,
                            experts[0].gate, experts[0].down]
            let inFile = matrices.filter { model.store.fileLocation(of: $0.base) != nil }.count
            return [model.config.numHeads, model.config.numKeyValueHeads, layer.attention.q.rows, layer.attention.k.rows,
                    layer.attention.o.rows, layer.attention.o.columns, router.rows, experts[0].gate.rows, experts[0].down.rows,
                    experts[0].down.columns, model.fullConfig.numHeads, model.weights.lmHead.rows, model.weights.embedTokens.rows, inFile]
        }
        // 4 heads of 16, 2 kv heads, intermediate 96, 4 experts, hidden 64, vocabulary 320:
        // o_proj and down keep whole rows (every head, every intermediate column).
        #expect(shapes == [[2, 1, 32, 16, 32, 64, 4, 48, 32, 96, 4, 160, 160, 0], [2, 1, 32, 16, 32, 64, 4, 48, 32, 96, 4, 160, 160, 0]])
        #expect(TensorParallel.range(10, rank: 1, size: 3) == 3..<6)
        #expect(TensorParallel.range(10, rank: 2, size: 3) == 6..<10)
    }

    /// Under fast precision (8-bit activations with integer dot products, where any change in
    /// a sum's order moves whole quantisation steps) on quantised weights, over 2, 3 and 4
    /// ranks (3: shares of 21, 21 and 22 hidden rows, which cut the 32-weight blocks of the
    /// activations' quantisation; nothing is quantised per rank).
    @Test(arguments: [(WeightType.q8_0, "mixtral-gqa", 2), (.q4_0, "mistral-dense", 3), (.q8_0, "mistral-dense", 4)])
    func fastPrecisionIsBitIdentical(_ type: WeightType, _ name: String, _ size: Int) throws {
        let folder = Fixtures.parity(name)
        @Sendable func model(_ communicator: any Communicator) throws -> LanguageModel {
            let pool = ComputePool(threadCount: 1)
            return try LanguageModel(config: ModelConfig.load(path: folder + "/config.json"),
                                     store: QuantizingWeightStore(base: SafeTensorsCheckpoint(folder: folder), type: type, pool: pool),
                                     pool: pool, precision: .fast, communicator: communicator)
        }
        let prompt = try Fixtures.reference(name).prompt_ids
        @Sendable func run(_ model: LanguageModel) throws -> [Float] {
            let cache = model.makeCache()
            var logits = try model.forward(prompt, cache: cache, allLogits: true)
            logits += try model.forward([prompt[0]], cache: cache)
            return logits
        }
        let expected = try run(model(SingleProcessCommunicator()))
        let group = LocalCommunicatorGroup(size: size)
        let perRank = try Self.onRanks(size) { rank in try run(model(group.communicator(rank: rank))) }
        for logits in perRank { #expect(logits == expected, "\(type) over \(size) ranks") }
    }

    /// A split server: rank 0 announces each operation (`ReplicatedStep`) and the other ranks
    /// replay it (`RankFollower`), so batched steps, prefix copies and freed caches give
    /// rank 0 the single process's logits.
    @Test func followersReplayAnnouncedSteps() throws {
        let name = "mixtral-gqa"
        let prompt = try Fixtures.reference(name).prompt_ids
        @Sendable func run(_ model: LanguageModel) throws -> [Float] {
            let a = model.makeCache(maxPositions: 64), b = model.makeCache(maxPositions: 64)
            var logits: [Float] = []
            func forward(_ entries: [BatchEntry], live: [KVCache]) throws {
                model.announce(.forward(entries: entries.map {
                    .init(cache: $0.cache.id, maxPositions: $0.cache.maxPositions, tokens: $0.tokens, wantsLogits: $0.wantsLogits)
                }, live: live.map(\.id)))
                for result in try model.forward(batch: entries) { logits += result ?? [] }
            }
            try forward([BatchEntry(tokens: prompt, cache: a), BatchEntry(tokens: [prompt[0]], cache: b)], live: [a, b])
            try forward([BatchEntry(tokens: [prompt[1]], cache: a)], live: [a])  // b is freed
            let c = model.makeCache(maxPositions: 64)
            model.announce(.copyPrefix(target: .init(cache: c.id, maxPositions: 64), source: a.id, count: 3))
            #expect(c.copyPrefix(of: a, count: 3))
            try forward([BatchEntry(tokens: [prompt[2]], cache: c), BatchEntry(tokens: [prompt[3]], cache: a)], live: [a, c])
            model.announce(.stop)
            return logits
        }
        let expected = try run(Self.model(name))
        let group = LocalCommunicatorGroup(size: 2)
        let perRank = try Self.onRanks(2) { rank in
            let model = try Self.model(name, communicator: group.communicator(rank: rank))
            guard rank == 0 else {
                RankFollower(model: model).run()
                return [Float]()
            }
            return try run(model)
        }
        #expect(perRank[0] == expected)
    }

    /// Split and streamed: each rank reads its slices of the experts (three runs of rows)
    /// into a cache of two slots, and the logits are still the resident single process's.
    @Test(arguments: [("mixtral-gqa", 2), ("mistral-dense", 3)])
    func streamedSlicesMatchOneProcess(_ name: String, _ size: Int) throws {
        let folder = Fixtures.parity(name)
        let prompt = try Fixtures.reference(name).prompt_ids
        @Sendable func run(_ model: LanguageModel) throws -> [Float] {
            let cache = model.makeCache()
            var logits = try model.forward(prompt, cache: cache, allLogits: true)
            for token in prompt.prefix(3) { logits += try model.forward([token], cache: cache) }
            return logits
        }
        let expected = try run(Self.model(name))
        let group = LocalCommunicatorGroup(size: size)
        let perRank = try Self.onRanks(size) { rank in
            let communicator = group.communicator(rank: rank)
            @Sendable func load(_ budget: Int) throws -> LanguageModel {
                try LanguageModel(config: ModelConfig.load(path: folder + "/config.json"), store: SafeTensorsCheckpoint(folder: folder),
                                  pool: ComputePool(threadCount: 1), streaming: ExpertStreamingOptions(ramBudget: budget),
                                  communicator: communicator)
            }
            // The sizes of this rank's dense weights and slots, from a budget that holds all.
            let probe = try #require(try load(1 << 40).expertStreamingStats)
            let model = try load(probe.denseBytes + 2 * probe.slotBytes)
            let logits = try run(model)
            return (logits, model.expertStreamingStats?.slots ?? 0, model.expertStreamingStats?.misses ?? 0)
        }
        for (logits, slots, misses) in perRank {
            #expect(logits == expected, "\(name) over \(size) ranks, streamed")
            #expect(slots == 2)
            #expect(misses > 0)
        }
    }

    @Test func replicatedStepsRoundTrip() {
        let steps: [ReplicatedStep] = [
            .stop,
            .forward(entries: [.init(cache: 7, maxPositions: 512, tokens: [1, 2, 3], wantsLogits: false),
                               .init(cache: 9, maxPositions: 64, tokens: [4])], live: [7, 9, 11]),
            .copyPrefix(target: .init(cache: 12, maxPositions: 512), source: 11, count: 40),
        ]
        for step in steps { #expect(ReplicatedStep(encoded: step.encoded) == step) }
        #expect(ReplicatedStep(encoded: []) == nil)
        #expect(ReplicatedStep(encoded: [1, 5, 1]) == nil)  // 5 live caches announced, 1 given
        #expect(ReplicatedStep(encoded: [0, 0]) == nil)
    }

    @Test func refusesWhatDoesNotSplit() throws {
        // 2 key/value heads over 4 ranks.
        let group = LocalCommunicatorGroup(size: 4)
        #expect {
            _ = try Self.model("mixtral-gqa", communicator: group.communicator(rank: 0))
        } throws: { error in
            guard case .tensorParallelUnavailable(let reason) = error as? CheckpointError else { return false }
            return reason.contains("key/value heads")
        }
    }

    /// The group's sum is added in rank order, the same bits on every rank.
    @Test func localAllReduceAddsInRankOrder() throws {
        let group = LocalCommunicatorGroup(size: 3)
        let values: [[Float]] = [[1e8, 1, 0.5], [1, -1e8, 0.25], [-1e8, 1e8, 0.125]]
        let sums = try Self.onRanks(3) { rank in
            var mine = values[rank]
            mine.withUnsafeMutableBufferPointer { group.communicator(rank: rank).allReduceSum($0.baseAddress!, count: 3) }
            return mine
        }
        let expected: [Float] = [(values[0][0] + values[1][0]) + values[2][0], (values[0][1] + values[1][1]) + values[2][1], 0.875]
        for sum in sums { #expect(sum == expected) }
    }

    /// The group's all-gather sets the ranks' shares side by side, in rank order, whatever
    /// their sizes.
    @Test func localAllGatherSetsSharesSideBySide() throws {
        let group = LocalCommunicatorGroup(size: 3)
        let shares: [[Float]] = [[1, 2], [3], [4, 5, 6]]
        let gathered = try Self.onRanks(3) { rank in
            var all = [Float](repeating: 0, count: 6)
            shares[rank].withUnsafeBufferPointer { mine in
                all.withUnsafeMutableBufferPointer {
                    group.communicator(rank: rank).allGather(mine.baseAddress!, counts: [2, 1, 3], into: $0.baseAddress!)
                }
            }
            return all
        }
        for all in gathered { #expect(all == [1, 2, 3, 4, 5, 6]) }
    }
}
