// A minimal reader of the protocol buffers wire format, enough for SentencePiece's ModelProto.
//
// Why hand-written rather than swift-protobuf with generated code: the loader reads three
// messages and about twenty scalar fields, all of which are listed in SentencePieceModel.swift.
// swift-protobuf would add a large library that every build of the package compiles (this
// project builds on two shared cores) and a code generator that takes about ten minutes to build
// here, for no gain in exactness: the wire format below is the whole of what is needed
// (varints, fixed 32/64-bit values and length-delimited fields), and unknown fields are skipped
// as the format requires. Every read is bounds-checked and reports a typed error.

struct ProtobufReader {
    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case startGroup = 3
        case endGroup = 4
        case fixed32 = 5
    }

    struct DecodeError: Error, CustomStringConvertible {
        let description: String
    }

    private let bytes: UnsafeRawBufferPointer
    private var position: Int
    private let end: Int

    /// Reads `bytes[range]`. The buffer must outlive the reader.
    init(_ bytes: UnsafeRawBufferPointer, range: Range<Int>) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var isAtEnd: Bool { position >= end }

    /// The next field's number and wire type, or nil at the end of the message.
    mutating func nextField() throws -> (number: Int, wireType: WireType)? {
        if isAtEnd { return nil }
        let key = try readVarint()
        guard let wireType = WireType(rawValue: UInt8(key & 7)) else {
            throw DecodeError(description: "unknown wire type \(key & 7) at byte \(position)")
        }
        let number = Int(key >> 3)
        guard number > 0 else { throw DecodeError(description: "field number 0 at byte \(position)") }
        return (number, wireType)
    }

    mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw DecodeError(description: "truncated varint") }
            let byte = bytes[position]
            position += 1
            guard shift < 64 else { throw DecodeError(description: "varint longer than 10 bytes") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func readFixed32() throws -> UInt32 {
        guard end - position >= 4 else { throw DecodeError(description: "truncated fixed32") }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[position + i]) << (8 * UInt32(i)) }
        position += 4
        return value
    }

    mutating func readFixed64() throws -> UInt64 {
        guard end - position >= 8 else { throw DecodeError(description: "truncated fixed64") }
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
        position += 8
        return value
    }

    /// The byte range of a length-delimited field (string, bytes or sub-message).
    mutating func readLengthDelimited() throws -> Range<Int> {
        let length = try readVarint()
        guard length <= UInt64(end - position) else {
            throw DecodeError(description: "length-delimited field of \(length) bytes runs past the end")
        }
        let start = position
        position += Int(length)
        return start..<position
    }

    mutating func readString() throws -> String {
        let range = try readLengthDelimited()
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    mutating func readFloat() throws -> Float { Float(bitPattern: try readFixed32()) }

    mutating func readBool() throws -> Bool { try readVarint() != 0 }

    /// int32 fields are encoded as sign-extended 64-bit varints.
    mutating func readInt32() throws -> Int32 { Int32(truncatingIfNeeded: try readVarint()) }

    mutating func skip(_ wireType: WireType) throws {
        switch wireType {
        case .varint: _ = try readVarint()
        case .fixed64: _ = try readFixed64()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .fixed32: _ = try readFixed32()
        case .startGroup, .endGroup:
            throw DecodeError(description: "groups are not used by SentencePiece models")
        }
    }
}
