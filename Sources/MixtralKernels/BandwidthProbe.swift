import MixtralCKernels
import Foundation

/// Measures memory read bandwidth by reading the memory a model's weights occupy: the
/// bytes decode streams, in the pages it streams them from (2 MB pages when read into
/// memory, the file mapping otherwise), with no extra allocation (so peak RSS is not
/// raised and the probe can run between benchmark repetitions).
///
/// A measurement is one plain pass and one pass with a software prefetch (as the decode
/// kernels read); the faster counts. Every thread reads its contiguous share of each
/// region; regions are read repeatedly until a pass covers `minimumBytes`, so small models
/// still give a pass long enough to time.
///
/// On shared machines the bandwidth moves over tens of seconds, for all memory alike, so
/// `mixtral bench` measures between repetitions and compares each repetition with the
/// bandwidth of its own moment.
public struct BandwidthProbe: @unchecked Sendable {
    /// Per thread, its share of every region.
    private let slices: [[UnsafeRawBufferPointer]]
    private let cycles: Int
    /// Bytes read by one pass.
    public let bytesPerPass: Int

    public init(regions: [UnsafeRawBufferPointer], threads: Int, minimumBytes: Int = 512 << 20) {
        let threads = max(1, threads)
        // Distinct, non-overlapping ranges (a tied lm_head is the embedding matrix).
        var ranges: [(start: Int, end: Int)] = []
        for region in regions {
            guard let base = region.baseAddress, region.count > 0 else { continue }
            let start = Int(bitPattern: base)
            ranges.append((start, start + region.count))
        }
        ranges.sort { $0.start < $1.start }
        var merged: [(start: Int, end: Int)] = []
        for range in ranges {
            if let last = merged.last, range.start <= last.end {
                merged[merged.count - 1].end = max(last.end, range.end)
            } else {
                merged.append(range)
            }
        }
        var slices = [[UnsafeRawBufferPointer]](repeating: [], count: threads)
        var total = 0
        for range in merged {
            let share = (range.end - range.start) / threads / 256 * 256
            guard share > 0 else { continue }
            for thread in 0..<threads {
                let start = UnsafeRawPointer(bitPattern: range.start + thread * share)
                slices[thread].append(UnsafeRawBufferPointer(start: start, count: share))
            }
            total += share * threads
        }
        self.slices = slices
        cycles = total == 0 ? 0 : (minimumBytes + total - 1) / total
        bytesPerPass = total * cycles
    }

    /// Bytes per second of the faster of a plain and a prefetched pass (0 with no memory).
    public func measure(pool: ComputePool) -> Double {
        guard bytesPerPass > 0 else { return 0 }
        let parts = slices.count
        let sink = UnsafeMutablePointer<UInt64>.allocate(capacity: parts)
        sink.initialize(repeating: 0, count: parts)
        defer { sink.deallocate() }
        var best = 0.0
        let read = pool.kernels.functions.read_memory
        for prefetch: Int32 in [0, 1] {
            let start = DispatchTime.now().uptimeNanoseconds
            pool.run(parts: parts) { part in
                for _ in 0..<cycles {
                    for slice in slices[part] {
                        guard let base = slice.baseAddress else { continue }
                        sink[part] &+= read(base, slice.count, prefetch)
                    }
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            best = max(best, Double(bytesPerPass) / seconds)
        }
        return best
    }
}
