import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads file ranges into memory on its own threads, with one read in flight per thread,
/// so that a disk that needs several outstanding requests reaches its bandwidth. Urgent
/// jobs (a layer waiting for an expert) are served before prefetches.
final class DirectReader: @unchecked Sendable {
    /// One `pread` range. With O_DIRECT, offset, length and destination are multiples of
    /// the page size; `needed` bytes must arrive (the rest may lie past the end of the file).
    struct Read {
        let fd: Int32
        let path: String
        let offset: Int
        let length: Int
        let needed: Int
        let destination: UnsafeMutableRawPointer
    }

    /// A group of reads that completes together (one expert). Its fields are guarded by
    /// the reader's lock.
    final class Job: @unchecked Sendable {
        fileprivate let reads: [Read]
        fileprivate var issued = 0, finished = 0
        fileprivate var urgent: Bool
        fileprivate var failure: String?

        fileprivate init(reads: [Read], urgent: Bool) {
            self.reads = reads
            self.urgent = urgent
        }
    }

    private let condition = NSCondition()
    /// Jobs with reads not yet issued, oldest first.
    private var queue: [Job] = []
    private var stopping = false
    private var running = 0

    init(threads: Int) {
        running = max(1, threads)
        for index in 0..<running {
            let thread = Thread { [self] in workerLoop() }
            thread.name = "mixtral-io-\(index)"
            thread.start()
        }
    }

    /// Queues the reads of one job.
    func submit(_ reads: [Read], urgent: Bool) -> Job {
        let job = Job(reads: reads, urgent: urgent)
        condition.lock()
        if reads.isEmpty {
            condition.unlock()
            return job
        }
        queue.append(job)
        condition.broadcast()
        condition.unlock()
        return job
    }

    /// Serves the rest of a prefetch job before other prefetches: a layer now waits for it.
    func promote(_ job: Job) {
        condition.lock()
        job.urgent = true
        condition.unlock()
    }

    func isDone(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return job.finished == job.reads.count
    }

    /// Blocks until the job's reads are done; returns why one failed, or nil.
    func wait(_ job: Job) -> String? {
        condition.lock()
        defer { condition.unlock() }
        while job.finished < job.reads.count { condition.wait() }
        return job.failure
    }

    /// Stops the threads after their current reads and waits for them; jobs still queued
    /// are dropped (nobody waits for them any more).
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    private func workerLoop() {
        condition.lock()
        while true {
            while !stopping && queue.isEmpty { condition.wait() }
            if stopping {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let index = queue.firstIndex { $0.urgent } ?? 0
            let job = queue[index]
            let read = job.reads[job.issued]
            job.issued += 1
            if job.issued == job.reads.count { queue.remove(at: index) }
            condition.unlock()
            let failure = Self.perform(read)
            condition.lock()
            job.finished += 1
            if let failure, job.failure == nil { job.failure = failure }
            if job.finished == job.reads.count { condition.broadcast() }
        }
    }

    private static func perform(_ read: Read) -> String? {
        var done = 0
        while done < read.length {
            let count = pread(read.fd, read.destination + done, read.length - done, off_t(read.offset + done))
            if count < 0 {
                if errno == EINTR { continue }
                if done >= read.needed { break }  // past the end of the file, unaligned: what we need is here
                return "reading \(read.length) bytes at offset \(read.offset) of \(read.path) failed: \(String(cString: strerror(errno)))"
            }
            if count == 0 { break }
            done += count
        }
        guard done >= read.needed else {
            return "\(read.path) ends at offset \(read.offset + done), before the expert's bytes end at \(read.offset + read.needed): truncated file?"
        }
        return nil
    }
}
