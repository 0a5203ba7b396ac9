import Foundation

/// Operators, filters, tests, global functions and methods of the supported subset.
enum JinjaBuiltins {
    // MARK: Operators

    static func binary(_ op: String, _ left: JinjaValue, _ right: JinjaValue) throws -> JinjaValue {
        switch op {
        case "==": return .bool(left.equals(right))
        case "!=": return .bool(!left.equals(right))
        case "<", ">", "<=", ">=":
            let order = try compare(left, right)
            switch op {
            case "<": return .bool(order < 0)
            case ">": return .bool(order > 0)
            case "<=": return .bool(order <= 0)
            default: return .bool(order >= 0)
            }
        case "in": return .bool(try contains(right, left))
        case "not in": return .bool(!(try contains(right, left)))
        case "~":
            let (a, b) = (left.asString, right.asString)
            try checkSize(a.utf8.count + b.utf8.count, times: 1)
            return .string(a + b)
        default: break
        }
        if case .undefined(let hint) = left { throw ChatTemplateError.undefined(hint) }
        if case .undefined(let hint) = right { throw ChatTemplateError.undefined(hint) }
        switch (op, left, right) {
        case ("+", .string(let a), .string(let b)):
            try checkSize(a.utf8.count + b.utf8.count, times: 1)
            return .string(a + b)
        case ("+", .list(let a), .list(let b)):
            try checkSize(a.count + b.count, times: 1)
            return .list(a + b)
        case ("*", .string(let s), .int(let n)), ("*", .int(let n), .string(let s)):
            try checkSize(s.utf8.count, times: n)
            return .string(String(repeating: s, count: max(0, n)))
        case ("*", .list(let l), .int(let n)), ("*", .int(let n), .list(let l)):
            try checkSize(l.count, times: n)
            return .list(Array((0..<max(0, n)).map { _ in l }.joined()))
        case ("%", .string, _):
            throw ChatTemplateError.unsupported(construct: "printf-style string formatting (%)", line: 0)
        default: break
        }
        guard let a = left.numericValue, let b = right.numericValue else {
            throw ChatTemplateError.runtime("unsupported operand type(s) for \(op): '\(left.typeName)' and '\(right.typeName)'")
        }
        // Both int (or bool): integer arithmetic, as in Python.
        func exactInt(_ v: JinjaValue) -> Int? {
            switch v {
            case .int(let i): return i
            case .bool(let b): return b ? 1 : 0
            default: return nil
            }
        }
        let integers: (Int, Int)? = exactInt(left).flatMap { x in exactInt(right).map { (x, $0) } }
        switch op {
        case "+": if let (x, y) = integers { return .int(x &+ y) }; return .float(a + b)
        case "-": if let (x, y) = integers { return .int(x &- y) }; return .float(a - b)
        case "*": if let (x, y) = integers { return .int(x &* y) }; return .float(a * b)
        case "/":
            guard b != 0 else { throw ChatTemplateError.runtime("division by zero") }
            return .float(a / b)
        case "//":
            guard b != 0 else { throw ChatTemplateError.runtime("integer division or modulo by zero") }
            if let (x, y) = integers { return .int(try truncatedInt((Double(x) / Double(y)).rounded(.down))) }
            return .float((a / b).rounded(.down))
        case "%":
            guard b != 0 else { throw ChatTemplateError.runtime("integer division or modulo by zero") }
            if let (x, y) = integers {
                let r = x.remainderReportingOverflow(dividingBy: y).partialValue
                return .int(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            }
            let r = a.truncatingRemainder(dividingBy: b)
            return .float(r != 0 && (r < 0) != (b < 0) ? r + b : r)
        case "**":
            let power = pow(a, b)
            if integers != nil, b >= 0, let exact = Int(exactly: power.rounded()), abs(power) < 9.0e15 { return .int(exact) }
            return .float(power)
        default:
            throw ChatTemplateError.unsupported(construct: "operator \(op)", line: 0)
        }
    }

    /// Renders are for prompts: refuse values that would need more than 64 MiB.
    /// Strings and lists a template builds stay under `JinjaLimits.maxValueSize` (a string
    /// doubled 40 times would otherwise ask for a terabyte).
    static func checkSize(_ size: Int, times count: Int) throws {
        guard count > 0, size > 0 else { return }
        let (total, overflow) = size.multipliedReportingOverflow(by: count)
        if overflow || total > JinjaLimits.maxValueSize {
            throw ChatTemplateError.runtime("a value of more than \(JinjaLimits.maxValueSize) bytes or items is too large for a chat template")
        }
    }

    /// A Double as Int when it fits (Python's int() truncates toward zero).
    static func truncatedInt(_ value: Double) throws -> Int {
        guard value.isFinite, let result = Int(exactly: value.rounded(.towardZero)) else {
            throw ChatTemplateError.runtime("cannot convert float \(pythonFloatRepr(value)) to integer")
        }
        return result
    }

    static func compare(_ left: JinjaValue, _ right: JinjaValue) throws -> Int {
        if let a = left.numericValue, let b = right.numericValue { return a < b ? -1 : a > b ? 1 : 0 }
        if case .string(let a) = left, case .string(let b) = right {
            // Python compares strings by code point.
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) ? -1 : (a.unicodeScalars.elementsEqual(b.unicodeScalars) ? 0 : 1)
        }
        if case .undefined(let hint) = left { throw ChatTemplateError.undefined(hint) }
        if case .undefined(let hint) = right { throw ChatTemplateError.undefined(hint) }
        throw ChatTemplateError.runtime("'<' not supported between instances of '\(left.typeName)' and '\(right.typeName)'")
    }

