import Foundation

/// What a communicator did so far: the exchanges (all-reduces and all-gathers), the bytes
/// this rank sent in them and the seconds spent in them (waiting for the slowest rank
/// included).
public struct CommunicationStats: Sendable, Equatable {
    public var exchanges = 0
    public var bytesSent = 0
    public var seconds = 0.0

    public init(exchanges: Int = 0, bytesSent: Int = 0, seconds: Double = 0) {
        self.exchanges = exchanges
        self.bytesSent = bytesSent
        self.seconds = seconds
    }

    /// What happened between `start` (an earlier reading) and now.
    public func since(_ start: CommunicationStats) -> CommunicationStats {
        CommunicationStats(exchanges: exchanges - start.exchanges, bytesSent: bytesSent - start.bytesSent,
                           seconds: seconds - start.seconds)
    }
}

/// The seam between the model and the processes that share it (tensor parallelism, see
/// `TensorParallel`). The engine only calls these; MPI lives in its own target
/// (`MixtralMPI`, built with `--traits MPI`), so nothing else knows about it.
///
/// Every collective must be called by every rank in the same order (they are collective),
/// from one thread at a time.
public protocol Communicator: Sendable {
    /// This process's index, 0..<size. Rank 0 tokenizes, samples and prints.
    var rank: Int { get }
    /// The number of processes the model is split over.
    var size: Int { get }
    /// Replaces `values[0..<count]` by the sum of every rank's `values`, added in rank order
    /// 0, 1, ..., size - 1, so the result depends neither on timing nor on the rank: every
    /// rank gets the same bits.
    func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int)
    /// Every rank's `local` floats side by side in rank order, on every rank: `gathered`
    /// receives `counts[0]` floats from rank 0, then `counts[1]` from rank 1, and so on
    /// (`counts[rank]` is this rank's; every rank passes the same `counts`).
    func allGather(_ local: UnsafePointer<Float>, counts: [Int], into gathered: UnsafeMutablePointer<Float>)
    /// Replaces `values` on every rank by `root`'s (the counts must agree).
    func broadcast(_ values: inout [Int64], root: Int)
    /// The exchanges so far.
    var statistics: CommunicationStats { get }
    /// Ends every rank after an error on this one in the middle of a forward pass (its
    /// exchanges would otherwise leave the others waiting forever): prints `reason` and
    /// stops the whole run with a non-zero status.
    func abort(reason: String) -> Never
}

extension Communicator {
    /// `root`'s list, of any length, on every rank (its count first, then its elements).
    public func broadcast(ids: [Int], root: Int = 0) -> [Int] {
        var count: [Int64] = [Int64(ids.count)]
        broadcast(&count, root: root)
        var values = rank == root ? ids.map(Int64.init) : [Int64](repeating: 0, count: Int(count[0]))
        broadcast(&values, root: root)
        return values.map { Int($0) }
    }
}

/// One process holding the whole model: collectives do nothing.
public struct SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) {}
    public func allGather(_ local: UnsafePointer<Float>, counts: [Int], into gathered: UnsafeMutablePointer<Float>) {
        gathered.update(from: local, count: counts[0])
    }
    public func broadcast(_ values: inout [Int64], root: Int) {}
    public var statistics: CommunicationStats { CommunicationStats() }
    public func abort(reason: String) -> Never {
        FileHandle.standardError.write(Data("error: \(reason)\n".utf8))
        exit(1)
    }
}

/// `size` ranks as threads of one process, for tests: each thread holds its own model
/// slice and calls the collectives with its own `LocalCommunicator`. The sums are added in
/// rank order, as MPICommunicator does, so a thread group computes the bits the MPI ranks
/// compute.
public final class LocalCommunicatorGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var floatSlots: [UnsafeMutablePointer<Float>?]
    private var intSlots: [[Int64]]

    public init(size: Int) {
        precondition(size >= 1, "a group needs at least one rank")
        self.size = size
        floatSlots = Array(repeating: nil, count: size)
        intSlots = Array(repeating: [], count: size)
    }

    /// The communicator of rank `rank`.
    public func communicator(rank: Int) -> LocalCommunicator { LocalCommunicator(group: self, rank: rank) }

    /// Waits until every rank has arrived (a reusable barrier).
    fileprivate func barrier() {
        condition.lock()
        let mine = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == mine { condition.wait() }
        }
        condition.unlock()
    }

    fileprivate func allReduceSum(rank: Int, _ values: UnsafeMutablePointer<Float>, count: Int) {
        condition.lock()
        floatSlots[rank] = values
        condition.unlock()
        barrier()  // every rank's partial sums are published
        var sum = [Float](repeating: 0, count: count)
        condition.lock()
        let slots = floatSlots
        condition.unlock()
        for source in 0..<size {
            guard let partial = slots[source] else { continue }
            if source == 0 {
                for i in 0..<count { sum[i] = partial[i] }
            } else {
                for i in 0..<count { sum[i] += partial[i] }
            }
        }
        barrier()  // every rank has read every partial sum: now each may overwrite its own
        sum.withUnsafeBufferPointer { values.update(from: $0.baseAddress!, count: count) }
    }

    fileprivate func allGather(rank: Int, _ local: UnsafePointer<Float>, counts: [Int], into gathered: UnsafeMutablePointer<Float>) {
        condition.lock()
        floatSlots[rank] = UnsafeMutablePointer(mutating: local)
        condition.unlock()
        barrier()  // every rank's share is published
        condition.lock()
        let slots = floatSlots
        condition.unlock()
        var offset = 0
        for source in 0..<size {
            if let share = slots[source] { (gathered + offset).update(from: share, count: counts[source]) }
            offset += counts[source]
        }
        barrier()  // every rank has read every share
    }

    fileprivate func broadcast(rank: Int, _ values: inout [Int64], root: Int) {
        if rank == root {
            condition.lock()
            intSlots[root] = values
            condition.unlock()
        }
        barrier()
        condition.lock()
        values = intSlots[root]
        condition.unlock()
        barrier()
    }
}

/// One rank of a `LocalCommunicatorGroup`.
public final class LocalCommunicator: Communicator, @unchecked Sendable {
    public let group: LocalCommunicatorGroup
    public let rank: Int
    public var size: Int { group.size }
    private var stats = CommunicationStats()

    init(group: LocalCommunicatorGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    public func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) {
        let start = DispatchTime.now().uptimeNanoseconds
        group.allReduceSum(rank: rank, values, count: count)
        stats.exchanges += 1
        stats.bytesSent += (size - 1) * count * MemoryLayout<Float>.size
        stats.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    public func allGather(_ local: UnsafePointer<Float>, counts: [Int], into gathered: UnsafeMutablePointer<Float>) {
        let start = DispatchTime.now().uptimeNanoseconds
        group.allGather(rank: rank, local, counts: counts, into: gathered)
        stats.exchanges += 1
        stats.bytesSent += (size - 1) * counts[rank] * MemoryLayout<Float>.size
        stats.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    public func broadcast(_ values: inout [Int64], root: Int) { group.broadcast(rank: rank, &values, root: root) }

    public var statistics: CommunicationStats { stats }

    /// Threads cannot end their group alone: the process stops.
    public func abort(reason: String) -> Never {
        FileHandle.standardError.write(Data("error on rank \(rank): \(reason)\n".utf8))
        exit(1)
    }
}
