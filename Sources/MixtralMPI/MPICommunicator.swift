import Foundation
import Mixtral
#if MPI
import CMPI
#endif

/// Why the ranks cannot start.
public struct ParallelStartError: Error, CustomStringConvertible {
    public let description: String
}

/// Starts the ranks of a tensor-parallel run (`mpiexec -n N mixtral ...`) and ends them.
/// MPI is linked only with the MPI trait (`swift build --traits MPI`); without it a
/// process started by mpiexec with several ranks is refused, so that N processes do not
/// each run the whole model and print N answers.
public enum ParallelRuntime {
    /// Whether this build links MPI (the MPI trait).
    public static var isAvailable: Bool {
        #if MPI
        return true
        #else
        return false
        #endif
    }

    /// The number of ranks the launcher started, from its environment (MPICH's hydra sets
    /// PMI_SIZE, Open MPI OMPI_COMM_WORLD_SIZE); nil outside a launcher.
    public static var launcherSize: Int? {
        let environment = ProcessInfo.processInfo.environment
        for key in ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE"] {
            if let value = environment[key], let size = Int(value) { return size }
        }
        return nil
    }

    /// The number of ranks the launcher started on this machine (MPICH's MPI_LOCALNRANKS,
    /// Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE); nil outside a launcher.
    public static var launcherLocalSize: Int? {
        let environment = ProcessInfo.processInfo.environment
        for key in ["MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"] {
            if let value = environment[key], let size = Int(value), size >= 1 { return size }
        }
        return nil
    }

    /// The communicator of this process: MPI's when the launcher started several ranks,
    /// else one process. Call once, from the main thread; `finish` ends MPI at exit.
    public static func start() throws(ParallelStartError) -> any Communicator {
        guard let size = launcherSize, size > 1 else { return SingleProcessCommunicator() }
        #if MPI
        return try MPICommunicator.start()
        #else
        throw ParallelStartError(description: "started by mpiexec with \(size) ranks, but this mixtral was built without MPI: build it with `swift build -c release --traits MPI` (needs libmpich-dev)")
        #endif
    }

    /// Ends every rank at once after an error on one of them (MPI_Abort), so that the
    /// others do not wait forever in a collective. Without MPI: exits.
    public static func abort(code: Int32) -> Never {
        #if MPI
        if MPICommunicator.started { cmpi_abort(code) }
        #endif
        exit(code)
    }
}

#if MPI
/// MPI_COMM_WORLD as a `Communicator`. The sum is exact in the sense the engine needs: an
/// MPI_Allgather brings every rank's partial sums to every rank, and each adds them in
/// rank order 0..N-1 itself, so the result does not depend on MPI's reduction algorithm or
/// on timing, and is the same bits on every rank (MPI_Allreduce promises neither).
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private let lock = NSLock()
    private var stats = CommunicationStats()
    private var gathered: UnsafeMutablePointer<Float>
    private var gatheredCount = 0

    /// The most floats one all-gather of an all-reduce moves per rank.
    static let piece = 1 << 15

    /// Whether MPI_Init ran (MPI_Finalize is then due at exit).
    nonisolated(unsafe) static var started = false

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
        gathered = .allocate(capacity: 1)
    }

    deinit { gathered.deallocate() }

    static func start() throws(ParallelStartError) -> MPICommunicator {
        let provided = cmpi_init()
        guard provided >= 0 else { throw ParallelStartError(description: "MPI_Init_thread failed") }
        started = true
        // MPI_Finalize when the process exits normally (ArgumentParser's exit included).
        atexit { if MPICommunicator.started { MPICommunicator.started = false; _ = cmpi_finalize() } }
        guard provided >= cmpi_thread_serialized() else {
            throw ParallelStartError(description: "this MPI does not provide MPI_THREAD_SERIALIZED (got level \(provided))")
        }
        return MPICommunicator(rank: Int(cmpi_rank()), size: Int(cmpi_size()))
    }

    public func allReduceSum(_ values: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        defer { lock.unlock() }
        // In pieces of at most `piece` floats: the gathered copies stay small (a prefill's
        // all-reduce would otherwise hold N copies of every row) and in cache while added.
        let piece = min(count, Self.piece)
        if gatheredCount < size * piece {
            gathered.deallocate()
            gatheredCount = size * piece
            gathered = .allocate(capacity: gatheredCount)
        }
        let shares = gathered
        var first = 0
        while first < count {
            let n = min(piece, count - first)
            if cmpi_allgather_floats(values + first, Int32(n), shares) != MPI_SUCCESS { ParallelRuntime.abort(code: 1) }
            // ((rank 0 + rank 1) + rank 2) + ..., one rank at a time so that the loop vectorises.
            let sum = values + first
            sum.update(from: shares, count: n)
            for source in 1..<size {
                let share = UnsafePointer(shares + source * n)
                for i in 0..<n { sum[i] += share[i] }
            }
            first += n
        }
        stats.exchanges += 1
        // A ring all-gather sends every other rank's share on: (N-1) shares per rank.
        stats.bytesSent += (size - 1) * count * MemoryLayout<Float>.size
        stats.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    public func allGather(_ local: UnsafePointer<Float>, counts: [Int], into gathered: UnsafeMutablePointer<Float>) {
        let start = DispatchTime.now().uptimeNanoseconds
        lock.lock()
        defer { lock.unlock() }
        precondition(counts.reduce(0, +) <= Int(Int32.max), "an all-gather of \(counts.reduce(0, +)) floats exceeds MPI's count")
        let counts32 = counts.map { Int32($0) }
        var offsets = [Int32](repeating: 0, count: counts.count)
        for i in 1..<max(counts.count, 1) { offsets[i] = offsets[i - 1] + counts32[i - 1] }
        if cmpi_allgatherv_floats(local, counts32[rank], gathered, counts32, offsets) != MPI_SUCCESS { ParallelRuntime.abort(code: 1) }
        stats.exchanges += 1
        stats.bytesSent += (size - 1) * counts[rank] * MemoryLayout<Float>.size
        stats.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    public func broadcast(_ values: inout [Int64], root: Int) {
        let count = values.count
        guard count > 0 else { return }
        let rc = values.withUnsafeMutableBufferPointer { cmpi_broadcast_int64($0.baseAddress, Int32(count), Int32(root)) }
        if rc != MPI_SUCCESS { ParallelRuntime.abort(code: 1) }
    }

    public func abort(reason: String) -> Never {
        FileHandle.standardError.write(Data("error on rank \(rank): \(reason)\n".utf8))
        ParallelRuntime.abort(code: 1)
    }

    public var statistics: CommunicationStats {
        lock.lock()
        defer { lock.unlock() }
        return stats
    }
}
#endif
