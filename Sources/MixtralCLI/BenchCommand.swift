import ArgumentParser
import Foundation
import Mixtral
import MixtralKernels
import MixtralMPI

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Prompt processing (pp) and generation (tg) throughput, measured as llama-bench does.",
        discussion: """
        pp: one batched forward pass over -p random tokens. tg: -n single-token steps after an empty \
        cache, each feeding a new random token (as llama-bench's tg: every repetition sees other tokens, \
        so a MoE model routes them to other experts). Each test runs once for warm-up, then -r times; mean and standard \
        deviation of tokens/s are reported, and the median. Also reports the weight bytes read per \
        generated token and the bandwidth bound they imply: a probe reads the memory the weights occupy \
        before and after every tg repetition (the bound is their median), and each repetition is compared \
        with the bandwidth measured around it, since a shared machine's bandwidth moves over time.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .short, help: "Prompt tokens for the pp test (0 to skip).")
    var p = 512
    @Option(name: .short, help: "Generated tokens for the tg test (0 to skip).")
    var n = 128
    @Option(name: .short, help: "Repetitions.")
    var r = 5
    @Option(name: .short, help: "Context depth: tokens already in the KV cache when pp and tg run (llama-bench's -d).")
    var d = 0
    @Flag(name: .long, help: "Print one JSON object.")
    var json = false
    @Flag(name: .long, help: "Under mpiexec: time the exchanges alone, without a model: all-gathers of Mixtral-8x7B's and 8x22B's hidden states and expert activations per token (1, 16 and 512 tokens) and the all-reduce of one hidden state; the median and 90th percentile over 50 x -r calls.")
    var collectives = false

    func run() throws { try runOnRanks(collectives ? benchCollectives : bench) }

    /// The exchanges between the ranks, as a split forward pass calls them, back to back:
    /// their time per call when the ranks arrive together. All-gathers (each rank sends its
    /// share of a vector every rank then holds whole) of one token's hidden state (Mixtral
    /// 8x7B's 4096 floats, 8x22B's 6144) and of its two experts' activations (2 x 14336,
    /// 2 x 16384), for 1 and 16 tokens and, for the hidden states, 512; and the all-reduce
    /// of one token's hidden state (the embedding's).
    private func benchCollectives() throws {
        let communicator = try ParallelRuntime.start()
        guard communicator.size > 1 else { throw CLIError("--collectives times the exchange between ranks: run it under mpiexec -n N, N > 1") }
        logQuietly = communicator.rank != 0
        func time(_ exchange: () -> Void) -> (median: Double, p90: Double) {
            var seconds: [Double] = []
            for call in 0..<(50 * r + 5) {
                let start = DispatchTime.now().uptimeNanoseconds
                exchange()
                if call >= 5 { seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9) }  // after 5 warm-up calls
            }
            seconds.sort()
            return (seconds[seconds.count / 2], seconds[seconds.count * 9 / 10])
        }
        var results: [[String: Any]] = []
        let cases = [(1, 4096), (1, 6144), (1, 28672), (1, 32768), (16, 4096), (16, 6144), (16, 28672), (16, 32768),
                     (512, 4096), (512, 6144)]
        for (tokens, floats) in cases {
            let total = tokens * floats
            let counts = (0..<communicator.size).map { TensorParallel.range(total, rank: $0, size: communicator.size).count }
            let local = [Float](repeating: Float(communicator.rank), count: counts[communicator.rank])
            var whole = [Float](repeating: 0, count: total)
            let measured = time {
                local.withUnsafeBufferPointer { mine in
                    whole.withUnsafeMutableBufferPointer { communicator.allGather(mine.baseAddress!, counts: counts, into: $0.baseAddress!) }
                }
            }
            results.append(["exchange": "all-gather", "tokens": tokens, "floats_per_token": floats,
                            "bytes_sent_per_rank": counts[communicator.rank] * 4, "median_seconds": measured.median, "p90_seconds": measured.p90])
        }
        for floats in [4096, 6144] {
            var values = [Float](repeating: -0.0, count: floats)
            let measured = time { values.withUnsafeMutableBufferPointer { communicator.allReduceSum($0.baseAddress!, count: floats) } }
            results.append(["exchange": "all-reduce", "tokens": 1, "floats_per_token": floats, "bytes_sent_per_rank": floats * 4,
                            "median_seconds": measured.median, "p90_seconds": measured.p90])
        }
        guard communicator.rank == 0 else { return }
        if json {
            let data = try JSONSerialization.data(withJSONObject: ["ranks": communicator.size, "exchanges": results], options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("exchanges between \(communicator.size) ranks (all-gather: each rank sends its share; all-reduce: every rank sends all)")
        print("| exchange | tokens | floats per token | bytes each rank sends | median | p90 |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for result in results {
            print(String(format: "| %@ | %d | %d | %d | %.1f us | %.1f us |", result["exchange"] as? String ?? "", result["tokens"] as? Int ?? 0,
                         result["floats_per_token"] as? Int ?? 0, result["bytes_sent_per_rank"] as? Int ?? 0,
                         (result["median_seconds"] as? Double ?? 0) * 1e6, (result["p90_seconds"] as? Double ?? 0) * 1e6))
        }
    }

    /// Split over several ranks (`mpiexec -n N`), every rank runs the same steps (the random
    /// tokens come from a fixed seed); rank 0 prints, with what the ranks exchanged.
    private func bench() throws {
        guard p >= 0, n >= 0, r >= 1 else { throw CLIError("-p and -n must be >= 0 and -r >= 1") }
        let bundle = try modelOptions.load(splitOverRanks: true)
        let model = bundle.model
        let communicator = model.communicator
        var random = Xoshiro256(seed: 42)
        func randomTokens(_ count: Int) -> [Int] { (0..<count).map { _ in Int(random.next() % UInt64(model.config.vocabSize)) } }

        /// Seconds of `r` timed runs after a warm-up; `between` runs before each and after the last.
        /// With expert streaming, `streamingOfLast` holds what it did in the timed runs.
        var streamingOfLast: ExpertStreamingStats?
        var communicationOfLast = CommunicationStats()
        func measure(between: () -> Void = {}, _ body: () throws -> Void) rethrows -> [Double] {
            try body()  // warm-up
            let streamingAtStart = model.expertStreamingStats
            let communicationAtStart = communicator.statistics
            defer {
                streamingOfLast = streamingAtStart.flatMap { model.expertStreamingStats?.since($0) }
                communicationOfLast = communicator.statistics.since(communicationAtStart)
            }
            var seconds: [Double] = []
            for _ in 0..<r {
                between()
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            }
            between()
            return seconds
        }
        let probe = BandwidthProbe(regions: model.weightMemory, threads: model.pool.threadCount)
        var bandwidths: [Double] = []
        var fractionsOfBound: [Double] = []
        let bytesPerToken = model.weightBytesPerGeneratedToken
        // The cache holds `d` tokens before every measurement (prefilled once, not timed).
        let cache = model.makeCache(maxPositions: d + max(p, n) + 1)
        if d > 0 { _ = try model.forward(randomTokens(d), cache: cache) }
        let depth = d > 0 ? "@d\(d)" : ""
        var results: [[String: Any]] = []
        if p > 0 {
            let tokens = randomTokens(p)
            let seconds = try measure {
                cache.truncate(to: d)
                _ = try model.forward(tokens, cache: cache)
            }
            results.append(summary("pp\(p)" + depth, tokens: p, seconds: seconds, streaming: streamingOfLast,
                                   communication: communicator.size > 1 ? communicationOfLast : nil))
        }
        if n > 0 {
            let seconds = try measure(between: { bandwidths.append(probe.measure(pool: model.pool)) }) {
                cache.truncate(to: d)
                for token in randomTokens(n) {
                    let logits = try model.forward([token], cache: cache)
                    var greedy = GreedySampler()
                    _ = greedy.choose(from: logits)  // a sampling step, as generation has
                }
            }
            results.append(summary("tg\(n)" + depth, tokens: n, seconds: seconds, streaming: streamingOfLast,
                                   communication: communicator.size > 1 ? communicationOfLast : nil))
            // Each repetition against the mean of the probes just before and after it.
            for (index, time) in seconds.enumerated() {
                let bandwidth = (bandwidths[index] + bandwidths[index + 1]) / 2
                if bandwidth > 0 { fractionsOfBound.append(Double(n * bytesPerToken) / time / bandwidth) }
            }
        } else {
            bandwidths.append(probe.measure(pool: model.pool))
        }
        let kvBytes = cache.byteCount
        let peakRSS = peakResidentBytes()
        let peakRSSPerRank = residentBytesPerRank(peakRSS, communicator)
        guard communicator.rank == 0 else { return }
        let bandwidth = median(bandwidths)
        let bound = bandwidth / Double(bytesPerToken)
        let fraction = fractionsOfBound.isEmpty ? nil : median(fractionsOfBound)
        if json {
            var object: [String: Any] = ["model": bundle.path, "threads": model.pool.threadCount, "tests": results,
                                         "weight_bytes_per_token": bytesPerToken, "read_bandwidth_bytes_per_second": bandwidth,
                                         "read_bandwidth_samples": bandwidths, "probe_bytes_per_pass": probe.bytesPerPass,
                                         "tg_bound_tokens_per_second": bound, "depth": d, "kv_cache_bytes": kvBytes,
                                         "peak_rss_bytes": peakRSS, "precision": model.precision.rawValue,
                                         "layers": model.config.numLayers, "experts": model.config.numExperts,
                                         "experts_per_token": model.config.isMoE ? model.config.numExpertsPerToken : 1]
            object.merge(cpuDescription(model.pool.kernels)) { current, _ in current }
            if let stats = model.expertStreamingStats {
                object["expert_streaming"] = ["slots": stats.slots, "slot_bytes": stats.slotBytes, "expert_bytes": stats.expertBytes,
                                              "dense_bytes": stats.denseBytes, "direct_io": stats.directIO,
                                              "ram_budget_bytes": modelOptions.ramBudget.flatMap(ExpertStreamingOptions.parseSize) as Any,
                                              "policy": modelOptions.expertCache.rawValue, "prefetch": !modelOptions.noPrefetch]
            }
            if let fraction { object["tg_fraction_of_bound"] = fraction }
            if communicator.size > 1 {
                object["ranks"] = communicator.size
                object["peak_rss_bytes_per_rank"] = peakRSSPerRank
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        // Mean ± sd as llama-bench prints it, and the median: on a shared machine one
        // disturbed repetition moves the mean.
        print("| model | threads | test | t/s | median t/s |")
        print("| --- | ---: | --- | ---: | ---: |")
        for result in results {
            print(String(format: "| %@ | %d | %@ | %.2f ± %.2f | %.2f |", bundle.path, model.pool.threadCount,
                         result["test"] as? String ?? "", result["tokens_per_second"] as? Double ?? 0,
                         result["stddev"] as? Double ?? 0, result["median_tokens_per_second"] as? Double ?? 0))
        }
        for result in results {
            guard let s = result["expert_streaming"] as? [String: Any] else { continue }
            print(String(format: "%@ experts: hit rate %.1f%%, prefetch accuracy %.1f%%, %.1f MB read per token, %.0f%% of the time waiting for reads",
                         result["test"] as? String ?? "", 100 * (s["hit_rate"] as? Double ?? 0), 100 * (s["prefetch_accuracy"] as? Double ?? 0),
                         (s["bytes_read_per_token"] as? Double ?? 0) / 1e6, 100 * (s["wait_share"] as? Double ?? 0)))
        }
        print(String(format: "weights read per generated token: %.1f MB; read bandwidth %.1f GB/s (median of %d probes, %.1f-%.1f); tg bound %.1f t/s",
                     Double(bytesPerToken) / 1e6, bandwidth / 1e9, bandwidths.count, (bandwidths.min() ?? 0) / 1e9,
                     (bandwidths.max() ?? 0) / 1e9, bound))
        if let fraction {
            print(String(format: "tg%d: %.0f%% of the bound (median over repetitions, each against the bandwidth measured around it)",
                         n, 100 * fraction))
        }
        print(String(format: "KV cache %.1f MB at %d positions; peak RSS %.1f MB", Double(kvBytes) / 1e6, cache.count,
                     Double(peakRSS) / 1e6))
        if communicator.size > 1 {
            for result in results {
                guard let c = result["communication"] as? [String: Any] else { continue }
                print(String(format: "%@ over %d ranks: %.2f exchanges, %.1f KB sent by each rank and %.2f ms communicating per token (%.0f%% of the time)",
                             result["test"] as? String ?? "", communicator.size, c["exchanges_per_token"] as? Double ?? 0,
                             (c["bytes_sent_per_token"] as? Double ?? 0) / 1e3, 1e3 * (c["seconds_per_token"] as? Double ?? 0),
                             100 * (c["share"] as? Double ?? 0)))
            }
            print("peak RSS per rank (MB): " + peakRSSPerRank.map { String(format: "%.1f", Double($0) / 1e6) }.joined(separator: ", "))
        }
        print("precision \(model.precision.rawValue); kernels: \(model.pool.kernels.summary); CPU: \(CPUInfo.current.brand)")
    }

    func summary(_ test: String, tokens: Int, seconds: [Double], streaming: ExpertStreamingStats?,
                 communication: CommunicationStats?) -> [String: Any] {
        let rates = seconds.map { Double(tokens) / $0 }
        let mean = rates.reduce(0, +) / Double(rates.count)
        let variance = rates.count > 1 ? rates.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(rates.count - 1) : 0
        var result: [String: Any] = ["test": test, "tokens": tokens, "tokens_per_second": mean, "stddev": variance.squareRoot(),
                                     "median_tokens_per_second": median(rates), "seconds": seconds]
        if let c = communication {
            // Per token of the timed repetitions, on rank 0 (every rank sends as much).
            let timedTokens = Double(tokens * seconds.count)
            result["communication"] = [
                "exchanges_per_token": Double(c.exchanges) / timedTokens,
                "bytes_sent_per_token": Double(c.bytesSent) / timedTokens,
                "seconds_per_token": c.seconds / timedTokens,
                "share": c.seconds / max(1e-9, seconds.reduce(0, +)),
            ]
        }
        if let s = streaming {
            // Per token of the timed repetitions.
            let timedTokens = Double(tokens * seconds.count)
            result["expert_streaming"] = [
                "expert_calls": s.uses, "hits": s.hits, "prefetch_hits": s.prefetchHits, "misses": s.misses,
                "hit_rate": s.hitRate, "prefetch_accuracy": s.prefetchAccuracy, "wasted_prefetches": s.wastedPrefetches,
                "bytes_read": s.bytesRead, "bytes_read_per_token": Double(s.bytesRead) / timedTokens,
                "wait_seconds": s.waitSeconds, "wait_share": s.waitSeconds / max(1e-9, seconds.reduce(0, +)),
            ]
        }
        return result
    }

    func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// Every rank's `bytes`, in rank order (on one process, `[bytes]`), gathered in whole MiB
/// (exact in a Float up to 16 TiB).
func residentBytesPerRank(_ bytes: Int, _ communicator: any Communicator) -> [Int] {
    guard communicator.size > 1 else { return [bytes] }
    let mine = [Float(bytes / (1 << 20))]
    var all = [Float](repeating: 0, count: communicator.size)
    mine.withUnsafeBufferPointer { mine in
        all.withUnsafeMutableBufferPointer {
            communicator.allGather(mine.baseAddress!, counts: Array(repeating: 1, count: communicator.size), into: $0.baseAddress!)
        }
    }
    return all.map { Int($0) << 20 }
}

/// Peak resident set size of this process (getrusage's ru_maxrss is in KiB on Linux).
func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    #if os(Linux)
    return Int(usage.ru_maxrss) * 1024
    #else
    return Int(usage.ru_maxrss)
    #endif
}
