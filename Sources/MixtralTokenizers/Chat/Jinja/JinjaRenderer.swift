import Foundation

/// Renders parsed templates with the semantics of Jinja2 as transformers configures it for chat
/// templates: default Undefined (prints as "", fails on attribute access and arithmetic), the
/// loopcontrols extension, `raise_exception`, `strftime_now` and transformers' `tojson`.
struct JinjaRenderer {
    private var scopes: [[String: JinjaValue]]
    private var output = "" {
        didSet {
            if output.utf8.count > JinjaLimits.maxValueSize { outputOverflowed = true }
        }
    }
    private var outputOverflowed = false
    /// Expressions being evaluated, nested (macro calls and recursion included).
    private var depth = 0
    /// Loop iterations so far.
    private var iterations = 0

    private enum LoopControl: Error { case breakLoop, continueLoop }

    init(globals: [String: JinjaValue]) {
        scopes = [globals]
    }

    static func render(_ nodes: [JinjaNode], globals: [String: JinjaValue]) throws -> String {
        var renderer = JinjaRenderer(globals: globals)
        do {
            try renderer.execute(nodes)
        } catch is LoopControl {
            throw ChatTemplateError.syntax("break or continue outside a loop", line: 0)
        }
        return renderer.output
    }

    // MARK: Variables

