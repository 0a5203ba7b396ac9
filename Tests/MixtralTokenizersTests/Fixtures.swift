import Foundation
@testable import MixtralTokenizers

/// Locates the committed fixtures next to this file (no bundle resources needed).
enum Fixtures {
    static let directory: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    }()

    static func path(_ relative: String) -> String { directory + "/" + relative }

    struct LoadError: Error, CustomStringConvertible { let description: String }

    static func json(_ relative: String) throws -> JSONValue {
        guard let data = FileManager.default.contents(atPath: path(relative)) else {
            throw LoadError(description: "missing fixture \(relative)")
        }
        return try JSONValue.parse([UInt8](data))
    }

    static func strings() throws -> [String] {
        guard let strings = try json("vectors/strings.json").arrayValue?.compactMap(\.stringValue) else {
            throw LoadError(description: "vectors/strings.json is not an array of strings")
        }
        return strings
    }

    /// A reference vector file: `encode`, `decode` (null = same as the input string), random ids.
    struct Vectors {
        let raw: JSONValue

        init(_ relative: String) throws { raw = try Fixtures.json(relative) }
        init(raw: JSONValue) { self.raw = raw }

        func idLists(_ key: String) throws -> [[Int]] {
            guard let lists = raw[key]?.arrayValue else { throw LoadError(description: "no \(key)") }
            return lists.map { ($0.arrayValue ?? []).compactMap(\.intValue) }
        }

        func optionalStrings(_ key: String) throws -> [String?] {
            guard let list = raw[key]?.arrayValue else { throw LoadError(description: "no \(key)") }
            return list.map(\.stringValue)
        }

        /// {"index": ids} objects.
        func sparseIdLists(_ key: String) throws -> [Int: [Int]] {
            guard let members = raw[key]?.objectValue else { throw LoadError(description: "no \(key)") }
            var result: [Int: [Int]] = [:]
            for (k, v) in members { if let i = Int(k) { result[i] = (v.arrayValue ?? []).compactMap(\.intValue) } }
            return result
        }
    }
}
