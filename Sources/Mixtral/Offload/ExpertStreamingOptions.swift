import Foundation

/// Which cached expert makes room for the next one (see `ExpertStreamer`).
///
/// `next-use` is the default: measured on the 8x7B and 8x22B geometries (BENCHMARKS.md,
/// Larger than RAM) it matches LRU when the slots hold most experts and keeps hits where
/// LRU keeps none, when they hold a quarter (layers run in a cycle longer than the cache).
public enum ExpertCachePolicy: String, Sendable, CaseIterable {
    /// The expert whose next use is expected furthest ahead: layers run in a cycle, so an
    /// expert of the layer that just ran is not needed before the next token reaches it,
    /// and one its router rarely picks (decaying use counts) later still. Belady's optimal
    /// choice for this access pattern, with the router's picks estimated.
    case nextUse = "next-use"
    /// Least recently used, over all layers.
    case lru
    /// Each layer keeps an equal share of the slots, least recently used within it.
    case layerLRU = "layer-lru"
    /// Least frequently used, with use counts that halve every 16 tokens' worth of expert
    /// calls, so that the experts of the current text win over those of an earlier one.
    case lfu
}

/// Running a model whose experts do not all fit in memory: dense weights stay resident and
/// experts are read from the model file into a fixed pool of slots on demand.
public struct ExpertStreamingOptions: Sendable, Equatable {
    /// Bytes of weights held in memory: the dense weights plus the slots.
    public var ramBudget: Int
    public var policy: ExpertCachePolicy
    /// Threads that issue the reads (each keeps one read in flight).
    public var ioThreads: Int
    /// Whether layer L+1's router is applied to layer L's input to read the experts it
    /// will probably pick before they are needed.
    public var prefetch: Bool
    /// How many layers ahead the guesses reach (each from the same hidden state, so later
    /// layers are guessed less well; reads start earlier).
    public var prefetchDepth: Int

    public init(ramBudget: Int, policy: ExpertCachePolicy = .nextUse, ioThreads: Int = 8, prefetch: Bool = true,
                prefetchDepth: Int = 1) {
        self.ramBudget = ramBudget
        self.policy = policy
        self.ioThreads = ioThreads
        self.prefetch = prefetch
        self.prefetchDepth = prefetchDepth
    }

    /// Parses a size such as `12G`, `12GiB`, `800M`, `1.5G` or a byte count. K, M, G and T
    /// are powers of 1024 (as llama.cpp and free -h count); a trailing B or iB is allowed.
    public static func parseSize(_ text: String) -> Int? {
        var digits = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where digits.hasSuffix(suffix) { digits.removeLast(suffix.count); break }
        var scale = 1.0
        if let unit = digits.last, let power = ["K": 1.0, "M": 2.0, "G": 3.0, "T": 4.0][String(unit)] {
            scale = pow(1024, power)
            digits.removeLast()
        }
        guard let value = Double(digits), value.isFinite, value > 0, value * scale < 1e18 else { return nil }
        return Int(value * scale)
    }
}

/// What expert streaming did: cache hits, bytes read, prefetch accuracy, time spent
/// waiting for reads. Counters only grow; `since(_:)` gives the part of a run.
public struct ExpertStreamingStats: Sendable, Equatable {
    /// Slots in the pool, bytes per slot, and bytes of one expert's three matrices.
    public var slots = 0, slotBytes = 0, expertBytes = 0
    /// Bytes of the weights that stay resident (everything but the experts).
    public var denseBytes = 0
    /// Whether reads bypass the page cache (O_DIRECT).
    public var directIO = false
    /// Expert calls (one expert of one layer run on the tokens routed to it).
    public var uses = 0
    /// Calls that found the expert in memory, kept from an earlier call.
    public var hits = 0
    /// Calls that found the expert in memory or in flight because a prefetch guessed it.
    public var prefetchHits = 0
    /// Calls that had to start the read themselves.
    public var misses = 0
    /// Prefetched experts evicted before any call used them.
    public var wastedPrefetches = 0
    public var bytesRead = 0
    /// Experts used by a layer that a prefetch for that layer had guessed, out of the
    /// experts used by layers that had a guess.
    public var guessedRight = 0, guessable = 0
    /// Time the compute thread waited for reads.
    public var waitSeconds = 0.0

    public init() {}

    /// Share of expert calls served from memory without a read.
    public var hitRate: Double { uses > 0 ? Double(hits) / Double(uses) : 0 }
    /// Share of the used experts that the router-ahead guess had named.
    public var prefetchAccuracy: Double { guessable > 0 ? Double(guessedRight) / Double(guessable) : 0 }

    /// The counters accumulated after `earlier` (sizes kept).
    public func since(_ earlier: ExpertStreamingStats) -> ExpertStreamingStats {
        var d = self
        d.uses -= earlier.uses
        d.hits -= earlier.hits
        d.prefetchHits -= earlier.prefetchHits
        d.misses -= earlier.misses
        d.wastedPrefetches -= earlier.wastedPrefetches
        d.bytesRead -= earlier.bytesRead
        d.guessedRight -= earlier.guessedRight
        d.guessable -= earlier.guessable
        d.waitSeconds -= earlier.waitSeconds
        return d
    }
}
