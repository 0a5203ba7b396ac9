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
    public let base: UnsafeRawPointer
    public let size: Int
    /// Bytes to release (the mapping, or whole 2 MB pages of memory).
    private let length: Int

    public init(path: String, residency: WeightResidency = .mapped) throws(CheckpointError) {
        self.path = path
        let fd = open(path, O_RDONLY)
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
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            length = 0
            return
        }
        guard let bytes = residentBytes(of: fd, size: size, residency: residency) else {
            throw .unreadable(file: path, reason: "mmap failed: " + String(cString: strerror(errno)))
        }
        (base, length) = bytes
    }

    deinit {
        if size == 0 {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        } else {
            releaseResidentBytes(base, length: length)
        }
    }

    /// The bytes [offset, offset+count) as a buffer, or nil when out of bounds.
    public func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else { return nil }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }
}
