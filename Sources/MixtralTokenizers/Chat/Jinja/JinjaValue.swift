/// Errors of chat template parsing and rendering.
public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    /// The template is not valid Jinja.
    case syntax(String, line: Int)
    /// Valid Jinja that this renderer does not implement (the construct is named).
    case unsupported(construct: String, line: Int)
    /// The template called raise_exception(message).
    case raised(String)
    /// An undefined value was used where Jinja raises UndefinedError.
    case undefined(String)
    /// An operation on values of the wrong types (Python's TypeError), or similar runtime errors.
    case runtime(String)

    public var description: String {
        switch self {
        case .syntax(let message, let line): return "chat template syntax error at line \(line): \(message)"
        case .unsupported(let construct, let line): return "chat template uses unsupported Jinja construct '\(construct)' at line \(line)"
        case .raised(let message): return message
        case .undefined(let message): return message
        case .runtime(let message): return "chat template error: \(message)"
        }
    }
}

/// A mutable attribute bag (Jinja's namespace()): shared by reference, as in Jinja.
final class JinjaNamespace {
    var attributes: [(key: String, value: JinjaValue)] = []

    func get(_ name: String) -> JinjaValue? { attributes.first { $0.key == name }?.value }

    func set(_ name: String, _ value: JinjaValue) {
        if let index = attributes.firstIndex(where: { $0.key == name }) {
            attributes[index].value = value
        } else {
            attributes.append((name, value))
        }
    }
}

/// Values of the template language, with Python semantics.
indirect enum JinjaValue {
    /// A missing variable, attribute or key; `hint` is the message of Jinja's UndefinedError.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([JinjaValue])
    /// An ordered dictionary (Python dicts keep insertion order; keys are strings here).
    case dict([(key: String, value: JinjaValue)])
    case namespace(JinjaNamespace)
    /// A macro defined in the template.
    case macro(JinjaMacro)

    static func fromJSON(_ json: JSONValue) -> JinjaValue {
        switch json {
        case .null: return .none
        case .bool(let b): return .bool(b)
        case .number(let n): return .float(n)
        case .integer(let i): return .int(i)
        case .string(let s): return .string(s)
        case .array(let a): return .list(a.map(fromJSON))
        case .object(let o): return .dict(o.map { ($0.key, fromJSON($0.value)) })
        }
    }

    /// For tojson: Python's json.dumps of the value.
    func toJSON() throws -> JSONValue {
        switch self {
        case .undefined(let hint): throw ChatTemplateError.undefined(hint)
        case .none: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .integer(i)
        case .float(let f): return .number(f)
        case .string(let s): return .string(s)
        case .list(let items): return .array(try items.map { try $0.toJSON() })
        case .dict(let members): return .object(try members.map { ($0.key, try $0.value.toJSON()) })
        case .namespace: throw ChatTemplateError.runtime("Object of type Namespace is not JSON serializable")
        case .macro: throw ChatTemplateError.runtime("Object of type Macro is not JSON serializable")
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }
    var isNone: Bool { if case .none = self { return true }; return false }

    /// Python truthiness.
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .float(let f): return f != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .macro: return true
        }
    }

    /// Python's str().
    var asString: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return pythonRepr
        }
    }

    /// Python's repr().
    var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let f): return f.isNaN ? "nan" : f.isInfinite ? (f > 0 ? "inf" : "-inf") : pythonFloatRepr(f)
        case .string(let s): return Self.pythonStringRepr(s)
        case .list(let items): return "[" + items.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .dict(let members):
            return "{" + members.map { Self.pythonStringRepr($0.key) + ": " + $0.value.pythonRepr }.joined(separator: ", ") + "}"
        case .namespace(let ns):
            return "<Namespace " + ns.attributes.map { "\($0.key)=\($0.value.pythonRepr)" }.joined(separator: ", ") + ">"
        case .macro(let m): return "<Macro '\(m.name)'>"
        }
    }

    static func pythonStringRepr(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(scalar) == quote {
                    out += "\\" + String(quote)
                } else if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\x" + (hex.count < 2 ? "0" : "") + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append(quote)
        return out
    }

    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        }
    }

    /// Python ==.
    func equals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(a), .string(b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case let (.list(a), .list(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.equals($1) }
        case let (.dict(a), .dict(b)):
            return a.count == b.count && a.allSatisfy { entry in
                b.first { $0.key == entry.key }.map { $0.value.equals(entry.value) } ?? false
            }
        case let (.namespace(a), .namespace(b)): return a === b
        default:
            if let x = numericValue, let y = other.numericValue { return x == y }
            return false
        }
    }

    /// Numbers and booleans as Double (Python: True == 1).
    var numericValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .float(let f): return f
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Elements when iterating (for loops, filters): lists, dict keys, string characters.
    func iterated() throws -> [JinjaValue] {
        switch self {
        case .undefined: return []
        case .list(let items): return items
        case .dict(let members): return members.map { .string($0.key) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .namespace(let ns): return ns.attributes.map { .string($0.key) }
        default: throw ChatTemplateError.runtime("'\(typeName)' object is not iterable")
        }
    }

    /// Python len().
    func length() throws -> Int {
        switch self {
        case .undefined: return 0
        case .string(let s): return s.unicodeScalars.count
        case .list(let l): return l.count
        case .dict(let d): return d.count
        default: throw ChatTemplateError.runtime("object of type '\(typeName)' has no len()")
        }
    }
}

/// A `{% macro %}` definition.
final class JinjaMacro {
    let name: String
    let parameters: [(name: String, defaultValue: JinjaExpression?)]
    let body: [JinjaNode]

    init(name: String, parameters: [(name: String, defaultValue: JinjaExpression?)], body: [JinjaNode]) {
        self.name = name
        self.parameters = parameters
        self.body = body
    }
}

/// Bounds on what a chat template may do. Templates come with model files, so a hostile
/// one must end in an error, not a stack overflow, an allocation failure or a hang. Real
/// chat templates stay far inside these.
enum JinjaLimits {
    /// Nesting of blocks and of parenthesised or unary expressions in the source.
    static let maxDepth = 100
    /// Operators, filters, calls and subscripts in one expression.
    static let maxOperators = 1_000
    /// Expressions evaluated inside one another while rendering (a chain of N operators is
    /// N deep; a macro call adds its body's depth), so the stack stays small.
    static let maxEvaluationDepth = 400
    /// Loop iterations in one rendering.
    static let maxIterations = 1_000_000
    /// Bytes of a string, items of a list, and bytes of the rendered output.
    static let maxValueSize = 64 << 20
    /// tojson's indent.
    static let maxIndent = 1_000
}
