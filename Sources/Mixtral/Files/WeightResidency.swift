#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the bytes of a weight file live while a model uses them.
public enum WeightResidency: Sendable {
    /// Mapped from the file: pages load on first touch and are shared with the page cache.
    /// Files larger than memory need this.
    case mapped
    /// Read into anonymous memory that asks for 2 MB pages (transparent huge pages). Decode
    /// streams every weight once per token, and with 4 KB file pages the address
    /// translations get in the way of the prefetcher: bf16 decode on the benchmark
    /// checkpoint measured 148 t/s read into memory against 105–139 t/s mapped (BENCHMARKS.md).
    case memory
    /// `memory` when the file takes at most half of the memory available now (Linux), else
    /// `mapped`.
    case automatic
}

/// The bytes of an open regular file of `size` bytes (> 0), mapped or read into memory as
/// `residency` says. Returns nil when the system call fails (errno tells why).
func residentBytes(of fd: Int32, size: Int, residency: WeightResidency) -> (base: UnsafeRawPointer, length: Int)? {
    if residency != .mapped, residency == .memory || size <= availableMemory() / 2,
       let memory = readIntoHugePages(fd, size: size) {
        return memory
    }
    guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else { return nil }
    return (UnsafeRawPointer(mapping), size)
}

/// Releases what `residentBytes` returned.
func releaseResidentBytes(_ base: UnsafeRawPointer, length: Int) {
    munmap(UnsafeMutableRawPointer(mutating: base), length)
}

/// Anonymous memory in whole 2 MB pages, advised as huge pages, filled from the file;
/// nil (and nothing allocated) when any step fails.
private func readIntoHugePages(_ fd: Int32, size: Int) -> (base: UnsafeRawPointer, length: Int)? {
    let hugePage = 1 << 21
    let length = (size + hugePage - 1) / hugePage * hugePage
    guard let memory = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
          memory != MAP_FAILED else { return nil }
    #if os(Linux)
    _ = madvise(memory, length, 14)  // MADV_HUGEPAGE
    #endif
    var done = 0
    while done < size {
        let count = pread(fd, memory + done, min(1 << 26, size - done), off_t(done))
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            munmap(memory, length)
            return nil
        }
        done += count
    }
    _ = mprotect(memory, length, PROT_READ)  // weights are read-only from here on
    return (UnsafeRawPointer(memory), length)
}

/// MemAvailable from /proc/meminfo in bytes; 0 where it cannot be read (so `automatic`
/// maps).
private func availableMemory() -> Int {
    guard let file = fopen("/proc/meminfo", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(cString: line)
        if text.hasPrefix("MemAvailable:") {
            let kilobytes = text.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kilobytes * 1024
        }
    }
    return 0
}
