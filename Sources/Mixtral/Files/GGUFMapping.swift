#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file, read-only: mapped, or read into huge-page memory (`WeightResidency`);
/// released with the object. (Private to the GGUF reader so that it cannot collide with
/// other file code.)
final class GGUFMapping: @unchecked Sendable {
    let path: String
    /// The bytes; nil for an empty file, which cannot be mapped.
    private var resident: ResidentBytes?
    let count: Int
    /// Start of the bytes; nil for an empty file.
    var base: UnsafeRawPointer? { resident?.base }

    init(path: String, residency: WeightResidency = .mapped) throws(GGUFError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_NONBLOCK)  // a FIFO must not block: it is refused below
        guard fd >= 0 else {
            throw .cannotOpen(path: path, reason: GGUFMapping.errnoText())
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw .cannotOpen(path: path, reason: GGUFMapping.errnoText())
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .cannotOpen(path: path, reason: "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 {
            resident = nil
            count = 0
            return
        }
        guard let bytes = residentBytes(of: fd, size: size, residency: residency) else {
            throw .cannotOpen(path: path, reason: "mmap failed: " + GGUFMapping.errnoText())
        }
        resident = bytes
        count = size
    }

    deinit {
        resident?.release()
    }

    /// See `ResidentBytes.alignCacheLines`: before tensor pointers are handed out.
    func alignCacheLines(fileOffset: Int) {
        resident?.alignCacheLines(fileOffset: fileOffset)
    }

    /// See `ResidentBytes.dropMappedPages`.
    func dropMappedPages() { resident?.dropMappedPages() }

    /// See `ResidentBytes.mappedFileOffset`.
    func mappedFileOffset(of pointer: UnsafeRawPointer) -> Int? {
        resident?.mappedFileOffset(of: pointer)
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    private static func errnoText() -> String {
        guard let text = strerror(errno) else { return "errno \(errno)" }
        return String(cString: text)
    }
}
