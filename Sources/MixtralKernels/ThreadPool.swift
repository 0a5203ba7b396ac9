import MixtralCKernels
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A persistent pool of worker threads that runs the parts of one heavy operation on all
/// cores. The calling thread works too. Between operations the workers spin briefly on an
/// epoch counter (operations of one forward pass follow each other within microseconds),
/// then sleep on a condition variable, so an idle engine uses no CPU.
///
/// The pool is also the CPU backend: it carries the kernel table its work runs on.
public final class ComputePool: @unchecked Sendable {
    public let threadCount: Int
    /// The kernels of this pool's CPU level (`KernelTable.default` unless given).
    public let kernels: KernelTable
    /// What the workers use; they hold it strongly, so it outlives them (the pool may go
    /// away while a worker is still starting).
    private let shared: Shared
    private var workers: [pthread_t] = []

    public init(threadCount: Int, kernels: KernelTable = .default) {
        _ = keepFreedMemoryForReuse
        self.threadCount = max(1, threadCount)
        self.kernels = kernels
        shared = Shared()
        for _ in 1..<self.threadCount {
            let box = Unmanaged.passRetained(shared)
            var thread = pthread_t()
            #if canImport(Glibc)
            let created = pthread_create(&thread, nil, { raw in
                guard let raw else { return nil }
                Unmanaged<Shared>.fromOpaque(raw).takeRetainedValue().workerLoop()
                return nil
            }, box.toOpaque())
            #else
            let created = pthread_create(&thread, nil, { raw in
                Unmanaged<Shared>.fromOpaque(raw).takeRetainedValue().workerLoop()
                return nil
            }, box.toOpaque())
            #endif
            if created == 0 { workers.append(thread) } else { box.release() }
        }
        shared.workerCount = workers.count
    }

    deinit {
        shared.stop()
        for thread in workers { pthread_join(thread, nil) }
    }

    /// One thread per core.
    public static func defaultThreadCount() -> Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Calls `body(part)` for every part in 0..<parts, spread over the threads; returns when
    /// all parts are done. Parts are handed out one at a time, so uneven parts balance.
    public func run(parts: Int, _ body: (Int) -> Void) {
        if parts <= 0 { return }
        if parts == 1 || workers.isEmpty {
            for part in 0..<parts { body(part) }
            return
        }
        withoutActuallyEscaping(body) { shared.run(parts: parts, $0) }
    }

    final class Shared: @unchecked Sendable {
        private let epoch = Atomic<Int>(0)
        private let nextPart = Atomic<Int>(0)
        private let busyWorkers = Atomic<Int>(0)
        private let stopping = Atomic<Bool>(false)
        private var job: ((Int) -> Void)?
        private var jobParts = 0
        fileprivate var workerCount = 0
        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        /// Wait iterations before an idle worker sleeps: 1,000 busy spins, then yields
        /// (a few milliseconds in all).
        private let spinLimit = 5_000

        init() {
            pthread_mutex_init(mutex, nil)
            pthread_cond_init(wake, nil)
        }

        deinit {
            pthread_cond_destroy(wake)
            pthread_mutex_destroy(mutex)
            mutex.deallocate()
            wake.deallocate()
        }

        func stop() {
            stopping.store(true, ordering: .releasing)
            publish()
        }

        /// Starts a new epoch and wakes sleeping workers.
        private func publish() {
            pthread_mutex_lock(mutex)
            epoch.add(1, ordering: .releasing)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
        }

        func run(parts: Int, _ body: @escaping (Int) -> Void) {
            job = body
            jobParts = parts
            nextPart.store(0, ordering: .relaxed)
            busyWorkers.store(workerCount, ordering: .relaxed)
            publish()
            work(body, parts: parts)
            var spins = 0
            while busyWorkers.load(ordering: .acquiring) > 0 {
                // A worker that is not running (another process has its core) must not be
                // waited for by burning this thread's time slice.
                spins += 1
                if spins > 1000 { sched_yield() } else { spinPause() }
            }
            job = nil
        }

        private func work(_ body: (Int) -> Void, parts: Int) {
            while true {
                let part = nextPart.add(1, ordering: .relaxed).oldValue
                if part >= parts { return }
                body(part)
            }
        }

        func workerLoop() {
            // Start from the epoch the pool was created with (0), not the current one: a
            // job published before this thread got going must still be seen.
            var seen = 0
            while true {
                var spins = 0
                while epoch.load(ordering: .acquiring) == seen {
                    spins += 1
                    if spins < spinLimit {
                        if spins > 1000 { sched_yield() } else { spinPause() }
                        continue
                    }
                    pthread_mutex_lock(mutex)
                    while epoch.load(ordering: .acquiring) == seen { pthread_cond_wait(wake, mutex) }
                    pthread_mutex_unlock(mutex)
                }
                seen = epoch.load(ordering: .acquiring)
                if stopping.load(ordering: .acquiring) { return }
                if let job { work(job, parts: jobParts) }
                busyWorkers.subtract(1, ordering: .releasing)
            }
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

/// Activation buffers and weight panels of several MB are allocated and freed on every
/// forward pass. glibc serves such sizes with fresh mmap()s and trims freed heap memory,
/// so every pass would fault in and zero new pages (a fifth of prefill time was spent in
/// clear_page). Raise both thresholds once so freed buffers are reused.
private let keepFreedMemoryForReuse: Void = mx_keep_freed_memory_for_reuse()

@inline(__always) func spinPause() {
    #if arch(x86_64)
    _mm_pause_()
    #endif
}

#if arch(x86_64)
/// `pause`: tells the core this is a spin-wait (saves power, frees the sibling thread).
@inline(__always) func _mm_pause_() {
    // No intrinsic is reachable from Swift; sched_yield would be a syscall. An empty
    // atomic load with relaxed ordering keeps the loop from being optimised away.
    _ = dummyCounter.load(ordering: .relaxed)
}
private let dummyCounter = Atomic<Int>(0)
#endif
