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
    /// translations get in the way of the prefetcher (BENCHMARKS.md, Memory).
    case memory
    /// `memory` when the file takes at most half of the memory available now (Linux), else
    /// `mapped`.
    case automatic
}

/// The bytes of a file as `residentBytes` holds them.
struct ResidentBytes {
    /// Where file offset 0 is now.
    private(set) var base: UnsafeRawPointer
    /// The file's size.
    let size: Int
    /// The page-aligned allocation or mapping that holds the bytes, and its length.
    private let allocation: UnsafeMutableRawPointer
    private let allocationLength: Int
    /// Read into writable memory (with 64 bytes to spare) rather than mapped.
    private let inMemory: Bool

    fileprivate init(mapping: UnsafeMutableRawPointer, length: Int, size: Int, inMemory: Bool) {
        base = UnsafeRawPointer(mapping)
        self.size = size
        allocation = mapping
        allocationLength = length
        self.inMemory = inMemory
    }

    /// Moves bytes read into memory (by less than 64) so that file offset `fileOffset`
    /// starts a 64-byte cache line, then makes them read-only. Call before any pointer into
    /// the bytes is handed out. Tensor data in GGUF files is aligned to 32 bytes (the file's
    /// data section starts 32 bytes into a line in llama.cpp's converter output), and each
    /// 64-byte vector load of a weight row then spans two cache lines, which slows decode
    /// near the memory's bandwidth.
    mutating func alignCacheLines(fileOffset: Int) {
        guard inMemory else { return }
        let shift = (64 - (Int(bitPattern: base) + fileOffset) % 64) % 64
        if shift > 0 {
            let moved = UnsafeMutableRawPointer(mutating: base) + shift
            moved.copyMemory(from: base, byteCount: size)  // memmove semantics
            base = UnsafeRawPointer(moved)
        }
        _ = mprotect(allocation, allocationLength, PROT_READ)  // weights are read-only from here on
    }

    /// The file offset of `pointer` when the bytes are mapped from the file (not read into
    /// memory) and `pointer` lies in them; expert streaming reads such bytes itself.
    func mappedFileOffset(of pointer: UnsafeRawPointer) -> Int? {
        guard !inMemory, pointer >= base, pointer < base + size else { return nil }
        return pointer - base
    }

    /// Drops this process's pages of a file mapping (the kernel reads them again when they
    /// are touched); nothing for bytes read into memory, which would be lost.
    func dropMappedPages() {
        guard !inMemory else { return }
        _ = madvise(allocation, allocationLength, Int32(MADV_DONTNEED))
    }

    /// Releases the memory or mapping.
    func release() {
        munmap(allocation, allocationLength)
    }
}

/// The bytes of an open regular file of `size` bytes (> 0), mapped or read into memory as
/// `residency` says. Returns nil when the system call fails (errno tells why).
func residentBytes(of fd: Int32, size: Int, residency: WeightResidency) -> ResidentBytes? {
    if residency != .mapped, residency == .memory || size <= availableMemory() / 2,
       let memory = readIntoHugePages(fd, size: size) {
        return memory
    }
    guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else { return nil }
    return ResidentBytes(mapping: mapping, length: size, size: size, inMemory: false)
}

/// Anonymous memory in whole 2 MB pages, advised as huge pages, filled from the file with
/// 64 bytes to spare (see `alignCacheLines`); nil (and nothing allocated) when any step
/// fails.
private func readIntoHugePages(_ fd: Int32, size: Int) -> ResidentBytes? {
    let hugePage = 1 << 21
    let length = (size + 64 + hugePage - 1) / hugePage * hugePage
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
    return ResidentBytes(mapping: memory, length: length, size: size, inMemory: true)
}

/// The file offset to align to cache lines: the 64-byte phase shared by the most tensor
/// bytes (tensors are usually contiguous with sizes in whole lines, so one phase fits
/// nearly all). `tensors` gives each tensor's file offset and byte count.
func dominantLinePhase(_ tensors: [(offset: Int, bytes: Int)]) -> Int {
    var bytesByPhase = [Int](repeating: 0, count: 64)
    for tensor in tensors { bytesByPhase[((tensor.offset % 64) + 64) % 64] += tensor.bytes }
    return bytesByPhase.indices.max { bytesByPhase[$0] < bytesByPhase[$1] } ?? 0
}

/// MemAvailable from /proc/meminfo in bytes; 0 where it cannot be read (so `automatic`
/// maps).
func availableMemory() -> Int {
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