    static func contains(_ container: JinjaValue, _ element: JinjaValue) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let needle) = element else {
                throw ChatTemplateError.runtime("'in <string>' requires string as left operand, not \(element.typeName)")
            }
            return needle.isEmpty || s.range(of: needle, options: .literal) != nil
        case .list(let items): return items.contains { $0.equals(element) }
        case .dict(let members):
            guard case .string(let key) = element else { return false }
            return members.contains { $0.key == key }
        case .undefined(let hint): throw ChatTemplateError.undefined(hint)
        default: throw ChatTemplateError.runtime("argument of type '\(container.typeName)' is not iterable")
        }
    }

    // MARK: Tests

    static func test(_ name: String, _ value: JinjaValue, _ arguments: [JinjaValue]) throws -> Bool {
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "true": if case .bool(true) = value { return true }; return false
        case "false": if case .bool(false) = value { return true }; return false
        case "boolean": if case .bool = value { return true }; return false
        case "string": if case .string = value { return true }; return false
        case "number": switch value { case .int, .float, .bool: return true; default: return false }
        case "integer": switch value { case .int: return true; default: return false }
        case "float": if case .float = value { return true }; return false
        case "mapping": if case .dict = value { return true }; return false
        case "sequence", "iterable":
            switch value { case .list, .string, .dict: return true; default: return false }
        case "callable": if case .macro = value { return true }; return false
        case "equalto", "eq", "==", "sameas":
            guard let other = arguments.first else { throw ChatTemplateError.runtime("test \(name) needs an argument") }
            return value.equals(other)
        case "ne", "!=":
            guard let other = arguments.first else { throw ChatTemplateError.runtime("test \(name) needs an argument") }
            return !value.equals(other)
        case "lt", "<", "gt", ">", "le", "<=", "ge", ">=":
            guard let other = arguments.first else { throw ChatTemplateError.runtime("test \(name) needs an argument") }
            let order = try compare(value, other)
            switch name {
            case "lt", "<": return order < 0
            case "gt", ">": return order > 0
            case "le", "<=": return order <= 0
            default: return order >= 0
            }
        case "in":
            guard let other = arguments.first else { throw ChatTemplateError.runtime("test in needs an argument") }
            return try contains(other, value)
        case "divisibleby":
            guard case .int(let n) = value, case .int(let d)? = arguments.first, d != 0 else { return false }
            return n % d == 0
        case "odd": if case .int(let n) = value { return n % 2 != 0 }; return false
        case "even": if case .int(let n) = value { return n % 2 == 0 }; return false
        case "lower": return value.asString == value.asString.lowercased()
        case "upper": return value.asString == value.asString.uppercased()
        default:
            throw ChatTemplateError.unsupported(construct: "test '\(name)'", line: 0)
        }
    }

    // MARK: Global functions

    static func function(_ name: String, _ arguments: [JinjaValue], _ keywords: [(String, JinjaValue)]) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            throw ChatTemplateError.raised(arguments.first?.asString ?? "")
        case "namespace":
            let namespace = JinjaNamespace()
            if case .dict(let members)? = arguments.first { for m in members { namespace.set(m.key, m.value) } }
            for (key, value) in keywords { namespace.set(key, value) }
            return .namespace(namespace)
        case "range":
            let ints = try arguments.map { v -> Int in
                guard case .int(let i) = v else { throw ChatTemplateError.runtime("range() needs integers") }
                return i
            }
            let span = ints.count == 1 ? ints[0] : ints.count >= 2 ? (ints[1].subtractingReportingOverflow(ints[0]).partialValue) : 0
            guard abs(span) <= 10_000_000 else { throw ChatTemplateError.runtime("range() is too large for a chat template") }
            switch ints.count {
            case 1: return .list((0..<max(0, ints[0])).map { .int($0) })
            case 2: return .list(ints[0] < ints[1] ? (ints[0]..<ints[1]).map { .int($0) } : [])
            case 3:
                guard ints[2] != 0 else { throw ChatTemplateError.runtime("range() step must not be zero") }
                return .list(Array(stride(from: ints[0], to: ints[1], by: ints[2])).map { .int($0) })
            default: throw ChatTemplateError.runtime("range expected 1 to 3 arguments")
            }
        case "dict":
            var members: [(key: String, value: JinjaValue)] = []
            if case .dict(let base)? = arguments.first { members = base }
            for (key, value) in keywords {
                if let i = members.firstIndex(where: { $0.key == key }) { members[i].value = value } else { members.append((key, value)) }
            }
            return .dict(members)
        case "strftime_now":
            guard let format = arguments.first?.asString else { throw ChatTemplateError.runtime("strftime_now needs a format") }
            return .string(strftime(format, Date()))
        default:
            throw ChatTemplateError.unsupported(construct: "function '\(name)'", line: 0)
        }
    }

    /// Python's strftime for the common directives.
    static func strftime(_ format: String, _ date: Date) -> String {
        let calendar = Calendar(identifier: .gregorian)
        let c = calendar.dateComponents(in: TimeZone.current, from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        func two(_ n: Int?) -> String { let v = n ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        var out = ""
        var percent = false
        for ch in format {
            if percent {
                percent = false
                switch ch {
                case "Y": out += String(c.year ?? 0)
                case "m": out += two(c.month)
                case "d": out += two(c.day)
                case "H": out += two(c.hour)
                case "M": out += two(c.minute)
                case "S": out += two(c.second)
                case "B": out += months[max(0, (c.month ?? 1) - 1)]
                case "b": out += String(months[max(0, (c.month ?? 1) - 1)].prefix(3))
                case "A": out += days[max(0, (c.weekday ?? 1) - 1)]
                case "a": out += String(days[max(0, (c.weekday ?? 1) - 1)].prefix(3))
                case "y": out += two((c.year ?? 0) % 100)
                case "%": out += "%"
                default: out += "%" + String(ch)
                }
            } else if ch == "%" {
                percent = true
            } else {
                out.append(ch)
            }
        }
        return out
    }

    // MARK: Methods

    static func method(_ name: String, on value: JinjaValue, _ arguments: [JinjaValue], _ keywords: [(String, JinjaValue)]) throws -> JinjaValue {
        switch value {
        case .string(let s):
            switch name {
            case "strip", "lstrip", "rstrip":
                let chars = arguments.first.flatMap { $0.isNone ? nil : $0.asString }
                return .string(pythonStrip(s, chars: chars, left: name != "rstrip", right: name != "lstrip"))
            case "upper": return .string(s.uppercased())
            case "lower": return .string(s.lowercased())
            case "title": return .string(titleCase(s))
            case "capitalize":
                guard let first = s.first else { return .string(s) }
                return .string(String(first).uppercased() + s.dropFirst().lowercased())
            case "startswith", "endswith":
                let candidates: [JinjaValue]
                if case .list(let items)? = arguments.first { candidates = items } else { candidates = arguments.prefix(1).map { $0 } }
                return .bool(candidates.contains { candidate in
                    let c = candidate.asString
                    return name == "startswith" ? s.unicodeScalars.starts(with: c.unicodeScalars)
                        : s.unicodeScalars.reversed().starts(with: c.unicodeScalars.reversed())
                })
            case "split":
                let separator = arguments.first.flatMap { $0.isNone ? nil : $0.asString }
                let limit = arguments.count > 1 ? (try arguments[1].numericValue.map(truncatedInt) ?? -1) : -1
                if let separator, !separator.isEmpty {
                    var parts = s.components(separatedBy: separator)
                    if limit >= 0 && parts.count > limit + 1 {
                        parts = Array(parts[..<limit]) + [parts[limit...].joined(separator: separator)]
                    }
                    return .list(parts.map { .string($0) })
                }
                return .list(s.split { $0.isWhitespace }.map { .string(String($0)) })
            case "replace":
                guard arguments.count >= 2 else { throw ChatTemplateError.runtime("replace needs two arguments") }
                return .string(s.replacingOccurrences(of: arguments[0].asString, with: arguments[1].asString, options: .literal))
            case "find":
                guard let needle = arguments.first?.asString, let range = s.range(of: needle, options: .literal) else { return .int(-1) }
                return .int(s.unicodeScalars.distance(from: s.unicodeScalars.startIndex, to: range.lowerBound))
            case "count":
                guard let needle = arguments.first?.asString, !needle.isEmpty else { return .int(0) }
                return .int(s.components(separatedBy: needle).count - 1)
            case "join":
                return .string(try (arguments.first ?? .list([])).iterated().map(\.asString).joined(separator: s))
            case "isdigit": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType == .decimal })
            case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isWhitespace })
            default: break
            }
        case .dict(let members):
            switch name {
            case "items": return .list(members.map { .list([.string($0.key), $0.value]) })
            case "keys": return .list(members.map { .string($0.key) })
            case "values": return .list(members.map(\.value))
            case "get":
                guard let key = arguments.first?.asString else { throw ChatTemplateError.runtime("get needs a key") }
                return members.first { $0.key == key }?.value ?? (arguments.count > 1 ? arguments[1] : .none)
            default: break
            }
        case .undefined(let hint):
            throw ChatTemplateError.undefined(hint)
        default:
            break
        }
        throw ChatTemplateError.unsupported(construct: "method '\(name)' on \(value.typeName)", line: 0)
    }

    // MARK: String helpers

    /// Python's str.strip / lstrip / rstrip.
    static func pythonStrip(_ s: String, chars: String?, left: Bool, right: Bool) -> String {
        var scalars = Substring(s).unicodeScalars
        let set = chars.map { Set($0.unicodeScalars) }
        func strips(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isPythonWhitespace(c) }
        if left { while let first = scalars.first, strips(first) { scalars.removeFirst() } }
        if right { while let last = scalars.last, strips(last) { scalars.removeLast() } }
        return String(scalars)
    }

    /// str.isspace(): Unicode White_Space plus the separators Python also counts (U+001C...U+001F).
    static func isPythonWhitespace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
    }

    /// Python's str.title(): words are runs of cased letters.
    static func titleCase(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for ch in s {
            let isCased = ch.isLetter
            out += previousCased ? String(ch).lowercased() : String(ch).uppercased()
            previousCased = isCased
        }
        return out
    }
}
