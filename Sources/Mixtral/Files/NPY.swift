import Foundation

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

    /// Writes atomically: a failed write leaves any existing file untouched.
    public static func write(_ values: [Float], shape: [Int], to path: String) throws(NPY.Error) {
        do {
            try encode(values, shape: shape).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .writeFailed(file: path, reason: error.localizedDescription)
        }
    }

    /// Reads a little-endian float32 C-order array: (values, shape).
    public static func read(path: String) throws(NPY.Error) -> (values: [Float], shape: [Int]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw .malformed(file: path, reason: "cannot read") }
        let bytes = [UInt8](data)
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
        let count = shape.reduce(1, *)
        let dataStart = headerStart + headerLength
        guard bytes.count - dataStart == count * 4 else {
            throw .malformed(file: path, reason: "expected \(count * 4) data bytes, found \(bytes.count - dataStart)")
        }
        let values = bytes[dataStart...].withUnsafeBytes { raw in
            (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        return (values, shape)
    }
}
