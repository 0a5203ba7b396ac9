import Foundation

/// Writes a `.safetensors` file tensor by tensor: the header is built from the tensors'
/// descriptions first, then each tensor's bytes are produced and written in order, so a
/// checkpoint larger than memory streams through.
struct SafeTensorsWriter {
    struct Entry {
        let name: String
        let dtype: String
        let shape: [Int]
        let byteCount: Int
        /// Writes exactly `byteCount` bytes through the sink.
        let write: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
    }

    /// Writes to `path.partial`, then renames, so a failure never leaves a half file under
    /// the final name.
    static func write(_ entries: [Entry], metadata: [String: String] = ["format": "pt"], to path: String) throws {
        var header = "{"
        if !metadata.isEmpty {
            header += "\"__metadata__\":{" + metadata.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\(quoted($0.value))" }
                .joined(separator: ",") + "},"
        }
        var offset = 0
        header += entries.map { entry in
            defer { offset += entry.byteCount }
            return "\(quoted(entry.name)):{\"dtype\":\"\(entry.dtype)\",\"shape\":[\(entry.shape.map(String.init).joined(separator: ","))],"
                + "\"data_offsets\":[\(offset),\(offset + entry.byteCount)]}"
        }.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        let partial = path + ".partial"
        guard FileManager.default.createFile(atPath: partial, contents: nil),
              let handle = FileHandle(forWritingAtPath: partial) else {
            throw CheckpointError.unreadable(file: partial, reason: "cannot create the file")
        }
        do {
            var length = UInt64(headerBytes.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: headerBytes)
            for entry in entries {
                var written = 0
                try entry.write { bytes in
                    try handle.write(contentsOf: Data(bytes))
                    written += bytes.count
                }
                guard written == entry.byteCount else {
                    throw CheckpointError.malformedTensor(file: path, tensor: entry.name,
                                                          reason: "wrote \(written) bytes, expected \(entry.byteCount)")
                }
            }
            try handle.close()
            try FileManager.default.moveItem(atPath: partial, toPath: path)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }

    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
