import Mixtral

/// Typed access to the fields of a JSON request body. A field that is absent or null reads
/// as nil; a field of the wrong type is a 400 error naming it. Unknown fields are ignored,
/// as OpenAI's clients send fields a server may not know.
struct RequestFields {
    let members: [(key: String, value: JSONValue)]

    init(body: [UInt8]) throws(APIError) {
        let value: JSONValue
        do {
            value = try JSONValue.parse(body)
        } catch {
            throw .invalidRequest("The request body is not valid JSON: \(error)", code: "invalid_json")
        }
        guard let members = value.objectValue else {
            throw .invalidRequest("The request body must be a JSON object", code: "invalid_json")
        }
        self.members = members
    }

    init(object members: [(key: String, value: JSONValue)]) {
        self.members = members
    }

    subscript(key: String) -> JSONValue? {
        guard let value = members.last(where: { $0.key == key })?.value, !value.isNull else { return nil }
        return value
    }

    func string(_ key: String) throws(APIError) -> String? {
        guard let value = self[key] else { return nil }
        guard let string = value.stringValue else { throw .wrongType(key, expected: "a string") }
        return string
    }

    func bool(_ key: String) throws(APIError) -> Bool? {
        guard let value = self[key] else { return nil }
        guard let flag = value.boolValue else { throw .wrongType(key, expected: "a boolean") }
        return flag
    }

    func int(_ key: String) throws(APIError) -> Int? {
        guard let value = self[key] else { return nil }
        guard let number = value.intValue else { throw .wrongType(key, expected: "an integer") }
        return number
    }

    func number(_ key: String) throws(APIError) -> Double? {
        guard let value = self[key] else { return nil }
        guard let number = value.doubleValue, number.isFinite else { throw .wrongType(key, expected: "a number") }
        return number
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let value = try int(key) else { return nil }
        guard range.contains(value) else {
            throw .invalidValue(key, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws(APIError) -> Double? {
        guard let value = try number(key) else { return nil }
        guard range.contains(value) else {
            throw .invalidValue(key, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    func object(_ key: String) throws(APIError) -> RequestFields? {
        guard let value = self[key] else { return nil }
        guard let members = value.objectValue else { throw .wrongType(key, expected: "an object") }
        return RequestFields(object: members)
    }

    /// `stop`: a string or a list of strings.
    func stopStrings(_ key: String, limit: Int) throws(APIError) -> [String] {
        guard let value = self[key] else { return [] }
        if let single = value.stringValue { return [single] }
        guard let list = value.arrayValue else { throw .wrongType(key, expected: "a string or a list of strings") }
        var strings: [String] = []
        for item in list {
            guard let string = item.stringValue else { throw .wrongType(key, expected: "a string or a list of strings") }
            strings.append(string)
        }
        guard strings.count <= limit else { throw .invalidValue(key, "'\(key)' takes at most \(limit) strings") }
        return strings
    }
}
