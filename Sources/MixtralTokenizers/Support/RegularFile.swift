import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a small file (a config, a tokenizer, a template, a prompt) could not be read.
public enum RegularFileError: Error, Equatable, CustomStringConvertible {
    /// A FIFO, a device, a socket or a directory: reading one could block for ever or never end.
    case notARegularFile(path: String)
    case tooLarge(path: String, bytes: Int, limit: Int)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .notARegularFile(let path): return "\(messageText(path, limit: 1000)) is not a regular file"
        case .tooLarge(let path, let bytes, let limit):
            return "\(messageText(path, limit: 1000)) has \(bytes) bytes, more than the \(limit) this file may have"
        case .unreadable(let path, let reason): return "cannot read \(messageText(path, limit: 1000)): \(reason)"
        }
    }
}

/// `readRegularFile` for tokenizer files: a file that cannot be read is a TokenizerError.
func readTokenizerFile(_ path: String) throws(TokenizerError) -> Data? {
    do {
        return try readRegularFile(path)
    } catch {
        throw .malformed(file: path, reason: error.description)
    }
}

/// The bytes of the regular file at `path`, or nil when there is no such file. The file is
/// opened without blocking (a FIFO would wait for a writer) and checked to be a regular file
/// of at most `limit` bytes before anything is read.
public func readRegularFile(_ path: String, limit: Int = 1 << 30) throws(RegularFileError) -> Data? {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else {
        if errno == ENOENT || errno == ENOTDIR { return nil }
        throw .unreadable(path: path, reason: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    var status = stat()
    guard fstat(fd, &status) == 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
    guard (status.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path: path) }
    let size = Int(status.st_size)
    guard size <= limit else { throw .tooLarge(path: path, bytes: size, limit: limit) }
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let count = bytes.withUnsafeMutableBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            return read(fd, base + done, size - done)
        }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            throw .unreadable(path: path, reason: count < 0 ? String(cString: strerror(errno)) : "the file shrank while it was read")
        }
        done += count
    }
    return Data(bytes)
}
