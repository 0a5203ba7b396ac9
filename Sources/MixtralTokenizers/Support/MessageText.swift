/// Text from an untrusted file (a key, a tensor name, a token) made safe to put in an error
/// message: control characters (terminal escape sequences among them) are written as
/// `\u{...}` escapes, and text longer than `limit` characters is cut, with its full length
/// said, so a corrupt 100 MB name neither floods the terminal nor takes minutes to print.
public func messageText(_ text: some StringProtocol, limit: Int = 120) -> String {
    var result = ""
    var written = 0
    for scalar in text.unicodeScalars {
        if written == limit {
            return result + "... (\(text.utf8.count) bytes in all)"
        }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned:
            result += "\\u{" + String(scalar.value, radix: 16) + "}"
        default:
            result.unicodeScalars.append(scalar)
        }
        written += 1
    }
    return result
}
