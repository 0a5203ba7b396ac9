#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The read-only bytes of a whole file: memory-mapped, or read into huge-page memory (see
/// `WeightResidency`). Weights are used in place, in their stored format, so a bf16
/// checkpoint stays 2 bytes per weight in memory.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private var storage: Storage

    private enum Storage {
        case resident(ResidentBytes)
        /// An empty file (mmap rejects those): a one-byte stand-in, so that `base` is valid.
        case empty(UnsafeMutableRawPointer)
    }

    public var base: UnsafeRawPointer {
        switch storage {
        case .resident(let bytes): return bytes.base
        case .empty(let standIn): return UnsafeRawPointer(standIn)
        }
    }

    public init(path: String, residency: WeightResidency = .mapped) throws(CheckpointError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_NONBLOCK)  // a FIFO must not block: it is refused below
        guard fd >= 0 else {
            throw errno == ENOENT ? .fileNotFound(path) : .unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw .unreadable(file: path, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .unreadable(file: path, reason: "not a regular file")
        }
        size = Int(info.st_size)
        if size == 0 {
            // mmap rejects empty files; an empty buffer still lets the parser report "truncated".
            storage = .empty(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            return
        }
        guard let bytes = residentBytes(of: fd, size: size, residency: residency) else {
            throw .unreadable(file: path, reason: "mmap failed: " + String(cString: strerror(errno)))
        }
        storage = .resident(bytes)
    }

    deinit {
        switch storage {
        case .resident(let bytes): bytes.release()
        case .empty(let standIn): standIn.deallocate()
        }
    }

    /// See `ResidentBytes.alignCacheLines`: before tensor pointers are handed out.
    func alignCacheLines(fileOffset: Int) {
        guard case .resident(var bytes) = storage else { return }
        bytes.alignCacheLines(fileOffset: fileOffset)
        storage = .resident(bytes)
    }

    /// See `ResidentBytes.dropMappedPages`.
    func dropMappedPages() {
        if case .resident(let bytes) = storage { bytes.dropMappedPages() }
    }

    /// See `ResidentBytes.mappedFileOffset`.
    func mappedFileOffset(of pointer: UnsafeRawPointer) -> Int? {
        guard case .resident(let bytes) = storage else { return nil }
        return bytes.mappedFileOffset(of: pointer)
    }

    /// The bytes [offset, offset+count) as a buffer, or nil when out of bounds.
    public func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else { return nil }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }
}