    private func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() {
            if let value = scope[name] { return value }
        }
        return .undefined(hint: "'\(name)' is undefined")
    }

    private mutating func assign(_ name: String, _ value: JinjaValue) {
        scopes[scopes.count - 1][name] = value
    }

    // MARK: Statements

    private mutating func execute(_ nodes: [JinjaNode]) throws {
        for node in nodes {
            if outputOverflowed {
                throw ChatTemplateError.runtime("the rendered text is larger than \(JinjaLimits.maxValueSize) bytes")
            }
            switch node {
            case .text(let text):
                output += text
            case .output(let expression):
                output += try evaluate(expression).asString
            case .conditional(let branches, let otherwise):
                var done = false
                for branch in branches where try evaluate(branch.condition).isTruthy {
                    try execute(branch.body)
                    done = true
                    break
                }
                if !done { try execute(otherwise) }
            case .loop(let targets, let iterableExpression, let filter, let body, let otherwise):
                try executeLoop(targets: targets, iterable: iterableExpression, filter: filter, body: body, otherwise: otherwise)
            case .set(let target, let expression):
                let value = try evaluate(expression)
                switch target {
                case .names(let names):
                    if names.count == 1 {
                        assign(names[0], value)
                    } else {
                        let items = try value.iterated()
                        guard items.count == names.count else {
                            throw ChatTemplateError.runtime("cannot unpack \(items.count) values into \(names.count) names")
                        }
                        for (name, item) in zip(names, items) { assign(name, item) }
                    }
                case .attribute(let object, let attribute):
                    guard case .namespace(let namespace) = lookup(object) else {
                        throw ChatTemplateError.runtime("cannot assign attribute on non-namespace object '\(object)'")
                    }
                    namespace.set(attribute, value)
                }
            case .setBlock(let name, let body):
                let saved = output
                output = ""
                try execute(body)
                let captured = output
                output = saved
                assign(name, .string(captured))
            case .macro(let macro):
                assign(macro.name, .macro(macro))
            case .breakLoop:
                throw LoopControl.breakLoop
            case .continueLoop:
                throw LoopControl.continueLoop
            }
        }
    }

    private mutating func executeLoop(targets: [String], iterable: JinjaExpression, filter: JinjaExpression?,
                                      body: [JinjaNode], otherwise: [JinjaNode]) throws {
        // An undefined iterable is an empty loop, as in Jinja.
        var items = try evaluate(iterable).iterated()
        scopes.append([:])
        defer { scopes.removeLast() }
        if let filter {
            var kept: [JinjaValue] = []
            for item in items {
                try bindTargets(targets, item)
                if try evaluate(filter).isTruthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            try execute(otherwise)
            return
        }
        for (index, item) in items.enumerated() {
            iterations += 1
            guard iterations <= JinjaLimits.maxIterations else {
                throw ChatTemplateError.runtime("the template runs more than \(JinjaLimits.maxIterations) loop iterations")
            }
            try bindTargets(targets, item)
            let loop: [(key: String, value: JinjaValue)] = [
                ("index", .int(index + 1)), ("index0", .int(index)),
                ("revindex", .int(items.count - index)), ("revindex0", .int(items.count - index - 1)),
                ("first", .bool(index == 0)), ("last", .bool(index == items.count - 1)),
                ("length", .int(items.count)),
                ("previtem", index > 0 ? items[index - 1] : .undefined(hint: "there is no previous item")),
                ("nextitem", index + 1 < items.count ? items[index + 1] : .undefined(hint: "there is no next item")),
            ]
            assign("loop", .dict(loop))
            do {
                try execute(body)
            } catch LoopControl.breakLoop {
                break
            } catch LoopControl.continueLoop {
                continue
            }
        }
    }

    private mutating func bindTargets(_ targets: [String], _ item: JinjaValue) throws {
        if targets.count == 1 {
            assign(targets[0], item)
            return
        }
        let parts = try item.iterated()
        guard parts.count == targets.count else {
            throw ChatTemplateError.runtime("cannot unpack \(parts.count) values into \(targets.count) loop variables")
        }
        for (name, part) in zip(targets, parts) { assign(name, part) }
    }

    // MARK: Expressions

    private mutating func evaluate(_ expression: JinjaExpression) throws -> JinjaValue {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JinjaLimits.maxEvaluationDepth else {
            throw ChatTemplateError.runtime("expressions or macro calls nest more than \(JinjaLimits.maxEvaluationDepth) deep")
        }
        return try evaluateNode(expression)
    }

    private mutating func evaluateNode(_ expression: JinjaExpression) throws -> JinjaValue {
        switch expression {
        case .literal(let value):
            return value
        case .name(let name):
            return lookup(name)
        case .list(let items):
            return .list(try items.map { try evaluate($0) })
        case .dict(let members):
            var result: [(key: String, value: JinjaValue)] = []
            for member in members {
                let key = try evaluate(member.key)
                guard case .string(let text) = key else {
                    throw ChatTemplateError.unsupported(construct: "dictionary keys that are not strings", line: 0)
                }
                let value = try evaluate(member.value)
                if let i = result.firstIndex(where: { $0.key == text }) { result[i].value = value } else { result.append((text, value)) }
            }
            return .dict(result)
        case .attribute(let base, let name):
            return try attribute(of: try evaluate(base), name)
        case .`subscript`(let base, let keyExpression):
            return try item(of: try evaluate(base), try evaluate(keyExpression))
        case .slice(let base, let start, let stop, let step):
            return try slice(try evaluate(base), start: try start.map { try evaluate($0) },
                             stop: try stop.map { try evaluate($0) }, step: try step.map { try evaluate($0) })
        case .call(let callee, let argumentExpressions, let keywordExpressions):
            let arguments = try argumentExpressions.map { try evaluate($0) }
            var keywords: [(String, JinjaValue)] = []
            for (name, value) in keywordExpressions { keywords.append((name, try evaluate(value))) }
            return try call(callee, arguments, keywords)
        case .filter(let base, let name, let argumentExpressions, let keywordExpressions):
            let value = try evaluate(base)
            let arguments = try argumentExpressions.map { try evaluate($0) }
            var keywords: [(String, JinjaValue)] = []
            for (key, value) in keywordExpressions { keywords.append((key, try evaluate(value))) }
            return try JinjaBuiltins.filter(name, value, arguments, keywords, renderer: &self)
        case .test(let base, let name, let argumentExpressions, let negated):
            let value = try evaluate(base)
            let arguments = try argumentExpressions.map { try evaluate($0) }
            let result = try JinjaBuiltins.test(name, value, arguments)
            return .bool(negated ? !result : result)
        case .not(let operand):
            return .bool(!(try evaluate(operand).isTruthy))
        case .negate(let operand):
            let value = try evaluate(operand)
            switch value {
            case .int(let i): return i == .min ? .float(-Double(i)) : .int(-i)
            case .float(let f): return .float(-f)
            case .bool(let b): return .int(b ? -1 : 0)
            case .undefined(let hint): throw ChatTemplateError.undefined(hint)
            default: throw ChatTemplateError.runtime("bad operand type for unary -: '\(value.typeName)'")
            }
        case .and(let left, let right):
            let l = try evaluate(left)
            return l.isTruthy ? try evaluate(right) : l
        case .or(let left, let right):
            let l = try evaluate(left)
            return l.isTruthy ? l : try evaluate(right)
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(then) }
            return try otherwise.map { try evaluate($0) } ?? .undefined(hint: "the inline if expression evaluated to false and no else section was defined")
        case .binary(let op, let left, let right):
            return try JinjaBuiltins.binary(op, try evaluate(left), try evaluate(right))
        }
    }

    func attribute(of value: JinjaValue, _ name: String) throws -> JinjaValue {
        switch value {
        case .undefined(let hint):
            throw ChatTemplateError.undefined(hint)
        case .dict(let members):
            if let member = members.first(where: { $0.key == name }) { return member.value }
            return .undefined(hint: "'dict object' has no attribute '\(name)'")
        case .namespace(let namespace):
            return namespace.get(name) ?? .undefined(hint: "'Namespace' object has no attribute '\(name)'")
        default:
            return .undefined(hint: "'\(value.typeName) object' has no attribute '\(name)'")
        }
    }

    func item(of value: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        switch (value, key) {
        case (.undefined(let hint), _):
            throw ChatTemplateError.undefined(hint)
        case (.dict, .string(let name)), (.namespace, .string(let name)):
            let result = try attribute(of: value, name)
            if result.isUndefined { return .undefined(hint: "'dict object' has no attribute '\(name)'") }
            return result
        case (.list(let items), .int(let index)):
            let i = index < 0 ? items.count + index : index
            return i >= 0 && i < items.count ? items[i] : .undefined(hint: "list object has no element \(index)")
        case (.string(let text), .int(let index)):
            let scalars = Array(text.unicodeScalars)
            let i = index < 0 ? scalars.count + index : index
            return i >= 0 && i < scalars.count ? .string(String(scalars[i])) : .undefined(hint: "str object has no element \(index)")
        default:
            return .undefined(hint: "'\(value.typeName) object' has no attribute '\(key.asString)'")
        }
    }

    private func slice(_ value: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?) throws -> JinjaValue {
        func int(_ v: JinjaValue?) throws -> Int? {
            guard let v, !v.isNone else { return nil }
            guard case .int(let i) = v else { throw ChatTemplateError.runtime("slice indices must be integers or None") }
            return i
        }
        let stepValue = try int(step) ?? 1
        guard stepValue != 0 else { throw ChatTemplateError.runtime("slice step cannot be zero") }
        let lower = try int(start), upper = try int(stop)
        /// Python's slice.indices(count), expanded.
        func indices(count: Int) -> [Int] {
            func clamp(_ v: Int, _ low: Int, _ high: Int) -> Int {
                let shifted = v < 0 ? v + count : v
                return min(max(shifted, low), high)
            }
            if stepValue > 0 {
                let s = lower.map { clamp($0, 0, count) } ?? 0
                let e = upper.map { clamp($0, 0, count) } ?? count
                return s < e ? Array(stride(from: s, to: e, by: stepValue)) : []
            }
            let s = lower.map { clamp($0, -1, count - 1) } ?? count - 1
            let e = upper.map { clamp($0, -1, count - 1) } ?? -1
            return s > e ? Array(stride(from: s, to: e, by: stepValue)) : []
        }
        switch value {
        case .list(let items):
            return .list(indices(count: items.count).map { items[$0] })
        case .string(let text):
            let scalars = Array(text.unicodeScalars)
            var view = String.UnicodeScalarView()
            for i in indices(count: scalars.count) { view.append(scalars[i]) }
            return .string(String(view))
        case .undefined(let hint):
            throw ChatTemplateError.undefined(hint)
        default:
            throw ChatTemplateError.runtime("'\(value.typeName)' object is not subscriptable")
        }
    }

    private mutating func call(_ callee: JinjaExpression, _ arguments: [JinjaValue], _ keywords: [(String, JinjaValue)]) throws -> JinjaValue {
        if case .attribute(let baseExpression, let method) = callee {
            let base = try evaluate(baseExpression)
            if case .dict(let members) = base, let member = members.first(where: { $0.key == method }),
               case .macro(let macro) = member.value {
                return try callMacro(macro, arguments, keywords)
            }
            return try JinjaBuiltins.method(method, on: base, arguments, keywords)
        }
        if case .name(let name) = callee {
            if case .macro(let macro) = lookup(name) { return try callMacro(macro, arguments, keywords) }
            return try JinjaBuiltins.function(name, arguments, keywords)
        }
        let value = try evaluate(callee)
        if case .macro(let macro) = value { return try callMacro(macro, arguments, keywords) }
        throw ChatTemplateError.runtime("'\(value.typeName)' object is not callable")
    }

    private mutating func callMacro(_ macro: JinjaMacro, _ arguments: [JinjaValue], _ keywords: [(String, JinjaValue)]) throws -> JinjaValue {
        guard arguments.count <= macro.parameters.count else {
            throw ChatTemplateError.runtime("macro '\(macro.name)' takes not more than \(macro.parameters.count) argument(s)")
        }
        var frame: [String: JinjaValue] = [:]
        for (index, parameter) in macro.parameters.enumerated() {
            if index < arguments.count {
                frame[parameter.name] = arguments[index]
            } else if let keyword = keywords.first(where: { $0.0 == parameter.name }) {
                frame[parameter.name] = keyword.1
            } else if let defaultValue = parameter.defaultValue {
                frame[parameter.name] = try evaluate(defaultValue)
            } else {
                frame[parameter.name] = .undefined(hint: "parameter '\(parameter.name)' was not provided")
            }
        }
        let savedOutput = output
        output = ""
        scopes.append(frame)
        defer { scopes.removeLast() }
        try execute(macro.body)
        let result = output
        output = savedOutput
        return .string(result)
    }

    /// Applies a filter given by name to items (used by map / select).
    mutating func applyFilter(_ name: String, _ value: JinjaValue, _ arguments: [JinjaValue]) throws -> JinjaValue {
        try JinjaBuiltins.filter(name, value, arguments, [], renderer: &self)
    }
}
