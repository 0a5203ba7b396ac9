import MixtralCKernels
import Foundation

/// Measures memory read bandwidth: every thread sums its slice of a buffer much larger
/// than the caches, several times; the best pass counts (bytes/second). The buffer is in
/// 2 MB pages where the system grants them, as weights read into memory are
/// (`WeightResidency`): with 4 KB pages the probe measured page walks, not the memory.
/// Passes alternate between plain loads and loads with a software prefetch (as the decode
/// kernels read): on this shared machine either can be the faster at a given time, and
/// the bound is the best the memory delivered.
public func measureReadBandwidth(bytes: Int = 1 << 30, passes: Int = 5, pool: ComputePool) -> Double {
    let count = bytes / 4
    let hugePage = 1 << 21
    let length = (bytes + hugePage - 1) / hugePage * hugePage
    #if os(Linux)
    let mapped = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let mapped, mapped != MAP_FAILED else { return 0 }
    _ = madvise(mapped, length, 14)  // MADV_HUGEPAGE
    defer { munmap(mapped, length) }
    let buffer = mapped.bindMemory(to: Float.self, capacity: count)
    #else
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
    defer { buffer.deallocate() }
    #endif
    buffer.initialize(repeating: 1, count: count)
    let parts = pool.threadCount
    let slice = count / parts / 64 * 64
    var best = 0.0
    let sink = UnsafeMutablePointer<Float>.allocate(capacity: parts)
    defer { sink.deallocate() }
    for pass in 0..<(2 * passes) {
        let start = DispatchTime.now().uptimeNanoseconds
        pool.run(parts: parts) { part in
            let base = buffer + part * slice
            if pass % 2 == 1 && cpuHasAVX512F {
                sink[part] = mx_sum_prefetched(base, slice)
                return
            }
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            var i = 0
            while i < slice {
                a0 += load16(base + i); a1 += load16(base + i + 16)
                a2 += load16(base + i + 32); a3 += load16(base + i + 48)
                i += 64
            }
            sink[part] = (a0 + a1 + a2 + a3).sum()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        best = max(best, Double(slice * parts * 4) / seconds)
    }
    return best
}
