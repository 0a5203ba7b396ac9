import Dispatch

/// Runs the parts of one heavy operation on all cores. Every kernel takes its parallelism
/// from here, so the number of threads is set in one place.
public final class ComputePool: @unchecked Sendable {
    public let threadCount: Int

    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
    }

    /// A pool with one thread per core.
    public static func defaultThreadCount() -> Int { ProcessInfo_activeProcessorCount() }

    /// Calls `body(part)` for part in 0..<parts, spread over the threads; returns when all
    /// parts are done.
    public func run(parts: Int, _ body: (Int) -> Void) {
        if parts <= 0 { return }
        if parts == 1 || threadCount == 1 {
            for part in 0..<parts { body(part) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendable(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in box.value(part) }
        }
    }

    /// Splits 0..<count into contiguous ranges (multiples of `granularity` except the last)
    /// and runs them in parallel, a few ranges per thread for load balance.
    public func parallelRanges(_ count: Int, granularity: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let units = (count + granularity - 1) / granularity
        let parts = min(units, threadCount == 1 ? 1 : threadCount * 4)
        let unitsPerPart = (units + parts - 1) / parts
        let partCount = (units + unitsPerPart - 1) / unitsPerPart
        run(parts: partCount) { part in
            let start = part * unitsPerPart * granularity
            let end = min(count, start + unitsPerPart * granularity)
            if start < end { body(start..<end) }
        }
    }
}

/// Wraps a value that is only read concurrently (closures over raw buffers).
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

#if canImport(Glibc)
import Glibc
func ProcessInfo_activeProcessorCount() -> Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
#elseif canImport(Darwin)
import Darwin
func ProcessInfo_activeProcessorCount() -> Int { max(1, Int(sysconf(_SC_NPROCESSORS_ONLN))) }
#endif
