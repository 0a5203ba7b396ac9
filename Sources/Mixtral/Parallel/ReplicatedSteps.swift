import Foundation

/// Serving a model split over ranks (`mpiexec -n N mixtral serve`): rank 0 runs the HTTP
/// server and the batch scheduler, which decides every step; the other ranks own no
/// requests, they replay rank 0's model operations on their slices (`RankFollower`).
/// Before each operation rank 0 broadcasts it, so that every rank calls the collectives of
/// the same forward passes in the same order. Caches are named by `KVCache.id`; a
/// follower keeps a cache of its own under each name.
public enum ReplicatedStep: Equatable, Sendable {
    /// One `forward(batch:)`. `live` names every cache rank 0 still holds (the batch's and
    /// those kept for prefix reuse): a follower frees the others.
    case forward(entries: [Entry], live: [Int])
    /// `target.copyPrefix(of: source, count:)` (prefix reuse).
    case copyPrefix(target: Entry, source: Int, count: Int)
    /// No more steps: the followers return.
    case stop

    /// A cache's name and size, and what a forward pass does with it.
    public struct Entry: Equatable, Sendable {
        public var cache: Int
        public var maxPositions: Int
        public var tokens: [Int] = []
        public var wantsLogits = true
    }

    /// The step as the integers a broadcast carries.
    var encoded: [Int] {
        switch self {
        case .stop:
            return [0]
        case .forward(let entries, let live):
            var out = [1, live.count] + live + [entries.count]
            for entry in entries {
                out += [entry.cache, entry.maxPositions, entry.wantsLogits ? 1 : 0, entry.tokens.count] + entry.tokens
            }
            return out
        case .copyPrefix(let target, let source, let count):
            return [2, target.cache, target.maxPositions, source, count]
        }
    }

    /// The step `encoded` wrote; nil for anything else (a follower then stops).
    init?(encoded values: [Int]) {
        var index = 0
        func next() -> Int? {
            guard index < values.count else { return nil }
            defer { index += 1 }
            return values[index]
        }
        func take(_ count: Int) -> [Int]? {
            guard count >= 0, count <= values.count - index else { return nil }
            defer { index += count }
            return Array(values[index..<(index + count)])
        }
        switch next() {
        case 0:
            self = .stop
        case 1:
            guard let liveCount = next(), let live = take(liveCount), let entryCount = next(), entryCount >= 0 else { return nil }
            var entries: [Entry] = []
            for _ in 0..<entryCount {
                guard let cache = next(), let maxPositions = next(), let wants = next(), let count = next(),
                      let tokens = take(count) else { return nil }
                entries.append(Entry(cache: cache, maxPositions: maxPositions, tokens: tokens, wantsLogits: wants != 0))
            }
            self = .forward(entries: entries, live: live)
        case 2:
            guard let cache = next(), let maxPositions = next(), let source = next(), let count = next() else { return nil }
            self = .copyPrefix(target: Entry(cache: cache, maxPositions: maxPositions), source: source, count: count)
        default:
            return nil
        }
        guard index == values.count else { return nil }
    }
}

extension LanguageModel {
    /// On rank 0 of a split model, tells the other ranks (waiting in `RankFollower.run`)
    /// the operation it is about to run; nothing on one process.
    func announce(_ step: @autoclosure () -> ReplicatedStep) {
        guard communicator.size > 1, communicator.rank == 0 else { return }
        _ = communicator.broadcast(ids: step().encoded)
    }
}

/// A rank other than 0 of a split server: runs the model operations rank 0 announces
/// (`ReplicatedStep`) until it announces `stop`.
public final class RankFollower {
    public let model: LanguageModel
    private var caches: [Int: KVCache] = [:]

    public init(model: LanguageModel) {
        self.model = model
    }

    /// Replays rank 0's steps; returns after `stop`. A step that fails here failed on rank 0
    /// too, which reports it: its checks depend only on the step, before any exchange (a
    /// failed read in the middle of a pass ends every rank, `Communicator.abort`).
    public func run() {
        while true {
            let values = model.communicator.broadcast(ids: [], root: 0)
            guard let step = ReplicatedStep(encoded: values) else { return }
            switch step {
            case .stop:
                return
            case .forward(let entries, let live):
                let keep = Set(live).union(entries.map(\.cache))
                caches = caches.filter { keep.contains($0.key) }
                let batch = entries.map { BatchEntry(tokens: $0.tokens, cache: cache($0), wantsLogits: $0.wantsLogits) }
                _ = try? model.forward(batch: batch)
            case .copyPrefix(let target, let source, let count):
                guard let source = caches[source] else { continue }
                _ = cache(target).copyPrefix(of: source, count: count)
            }
        }
    }

    private func cache(_ entry: ReplicatedStep.Entry) -> KVCache {
        if let cache = caches[entry.cache] { return cache }
        let cache = model.makeCache(maxPositions: entry.maxPositions)
        caches[entry.cache] = cache
        return cache
    }
}
