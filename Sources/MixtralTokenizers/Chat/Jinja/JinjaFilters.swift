import Foundation

/// Jinja filters (`value | name(arguments)`), as Jinja2 and transformers define them.
extension JinjaBuiltins {
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
            if let indent, case .int(let n) = indent {
                // Each nested line repeats the indent: a huge one would never finish.
                guard n <= JinjaLimits.maxIndent else {
                    throw ChatTemplateError.runtime("tojson indent \(n) is larger than \(JinjaLimits.maxIndent)")
                }
                indentWidth = n
            }
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
}
