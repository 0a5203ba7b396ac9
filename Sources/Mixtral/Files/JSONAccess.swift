import Foundation

extension JSONValue {
    /// An object as a dictionary; a repeated key keeps its last value (as Python's json).
    var dictionary: [String: JSONValue]? {
        objectValue.map { Dictionary($0.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 }) }
    }

    /// An integer written as one (`64`, not `64.0`), as strict readers of the formats expect.
    var exactInt: Int? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// Parses a JSON file's bytes; nil when they are not valid JSON.
    static func parse(_ data: Data) -> JSONValue? { try? parse([UInt8](data)) }
}
