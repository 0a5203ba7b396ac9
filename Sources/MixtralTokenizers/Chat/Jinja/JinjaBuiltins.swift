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
        case "~": return .string(left.asString + right.asString)
        default: break
        }
        if case .undefined(let hint) = left { throw ChatTemplateError.undefined(hint) }
        if case .undefined(let hint) = right { throw ChatTemplateError.undefined(hint) }
        switch (op, left, right) {
        case ("+", .string(let a), .string(let b)): return .string(a + b)
        case ("+", .list(let a), .list(let b)): return .list(a + b)
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
    static func checkSize(_ size: Int, times count: Int) throws {
        guard count > 0, size > 0 else { return }
        let (total, overflow) = size.multipliedReportingOverflow(by: count)
        if overflow || total > 64 << 20 { throw ChatTemplateError.runtime("result of repetition is too large") }
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

    // MARK: Filters

    private static func argument(_ arguments: [JinjaValue], _ keywords: [(String, JinjaValue)], _ index: Int, _ name: String) -> JinjaValue? {
        if index < arguments.count { return arguments[index] }
        return keywords.first { $0.0 == name }?.1
    }

    static func filter(_ name: String, _ value: JinjaValue, _ arguments: [JinjaValue], _ keywords: [(String, JinjaValue)],
                       renderer: inout JinjaRenderer) throws -> JinjaValue {
        switch name {
        case "trim":
            let chars = argument(arguments, keywords, 0, "chars")
            return .string(pythonStrip(value.asString, chars: chars?.isNone == false ? chars?.asString : nil, left: true, right: true))
        case "upper": return .string(value.asString.uppercased())
        case "lower": return .string(value.asString.lowercased())
        case "capitalize":
            let s = value.asString
            guard let first = s.first else { return .string(s) }
            return .string(String(first).uppercased() + s.dropFirst().lowercased())
        case "title": return .string(titleCase(value.asString))
        case "length", "count": return .int(try value.length())
        case "string": return .string(value.asString)
        case "safe", "e", "escape":
            if name == "safe" { return value }
            return .string(value.asString.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&#34;")
                .replacingOccurrences(of: "'", with: "&#39;"))
        case "list": return .list(try value.iterated())
        case "first":
            return try value.iterated().first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            return try value.iterated().last ?? .undefined(hint: "No last item, sequence was empty.")
        case "reverse":
            if case .string(let s) = value { return .string(String(s.unicodeScalars.reversed().map(Character.init))) }
            return .list(try value.iterated().reversed())
        case "default", "d":
            let fallback = argument(arguments, keywords, 0, "default_value") ?? .string("")
            let boolean = argument(arguments, keywords, 1, "boolean")?.isTruthy ?? false
            if value.isUndefined || (boolean && !value.isTruthy) { return fallback }
            return value
        case "join":
            let separator = argument(arguments, keywords, 0, "d")?.asString ?? ""
            var items = try value.iterated()
            if let attribute = argument(arguments, keywords, 1, "attribute") {
                items = try items.map { try renderer.attribute(of: $0, attribute.asString) }
            }
            return .string(items.map(\.asString).joined(separator: separator))
        case "tojson":
            let indent = argument(arguments, keywords, 0, "indent")
            let ensureASCII = keywords.first { $0.0 == "ensure_ascii" }?.1.isTruthy ?? false
            let sortKeys = keywords.first { $0.0 == "sort_keys" }?.1.isTruthy ?? false
            var itemSeparator = ", ", keySeparator = ": "
            if let separators = keywords.first(where: { $0.0 == "separators" })?.1, case .list(let pair) = separators, pair.count == 2 {
                itemSeparator = pair[0].asString
                keySeparator = pair[1].asString
            }
            var indentWidth: Int? = nil
            if let indent, case .int(let n) = indent { indentWidth = n }
            if indentWidth != nil && keywords.first(where: { $0.0 == "separators" }) == nil { itemSeparator = "," }
            return .string(try value.toJSON().serialized(ensureASCII: ensureASCII, itemSeparator: itemSeparator,
                                                         keySeparator: keySeparator, indent: indentWidth, sortKeys: sortKeys))
        case "selectattr", "rejectattr":
            guard let attributeName = arguments.first?.asString else {
                throw ChatTemplateError.runtime("\(name) needs an attribute name")
            }
            let selecting = name == "selectattr"
            return .list(try value.iterated().filter { item in
                let attribute = try renderer.attribute(of: item, attributeName)
                let passed = arguments.count > 1
                    ? try test(arguments[1].asString, attribute, Array(arguments.dropFirst(2)))
                    : attribute.isTruthy
                return passed == selecting
            })
        case "select", "reject":
            let selecting = name == "select"
            return .list(try value.iterated().filter { item in
                let passed = arguments.isEmpty ? item.isTruthy : try test(arguments[0].asString, item, Array(arguments.dropFirst()))
                return passed == selecting
            })
        case "map":
            let items = try value.iterated()
            if let attribute = keywords.first(where: { $0.0 == "attribute" })?.1.asString {
                let fallback = keywords.first { $0.0 == "default" }?.1
                return .list(try items.map { item in
                    let v = try renderer.attribute(of: item, attribute)
                    return v.isUndefined ? (fallback ?? v) : v
                })
            }
            guard let filterName = arguments.first?.asString else { throw ChatTemplateError.runtime("map needs a filter or attribute") }
            return .list(try items.map { try renderer.applyFilter(filterName, $0, Array(arguments.dropFirst())) })
        case "items":
            guard case .dict(let members) = value else {
                if value.isUndefined { return .list([]) }
                throw ChatTemplateError.runtime("items filter needs a mapping")
            }
            return .list(members.map { .list([.string($0.key), $0.value]) })
        case "dictsort":
            guard case .dict(let members) = value else { throw ChatTemplateError.runtime("dictsort needs a mapping") }
            return .list(members.sorted { $0.key.lowercased() < $1.key.lowercased() }.map { .list([.string($0.key), $0.value]) })
        case "sort":
            let reverse = argument(arguments, keywords, 0, "reverse")?.isTruthy ?? false
            let attribute = keywords.first { $0.0 == "attribute" }?.1.asString
            var items = try value.iterated()
            var failure: Error? = nil
            items.sort { a, b in
                do {
                    let x = try attribute.map { try renderer.attribute(of: a, $0) } ?? a
                    let y = try attribute.map { try renderer.attribute(of: b, $0) } ?? b
                    let order = try compare(x, y)
                    return reverse ? order > 0 : order < 0
                } catch {
                    failure = error
                    return false
                }
            }
            if let failure { throw failure }
            return .list(items)
        case "unique":
            var result: [JinjaValue] = []
            for item in try value.iterated() where !result.contains(where: { $0.equals(item) }) { result.append(item) }
            return .list(result)
        case "sum":
            return try value.iterated().reduce(JinjaValue.int(0)) { try binary("+", $0, $1) }
        case "min", "max":
            let items = try value.iterated()
            guard var best = items.first else { return .undefined(hint: "empty sequence") }
            for item in items.dropFirst() {
                let order = try compare(item, best)
                if (name == "min" && order < 0) || (name == "max" && order > 0) { best = item }
            }
            return best
        case "abs":
            switch value {
            case .int(let i): return i == .min ? .float(-Double(i)) : .int(abs(i))
            case .float(let f): return .float(abs(f))
            default: throw ChatTemplateError.runtime("bad operand type for abs(): '\(value.typeName)'")
            }
        case "int":
            switch value {
            case .int: return value
            case .float(let f): return .int(try truncatedInt(f))
            case .bool(let b): return .int(b ? 1 : 0)
            case .string(let s):
                if let parsed = Int(s.trimmingCharacters(in: .whitespaces)) { return .int(parsed) }
                return .int(try argument(arguments, keywords, 0, "default")?.numericValue.map(truncatedInt) ?? 0)
            default: return .int(0)
            }
        case "float":
            switch value {
            case .int(let i): return .float(Double(i))
            case .float: return value
            case .string(let s): return .float(Double(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            default: return .float(0)
            }
        case "round":
            guard let number = value.numericValue else { throw ChatTemplateError.runtime("round needs a number") }
            let precision = argument(arguments, keywords, 0, "precision")?.numericValue ?? 0
            let scale = pow(10, precision)
            return .float((number * scale).rounded(.toNearestOrEven) / scale)
        case "replace":
            guard arguments.count >= 2 else { throw ChatTemplateError.runtime("replace needs two arguments") }
            return .string(value.asString.replacingOccurrences(of: arguments[0].asString, with: arguments[1].asString, options: .literal))
        case "indent":
            let width = min(try argument(arguments, keywords, 0, "width")?.numericValue.map(truncatedInt) ?? 4, 1024)
            let first = argument(arguments, keywords, 1, "first")?.isTruthy ?? false
            let pad = String(repeating: " ", count: width)
            let lines = value.asString.components(separatedBy: "\n")
            return .string(lines.enumerated().map { i, line in
                (i == 0 && !first) || line.isEmpty ? line : pad + line
            }.joined(separator: "\n"))
        case "wordcount":
            return .int(value.asString.split { $0.isWhitespace }.count)
        default:
            throw ChatTemplateError.unsupported(construct: "filter '\(name)'", line: 0)
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
