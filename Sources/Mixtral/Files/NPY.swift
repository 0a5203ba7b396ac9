import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// numpy's .npy format, version 1.0, for little-endian float32 arrays: magic "\x93NUMPY",
/// version 1 0, u16 header length, a Python dict literal padded with spaces to a multiple
/// of 64 bytes and ending in "\n", then the C-order data.
public enum NPY {
    public enum Error: Swift.Error, CustomStringConvertible {
        case malformed(file: String, reason: String)
        case writeFailed(file: String, reason: String)

        public var description: String {
            switch self {
            case .malformed(let file, let reason): return "malformed .npy file \(file): \(reason)"
            case .writeFailed(let file, let reason): return "cannot write \(file): \(reason)"
            }
        }
    }

    /// Encodes a float32 array of the given shape.
    public static func encode(_ values: [Float], shape: [Int]) -> Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }

    /// Writes atomically (a temporary file, then rename): a failed write leaves any existing
    /// file untouched. POSIX writes in a loop: Foundation's Data.write on Linux garbles
    /// files of 2 GB and more (a 55-chunk perplexity run saves 2.7 GB of logits).
    /// A path that names something other than a regular file (a symbolic link, a device
    /// such as /dev/full, a FIFO, a folder) is refused: renaming over it would replace it.
    public static func write(_ values: [Float], shape: [Int], to path: String) throws(NPY.Error) {
        var existing = stat()
        if lstat(path, &existing) == 0 && (existing.st_mode & S_IFMT) != S_IFREG {
            throw .writeFailed(file: path, reason: "it exists and is not a regular file (a link, device, FIFO or folder); not replacing it")
        }
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw .writeFailed(file: path, reason: String(cString: strerror(errno))) }
        let failure: String? = encode(values, shape: shape).withUnsafeBytes { raw -> String? in
            var offset = 0
            while offset < raw.count {
                guard let base = raw.baseAddress else { return "no data" }
                let written = posixWrite(descriptor, base + offset, min(raw.count - offset, 1 << 30))
                if written < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                offset += written
            }
            return nil
        }
        let closed = close(descriptor) == 0
        if let failure = failure ?? (closed ? nil : String(cString: strerror(errno))) {
            unlink(temporary)
            throw .writeFailed(file: path, reason: failure)
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .writeFailed(file: path, reason: reason)
        }
    }

    /// The whole file, read with POSIX reads in a loop (see `write`).
    static func readFile(_ path: String) throws(NPY.Error) -> [UInt8] {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw .malformed(file: path, reason: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw .malformed(file: path, reason: "not a regular file")
        }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        let failure: String? = bytes.withUnsafeMutableBytes { raw -> String? in
            var offset = 0
            while offset < raw.count {
                guard let base = raw.baseAddress else { return "no data" }
                let count = posixRead(descriptor, base + offset, min(raw.count - offset, 1 << 30))
                if count < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                if count == 0 { return "the file ended early" }
                offset += count
            }
            return nil
        }
        if let failure { throw .malformed(file: path, reason: failure) }
        return bytes
    }

    /// Reads a little-endian float32 C-order array: (values, shape).
    public static func read(path: String) throws(NPY.Error) -> (values: [Float], shape: [Int]) {
        let bytes = try readFile(path)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw .malformed(file: path, reason: "no NUMPY magic")
        }
        let major = bytes[6]
        let headerStart = major == 1 ? 10 : 12
        guard major >= 1, major <= 3, bytes.count >= headerStart else { throw .malformed(file: path, reason: "unsupported version \(major)") }
        let headerLength = major == 1
            ? Int(bytes[8]) | Int(bytes[9]) << 8
            : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        guard headerStart + headerLength <= bytes.count,
              let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8) else {
            throw .malformed(file: path, reason: "header runs past the end")
        }
        guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False") else {
            throw .malformed(file: path, reason: "only little-endian float32 C-order arrays are supported")
        }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw .malformed(file: path, reason: "no shape in header")
        }
        let shape = header[open.upperBound..<close].split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        // The element count, without overflow: a shape that claims more than the file holds
        // is refused, not multiplied until it traps.
        let dataStart = headerStart + headerLength
        let available = (bytes.count - dataStart) / 4
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard dimension >= 0, !overflow, product <= available else {
                throw .malformed(file: path, reason: "shape \(shape) needs more than the \(bytes.count - dataStart) data bytes the file holds")
            }
            count = product
        }
        guard bytes.count - dataStart == count * 4 else {
            throw .malformed(file: path, reason: "expected \(count * 4) data bytes, found \(bytes.count - dataStart)")
        }
        let values = bytes[dataStart...].withUnsafeBytes { raw in
            (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        return (values, shape)
    }
}

// The C library's read and write (`NPY.write` is a member of the same name).
private func posixWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(descriptor, buffer, count) }
private func posixRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { read(descriptor, buffer, count) }
